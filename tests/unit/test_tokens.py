"""Offline token counting, checked against numbers published in the OpenAI cookbook
("How to count tokens with tiktoken"): token ids for sample strings, and the prompt-token counts
the API itself reported for its example conversations.
"""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import tiktoken
import tiktoken.load
import tiktoken_ext.openai_public as openai_public

from bricksllm.domain import tokens
from bricksllm.domain.tokens import (
    CL100K_BASE,
    O200K_BASE,
    build_encoding,
    count_chat_prompt,
    count_completion,
    count_text,
    encoding_for_model,
    encoding_name_for_model,
    get_encoding,
)

# Published in the cookbook (token ids as returned by tiktoken.get_encoding(...).encode).
PUBLISHED_IDS = [
    (CL100K_BASE, "tiktoken is great!", [83, 1609, 5963, 374, 2294, 0]),
    (O200K_BASE, "tiktoken is great!", [83, 8251, 2488, 382, 2212, 0]),
    (CL100K_BASE, "antidisestablishmentarianism", [519, 85342, 34500, 479, 8997, 2191]),
    (O200K_BASE, "antidisestablishmentarianism", [493, 129901, 376, 160388, 21203, 2367]),
    (CL100K_BASE, "2 + 2 = 4", [17, 489, 220, 17, 284, 220, 19]),
    (O200K_BASE, "2 + 2 = 4", [17, 659, 220, 17, 314, 220, 19]),
    (CL100K_BASE, "お誕生日おめでとう", [33334, 45918, 243, 21990, 9080, 33334, 62004, 16556, 78699]),
    (O200K_BASE, "お誕生日おめでとう", [8930, 9697, 243, 128225, 8930, 17693, 4344, 48669]),
]

COOKBOOK_MESSAGES = [
    {
        "role": "system",
        "content": "You are a helpful, pattern-following assistant that translates corporate jargon "
        "into plain English.",
    },
    {"role": "system", "name": "example_user", "content": "New synergies will help drive top-line growth."},
    {
        "role": "system",
        "name": "example_assistant",
        "content": "Things working well together will increase revenue.",
    },
    {
        "role": "system",
        "name": "example_user",
        "content": "Let's circle back when we have more bandwidth to touch base on opportunities for "
        "increased leverage.",
    },
    {
        "role": "system",
        "name": "example_assistant",
        "content": "Let's talk later when we're less busy about how to do better.",
    },
    {
        "role": "user",
        "content": "This late pivot means we don't have time to boil the ocean for the client deliverable.",
    },
]

COOKBOOK_TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_current_weather",
            "description": "Get the current weather in a given location",
            "parameters": {
                "type": "object",
                "properties": {
                    "location": {
                        "type": "string",
                        "description": "The city and state, e.g. San Francisco, CA",
                    },
                    "unit": {
                        "type": "string",
                        "description": "The unit of temperature to return",
                        "enum": ["celsius", "fahrenheit"],
                    },
                },
                "required": ["location"],
            },
        },
    }
]
COOKBOOK_TOOL_MESSAGES = [
    {
        "role": "system",
        "content": "You are a helpful assistant that can answer to questions about the weather.",
    },
    {"role": "user", "content": "What's the weather like in San Francisco?"},
]


@pytest.mark.parametrize(("name", "text", "ids"), PUBLISHED_IDS)
def test_encodings_match_published_token_ids(name: str, text: str, ids: list[int]) -> None:
    assert get_encoding(name).encode(text) == ids


@pytest.mark.parametrize(
    ("model", "text", "expected"),
    [
        ("gpt-4o", "hello world", 2),
        ("gpt-4", "hello world", 2),
        ("gpt-4o", "tiktoken is great!", 6),
        ("gpt-3.5-turbo", "tiktoken is great!", 6),
        ("gpt-4o-mini", "お誕生日おめでとう", 8),
        ("gpt-4", "お誕生日おめでとう", 9),
        ("gpt-4o", "", 0),
        # special-token text in user data is counted as text, never raises
        ("gpt-4o", "<|endoftext|>", 7),
        ("gpt-4", "<|endoftext|>", 7),
    ],
)
def test_count_text(model: str, text: str, expected: int) -> None:
    assert count_text(model, text) == expected
    assert count_completion(model, text) == expected


@pytest.mark.parametrize(
    ("model", "name"),
    [
        ("gpt-4o", O200K_BASE),
        ("gpt-4o-mini-2024-07-18", O200K_BASE),
        ("chatgpt-4o-latest", O200K_BASE),
        ("gpt-4.1-nano", O200K_BASE),
        ("gpt-4.5-preview", O200K_BASE),
        ("gpt-5-mini", O200K_BASE),
        ("o1", O200K_BASE),
        ("o3-mini", O200K_BASE),
        ("o4-mini-2025-04-16", O200K_BASE),
        ("ft:gpt-4o-mini-2024-07-18:org::id", O200K_BASE),
        ("GPT-4O", O200K_BASE),
        ("gpt-4", CL100K_BASE),
        ("gpt-4-0613", CL100K_BASE),
        ("gpt-4-turbo", CL100K_BASE),
        ("gpt-4-32k", CL100K_BASE),
        ("gpt-3.5-turbo-0125", CL100K_BASE),
        ("gpt-35-turbo", CL100K_BASE),
        ("ft:gpt-3.5-turbo-0613:org::id", CL100K_BASE),
        ("text-embedding-3-small", CL100K_BASE),
        ("text-embedding-ada-002", CL100K_BASE),
        ("davinci-002", CL100K_BASE),
        ("some-llama", O200K_BASE),
        ("", O200K_BASE),
    ],
)
def test_encoding_for_model(model: str, name: str) -> None:
    assert encoding_name_for_model(model) == name
    assert encoding_for_model(model).name == name


@pytest.mark.parametrize(
    ("model", "expected"),
    [("gpt-3.5-turbo", 129), ("gpt-4-0613", 129), ("gpt-4", 129), ("gpt-4o", 124), ("gpt-4o-mini", 124)],
)
def test_cookbook_chat_prompt(model: str, expected: int) -> None:
    # The counts the OpenAI API reported for this conversation, per the cookbook.
    assert count_chat_prompt(model, COOKBOOK_MESSAGES) == expected


@pytest.mark.parametrize(
    ("model", "expected"),
    [("gpt-3.5-turbo", 105), ("gpt-4", 105), ("gpt-4o", 101), ("gpt-4o-mini", 101)],
)
def test_cookbook_chat_prompt_with_tools(model: str, expected: int) -> None:
    assert count_chat_prompt(model, COOKBOOK_TOOL_MESSAGES, COOKBOOK_TOOLS) == expected


def test_legacy_functions_and_responses_tools_count_like_chat_tools() -> None:
    function = COOKBOOK_TOOLS[0]["function"]
    flat = {"type": "function", **function}
    expected = count_chat_prompt("gpt-4o", COOKBOOK_TOOL_MESSAGES, COOKBOOK_TOOLS)
    assert count_chat_prompt("gpt-4o", COOKBOOK_TOOL_MESSAGES, [function]) == expected
    assert count_chat_prompt("gpt-4o", COOKBOOK_TOOL_MESSAGES, [flat]) == expected


def test_nested_schemas_and_unknown_tools_are_not_ignored() -> None:
    base = count_chat_prompt("gpt-4o", COOKBOOK_TOOL_MESSAGES, COOKBOOK_TOOLS)
    nested: Any = {
        "type": "function",
        "function": {
            **COOKBOOK_TOOLS[0]["function"],
            "parameters": {
                "type": "object",
                "properties": {
                    **COOKBOOK_TOOLS[0]["function"]["parameters"]["properties"],
                    "when": {"type": "object", "properties": {"day": {"type": "string"}}},
                },
            },
        },
    }
    assert count_chat_prompt("gpt-4o", COOKBOOK_TOOL_MESSAGES, [nested]) > base
    web: Any = [{"type": "web_search_preview"}]
    assert count_chat_prompt("gpt-4o", COOKBOOK_TOOL_MESSAGES, web) > count_chat_prompt(
        "gpt-4o", COOKBOOK_TOOL_MESSAGES
    )


def _frame(n_messages: int) -> int:
    return 3 * n_messages + 3


def test_content_parts_text_and_images() -> None:
    model = "gpt-4o"
    role = count_text(model, "user")
    hello = count_text(model, "hello world")
    parts = [
        {"type": "text", "text": "hello world"},
        {"type": "image_url", "image_url": {"url": "https://example.com/a.png", "detail": "low"}},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
        {"type": "image_url", "image_url": {"url": "https://example.com/b.png", "detail": "high"}},
        {"type": "input_audio", "input_audio": {"data": "AAAA", "format": "wav"}},  # not counted
        "garbage",
    ]
    got = count_chat_prompt(model, [{"role": "user", "content": parts}])
    assert got == _frame(1) + role + hello + 85 + 765 + 765
    # a list of text parts counts the same as the joined string would, part by part
    two = [{"type": "text", "text": "hello"}, {"type": "text", "text": " world"}]
    assert count_chat_prompt(model, [{"role": "user", "content": two}]) == _frame(1) + role + hello


def test_tool_calls_and_tool_results_are_counted() -> None:
    model = "gpt-4o-mini"
    name, args = "get_current_weather", '{"location":"Paris, France"}'
    assistant = {
        "role": "assistant",
        "content": None,
        "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": name, "arguments": args}}],
    }
    tool = {"role": "tool", "tool_call_id": "call_1", "content": "18C and sunny"}
    got = count_chat_prompt(model, [assistant, tool])
    expected = (
        _frame(2)
        + count_text(model, "assistant")
        + count_text(model, name)
        + count_text(model, args)
        + count_text(model, "tool")
        + count_text(model, "call_1")
        + count_text(model, "18C and sunny")
    )
    assert got == expected
    legacy = {"role": "assistant", "function_call": {"name": name, "arguments": args}}
    assert count_chat_prompt(model, [legacy]) == _frame(1) + count_text(model, "assistant") + count_text(
        model, name
    ) + count_text(model, args)


def test_malformed_messages_do_not_raise() -> None:
    messy: list[Any] = [None, 3, "x", {"role": 5, "content": {"a": 1}, "tool_calls": "nope"}, {}]
    assert count_chat_prompt("gpt-4o", messy) == _frame(2)
    assert count_chat_prompt("gpt-4o", []) == 3
    assert count_chat_prompt("gpt-4o", [], [None, 1]) > 3


def test_encodings_are_cached_per_process() -> None:
    assert get_encoding(O200K_BASE) is get_encoding(O200K_BASE)
    assert encoding_for_model("gpt-4o") is encoding_for_model("o3-mini")
    assert get_encoding(CL100K_BASE) is encoding_for_model("gpt-4")
    with pytest.raises(ValueError):
        get_encoding("r50k_base")


def test_building_an_encoding_never_touches_the_network(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError(f"network or tiktoken download attempted: {args!r}")

    cache = tmp_path / "tiktoken-cache"
    cache.mkdir()
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(cache))
    for name in ("read_file", "read_file_cached", "load_tiktoken_bpe"):
        monkeypatch.setattr(tiktoken.load, name, refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)
    for name in (O200K_BASE, CL100K_BASE):
        fresh = build_encoding(name)  # bypass the process cache: really build it
        assert isinstance(fresh, tiktoken.Encoding)
        assert fresh.encode("hello world") == get_encoding(name).encode("hello world")
    assert list(cache.iterdir()) == []


def test_nothing_is_loaded_at_import() -> None:
    code = (
        "import bricksllm.domain.tokens as t, bricksllm.domain.pricing as p;"
        "print(sum(map(t.is_loaded, (t.O200K_BASE, t.CL100K_BASE))), p._shipped_table.cache_info().currsize)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["0", "0"]


@pytest.mark.parametrize("name", [CL100K_BASE, O200K_BASE])
def test_regex_special_tokens_and_hash_match_tiktoken(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Our copies of tiktoken's encoding parameters have not drifted from the installed tiktoken."""
    seen: dict[str, Any] = {}

    def fake_load(url: str, expected_hash: str | None = None) -> dict[bytes, int]:
        seen["hash"] = expected_hash
        return {}

    monkeypatch.setattr(openai_public, "load_tiktoken_bpe", fake_load)
    reference = openai_public.ENCODING_CONSTRUCTORS[name]()
    _filename, sha256, pat_str, special_tokens = tokens._SPECS[name]
    assert pat_str == reference["pat_str"]
    assert special_tokens == reference["special_tokens"]
    assert sha256 == seen["hash"]
    assert get_encoding(name).n_vocab == max(special_tokens.values()) + 1


def test_responses_api_input_items() -> None:
    model = "gpt-4.1"
    item = {
        "type": "message",
        "role": "user",
        "content": [
            {"type": "input_text", "text": "hello world"},
            {"type": "input_image", "image_url": "https://example.com/a.png", "detail": "low"},
            {"type": "input_image", "image_url": "https://example.com/b.png"},
        ],
    }
    expected = _frame(1) + count_text(model, "message") + count_text(model, "user") + 2 + 85 + 765
    assert count_chat_prompt(model, [item]) == expected


def test_an_encoding_is_built_once_however_many_threads_ask_at_once() -> None:
    code = (
        "import threading, bricksllm.domain.tokens as t\n"
        "built = []\n"
        "real = t.build_encoding\n"
        "t.build_encoding = lambda name: built.append(name) or real(name)\n"
        "threads = [threading.Thread(target=t.get_encoding, args=(t.CL100K_BASE,)) for _ in range(6)]\n"
        "[th.start() for th in threads]; [th.join() for th in threads]\n"
        "print(len(built), t.is_loaded(t.CL100K_BASE), t.is_loaded(t.O200K_BASE))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["1", "True", "False"]
