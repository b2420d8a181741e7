"""Offline token counting: the fallback used only when an upstream reports no `usage`.

Upstream usage is the source of truth (OpenAI streams carry it when asked for with
`stream_options.include_usage`); this module exists for the cases where it is missing, so that a
request is never priced at zero just because a number was absent.

The BPE rank files for `cl100k_base` and `o200k_base` ship gzipped inside the package
(`domain/data/`). tiktoken's own `get_encoding` downloads them on first use, which fails offline
and must never happen in production, so encodings are built here from the shipped bytes with the
same regex and special tokens as tiktoken's `tiktoken_ext/openai_public.py` (a unit test checks
they have not drifted). Each encoding is built once per process, lazily, on first use (never at
import): building one costs hundreds of milliseconds, and the original gateway paid ~83 ms per
request by rebuilding it.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import json
import threading
from collections.abc import Iterable, Mapping
from importlib import resources
from typing import Any

import tiktoken

CL100K_BASE = "cl100k_base"
O200K_BASE = "o200k_base"

_ENDOFTEXT = "<|endoftext|>"
_FIM_PREFIX = "<|fim_prefix|>"
_FIM_MIDDLE = "<|fim_middle|>"
_FIM_SUFFIX = "<|fim_suffix|>"
_ENDOFPROMPT = "<|endofprompt|>"

# Regexes and special tokens as in tiktoken_ext/openai_public.py (tiktoken 0.14).
_CL100K_PAT = (
    r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+| ?[^\s\p{L}\p{N}]++[\r\n]*+"""
    r"""|\s++$|\s*[\r\n]|\s+(?!\S)|\s"""
)
_O200K_PAT = "|".join(
    [
        r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
        r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
        r"""\p{N}{1,3}""",
        r""" ?[^\s\p{L}\p{N}]+[\r\n/]*""",
        r"""\s*[\r\n]+""",
        r"""\s+(?!\S)""",
        r"""\s+""",
    ]
)

# name -> (data file, sha256 of the decompressed file as tiktoken expects it, regex, special tokens)
_SPECS: dict[str, tuple[str, str, str, dict[str, int]]] = {
    CL100K_BASE: (
        "cl100k_base.tiktoken.gz",
        "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7",
        _CL100K_PAT,
        {
            _ENDOFTEXT: 100257,
            _FIM_PREFIX: 100258,
            _FIM_MIDDLE: 100259,
            _FIM_SUFFIX: 100260,
            _ENDOFPROMPT: 100276,
        },
    ),
    O200K_BASE: (
        "o200k_base.tiktoken.gz",
        "446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d",
        _O200K_PAT,
        {_ENDOFTEXT: 199999, _ENDOFPROMPT: 200018},
    ),
}

# Model-name prefixes, checked in order; the first match wins. Longer prefixes come first so that
# `gpt-4o` is never taken for `gpt-4`.
_PREFIXES: tuple[tuple[str, str], ...] = (
    ("gpt-4o", O200K_BASE),
    ("gpt-4.1", O200K_BASE),
    ("gpt-4.5", O200K_BASE),
    ("chatgpt-4o", O200K_BASE),
    ("gpt-5", O200K_BASE),
    ("gpt-oss", O200K_BASE),
    ("gpt-image", O200K_BASE),
    ("gpt-realtime", O200K_BASE),
    ("gpt-audio", O200K_BASE),
    ("codex-", O200K_BASE),
    ("o1", O200K_BASE),
    ("o3", O200K_BASE),
    ("o4", O200K_BASE),
    ("gpt-4", CL100K_BASE),
    ("gpt-3.5", CL100K_BASE),
    ("gpt-35", CL100K_BASE),  # Azure's spelling
    ("text-embedding-", CL100K_BASE),
    ("davinci-002", CL100K_BASE),
    ("babbage-002", CL100K_BASE),
)

# Per-message framing of the chat format (OpenAI cookbook, "How to count tokens with tiktoken").
_TOKENS_PER_MESSAGE = 3
_TOKENS_PER_NAME = 1
_REPLY_PRIMING = 3
# Image inputs: an estimate, not a measurement (see count_chat_prompt).
IMAGE_TOKENS_LOW = 85
IMAGE_TOKENS_HIGH = 765


def _read_ranks(filename: str, expected_sha256: str) -> dict[bytes, int]:
    """Parse a shipped `.tiktoken.gz` file (lines of `base64(token) rank`), checking its hash."""
    raw = gzip.decompress(resources.files("bricksllm.domain").joinpath("data", filename).read_bytes())
    digest = hashlib.sha256(raw).hexdigest()
    if digest != expected_sha256:
        raise ValueError(f"{filename}: sha256 {digest} does not match tiktoken's {expected_sha256}")
    ranks: dict[bytes, int] = {}
    for line in raw.splitlines():
        if line:
            token, rank = line.split()
            ranks[base64.b64decode(token)] = int(rank)
    return ranks


_built: dict[str, tiktoken.Encoding] = {}
_building = threading.Lock()


def get_encoding(name: str) -> tiktoken.Encoding:
    """The encoding `name` (cl100k_base or o200k_base), built from package data once per process,
    however many threads ask for it at once (each build takes ~0.5 s of CPU and ~50 MB)."""
    encoding = _built.get(name)
    if encoding is None:
        with _building:
            encoding = _built.get(name)
            if encoding is None:
                encoding = _built[name] = build_encoding(name)
    return encoding


def is_loaded(name: str) -> bool:
    """Whether `get_encoding(name)` returns at once."""
    return name in _built


def build_encoding(name: str) -> tiktoken.Encoding:
    """A new encoding `name`, built from the shipped rank file (use `get_encoding`)."""
    try:
        filename, sha256, pat_str, special_tokens = _SPECS[name]
    except KeyError:
        raise ValueError(f"unknown encoding {name!r}; shipped: {sorted(_SPECS)}") from None
    encoding = tiktoken.Encoding(
        name=name,
        pat_str=pat_str,
        mergeable_ranks=_read_ranks(filename, sha256),
        special_tokens=special_tokens,
    )
    # tiktoken keeps a Python copy of the ranks only for pickling and token_byte_values(), which
    # the gateway never uses; the Rust core has its own. Dropping it saves ~30 MB for o200k_base.
    encoding._mergeable_ranks = {}
    return encoding


def _base_model(model: str) -> str:
    """`ft:gpt-4o-mini-2024-07-18:org::id` -> `gpt-4o-mini-2024-07-18`; other names unchanged."""
    model = model.strip().lower()
    if model.startswith("ft:"):
        return model[3:].split(":", 1)[0]
    return model


def encoding_name_for_model(model: str) -> str:
    """Which encoding a model uses; unknown models get o200k_base (all current OpenAI models use it)."""
    base = _base_model(model)
    for prefix, name in _PREFIXES:
        if base.startswith(prefix):
            return name
    return O200K_BASE


def encoding_for_model(model: str) -> tiktoken.Encoding:
    return get_encoding(encoding_name_for_model(model))


def _count(enc: tiktoken.Encoding, text: str) -> int:
    # encode_ordinary: text that happens to contain "<|endoftext|>" is user data, not a control token.
    return len(enc.encode_ordinary(text)) if text else 0


def count_text(model: str, text: str) -> int:
    return _count(encoding_for_model(model), text)


def count_completion(model: str, text: str) -> int:
    """Tokens of generated text (e.g. the concatenated `delta.content` of a stream without usage)."""
    return _count(encoding_for_model(model), text)


def _count_content(enc: tiktoken.Encoding, content: Any) -> int:
    if isinstance(content, str):
        return _count(enc, content)
    if not isinstance(content, list):
        return 0
    total = 0
    for part in content:
        if not isinstance(part, Mapping):
            continue
        kind = part.get("type")
        if kind in ("image_url", "input_image"):  # chat completions / Responses API
            image = part.get("image_url")
            detail = image.get("detail") if isinstance(image, Mapping) else part.get("detail")
            total += IMAGE_TOKENS_LOW if detail == "low" else IMAGE_TOKENS_HIGH
        else:
            for field in ("text", "refusal"):
                value = part.get(field)
                if isinstance(value, str):
                    total += _count(enc, value)
    return total


def _count_tool_calls(enc: tiktoken.Encoding, calls: Any) -> int:
    if isinstance(calls, Mapping):  # legacy `function_call`: one call, not a list
        calls = [{"function": calls}]
    if not isinstance(calls, list):
        return 0
    total = 0
    for call in calls:
        function = call.get("function") if isinstance(call, Mapping) else None
        if isinstance(function, Mapping):
            for field in ("name", "arguments"):
                value = function.get(field)
                if isinstance(value, str):
                    total += _count(enc, value)
    return total


def _count_json(enc: tiktoken.Encoding, value: Any) -> int:
    return _count(enc, json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str))


def _function_of(tool: Any) -> Mapping[str, Any] | None:
    """The function definition of a chat tool, a legacy `functions` item or a Responses API tool."""
    if not isinstance(tool, Mapping):
        return None
    function = tool.get("function")
    if isinstance(function, Mapping):
        return function
    if isinstance(tool.get("name"), str) and tool.get("type", "function") == "function":
        return tool
    return None


def _count_tools(enc: tiktoken.Encoding, tools: Iterable[Any]) -> int:
    """The cookbook's function-definition estimate, with JSON counting for what it does not model.

    The cookbook formula (verified there against the API: 101 tokens on o200k, 105 on cl100k for
    its weather example) covers flat `properties` with type, description and enum. Anything else in
    a property schema (nested objects, items, ...) and non-function tools are counted as compact
    JSON, which overestimates a little rather than ignoring them.
    """
    o200k = enc.name == O200K_BASE
    func_init, prop_init, prop_key, enum_init, enum_item, func_end = (7 if o200k else 10), 3, 3, -3, 3, 12
    total, functions = 0, 0
    for tool in tools:
        function = _function_of(tool)
        if function is None:
            total += _count_json(enc, tool)
            continue
        functions += 1
        total += func_init
        description = str(function.get("description") or "").removesuffix(".")
        total += _count(enc, f"{function.get('name', '')}:{description}")
        parameters = function.get("parameters")
        properties = parameters.get("properties") if isinstance(parameters, Mapping) else None
        if not isinstance(properties, Mapping) or not properties:
            continue
        total += prop_init
        for key, schema in properties.items():
            total += prop_key
            schema = schema if isinstance(schema, Mapping) else {}
            enum = schema.get("enum")
            if isinstance(enum, list):
                total += enum_init
                for item in enum:
                    total += enum_item + _count(enc, str(item))
            p_desc = str(schema.get("description") or "").removesuffix(".")
            total += _count(enc, f"{key}:{schema.get('type', '')}:{p_desc}")
            rest = {k: v for k, v in schema.items() if k not in ("type", "description", "enum")}
            if rest:
                total += _count_json(enc, rest)
    if functions:
        total += func_end
    return total


def count_chat_prompt(model: str, messages: Iterable[Any], tools: Iterable[Any] | None = None) -> int:
    """Estimate the prompt tokens of a chat request; a fallback for when the upstream gives no usage.

    The OpenAI cookbook formula: 3 framing tokens per message, plus the tokens of each string field
    (role, content, name, tool_call_id, ...), +1 when a `name` is set, +3 priming the reply. It
    matches the API exactly for plain text messages (129 tokens for the cookbook example on
    gpt-4/gpt-3.5, 124 on gpt-4o). Beyond the cookbook:
    - content given as a list of parts: the text (and refusal) parts are counted; each image is an
      *estimate* of 85 tokens for `detail: "low"` and 765 otherwise (a 1024x1024 high-detail image);
      the real figure depends on the image size, which a gateway does not decode;
    - `tool_calls` (and the legacy `function_call`): the function name and arguments are counted;
    - `tools` (or the legacy `functions` list, passed here the same way): see `_count_tools`.
    Malformed input never raises: what cannot be understood is skipped.
    """
    enc = encoding_for_model(model)
    total = 0
    for message in messages:
        if not isinstance(message, Mapping):
            continue
        total += _TOKENS_PER_MESSAGE
        for key, value in message.items():
            if key == "content":
                total += _count_content(enc, value)
            elif key in ("tool_calls", "function_call"):
                total += _count_tool_calls(enc, value)
            elif isinstance(value, str):
                total += _count(enc, value)
            if key == "name":
                total += _TOKENS_PER_NAME
    total += _REPLY_PRIMING
    if tools:
        total += _count_tools(enc, tools)
    return total
