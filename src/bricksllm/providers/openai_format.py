"""The OpenAI wire format, shared by OpenAI, Azure OpenAI, vLLM and DeepInfra: endpoint kinds,
usage readers, the stream meter and the offline token estimate.

`TokenKind` covers every token-billed call (chat, completions, responses, embeddings): usage is
read from the JSON answer or the stream; for streamed chat and completions the gateway asks for
the usage chunk (`stream_options.include_usage`) and withholds it from a client that did not ask.
Images, speech and transcriptions are billed in the units OpenAI bills them in.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar
from urllib.parse import parse_qs

from bricksllm.domain import tokens
from bricksllm.domain.models import Usage, token_count
from bricksllm.errors import Invalid
from bricksllm.providers.base import Body, KindDefaults, Meter, Metered, Pricing, RequestView
from bricksllm.providers.meters import JsonMeter, PassMeter
from bricksllm.providers.sse import EventSplitter, json_data

SSE = "text/event-stream"
_HAS_USAGE = re.compile(rb'"usage"\s*:\s*\{')  # not `"usage":null`, which every chunk may carry
_DONE = b"data: [DONE]"
_RESPONSES_END = frozenset({"response.completed", "response.incomplete", "response.failed"})
_MODEL = re.compile(rb'"model"\s*:\s*"([^"\\]+)"')  # a non-empty model name (Azure's first chunk has "")
MAX_IMAGES = 128


def _get(d: Any, *path: str) -> Any:
    for p in path:
        if not isinstance(d, dict):  # parsed JSON: plain dicts (an ABC check costs more)
            return None
        d = d.get(p)
    return d


def _str(value: Any) -> str:
    return value if isinstance(value, str) else ""


def read_usage(u: Any) -> Usage | None:
    """OpenAI usage in either naming (chat `prompt_tokens`, Responses/images `input_tokens`)."""
    if not isinstance(u, dict):
        return None
    chat = "prompt_tokens" in u
    details = u.get("prompt_tokens_details" if chat else "input_tokens_details")
    out_details = u.get("completion_tokens_details" if chat else "output_tokens_details")
    return Usage(
        prompt_tokens=token_count(u.get("prompt_tokens" if chat else "input_tokens")),
        completion_tokens=token_count(u.get("completion_tokens" if chat else "output_tokens")),
        cached_prompt_tokens=token_count(details.get("cached_tokens")) if isinstance(details, dict) else 0,
        reasoning_tokens=token_count(out_details.get("reasoning_tokens"))
        if isinstance(out_details, dict)
        else 0,
    )


def client_wants_usage(body: Mapping[str, Any] | None) -> bool:
    return _get(body, "stream_options", "include_usage") is True


def with_stream_usage(view: RequestView) -> RequestView:
    """The request with `stream_options.include_usage: true` added. The client's bytes are kept:
    the member is spliced in after the opening brace, never by re-serialising the body (which
    would turn integers beyond 64 bits into floats); only a body that already has
    `stream_options` is re-written, with the standard library, which keeps such integers."""
    body = view.body
    if view.json is not None and "stream_options" not in view.json:
        at = body.index(b"{") + 1
        rest = body[at:]
        member = b'"stream_options":{"include_usage":true}'
        new = body[:at] + member + (b"," if rest.strip() != b"}" else b"") + rest
    else:
        data = json.loads(body)
        options = data.get("stream_options") if isinstance(data.get("stream_options"), dict) else {}
        data["stream_options"] = {**options, "include_usage": True}
        new = json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode()
    return dataclasses.replace(view, body=new)


def usage_cost(pricing: Pricing, view: RequestView, metered: Metered) -> tuple[int, bool]:
    """The cost of what a token-billed answer used (0 when it reported nothing: the caller
    estimates first when it can)."""
    if metered.usage is None:
        return 0, metered.parsed
    return token_cost(pricing, view, metered.usage, metered.model)


def token_cost(pricing: Pricing, view: RequestView, usage: Usage, answer_model: str) -> tuple[int, bool]:
    """A per-setting price for the requested name wins; otherwise the model the upstream says
    answered (a dated snapshot) is priced, falling back to the requested one."""
    model = view.model if view.model in pricing.overrides else (answer_model or view.model)
    return pricing.table.cost(model, usage, pricing.overrides)


# --- streams ----------------------------------------------------------------------------------


class OpenAIStreamMeter:
    """Chat/completions/Responses SSE: finds the usage, withholds the usage-only chunk the
    gateway asked for when the client did not, and keeps the events for an offline estimate in
    case no usage arrives (a client that left, an upstream that cut the stream). `done` once the
    stream's terminator (`data: [DONE]`, or the Responses API's final event) has been fed."""

    def __init__(self, *, withhold_usage: bool) -> None:
        self.done = False
        self._withhold = withhold_usage
        self._split = EventSplitter()
        self._seen: list[bytes] = []
        self._usage: Usage | None = None
        self._model = ""

    def feed(self, chunk: bytes) -> bytes:
        if not self._model and (found := _MODEL.search(chunk)):
            # The model that answered, from the first chunk naming one: a stream that ends without
            # usage (an old Azure api-version, a client that left) is priced at it, not at the
            # name the client sent (an Azure deployment). Searched only until found.
            self._model = found.group(1).decode("utf-8", "replace")
        if not self._split.pending and chunk.endswith(b"\n\n") and not _HAS_USAGE.search(chunk):
            self._seen.append(chunk)  # the common case: whole events, nothing to read or withhold
            # a JSON string never holds a raw newline, so only the terminator starts a line so
            self.done = self.done or chunk.startswith(_DONE) or b"\n" + _DONE in chunk
            return chunk
        out: list[bytes] = []
        for event in self._split.split(chunk):
            if _HAS_USAGE.search(event):
                payload = json_data(event)
                if payload is not None:
                    response = payload.get("response")
                    body: Mapping[str, Any] = response if isinstance(response, dict) else payload
                    usage = read_usage(body.get("usage"))
                    if usage is not None:
                        self._usage = usage
                        self._model = _str(body.get("model")) or self._model
                        self.done = self.done or payload.get("type") in _RESPONSES_END
                        if self._withhold and not payload.get("choices"):
                            continue
            self.done = self.done or event.startswith(_DONE)
            self._seen.append(event)
            out.append(event)
        return b"".join(out)

    def finish(self) -> tuple[bytes, Metered]:
        text = "" if self._usage is not None else generated_text(self._seen)
        return self._split.pending, Metered(self._usage, self._model, text=text)


def generated_text(chunks: list[bytes]) -> str:
    """The text carried by stream events (content deltas, tool-call arguments, Responses deltas)."""
    texts: list[str] = []
    splitter = EventSplitter()
    for chunk in chunks:
        for event in splitter.split(chunk):
            payload = json_data(event)
            if payload is None:
                continue
            if payload.get("type") == "response.output_text.delta":
                texts.append(_str(payload.get("delta")))
            for choice in payload.get("choices") or ():
                if not isinstance(choice, Mapping):
                    continue
                delta = choice.get("delta")
                if isinstance(delta, Mapping):
                    texts.append(_str(delta.get("content")))
                    for call in delta.get("tool_calls") or ():
                        fn = _get(call, "function")
                        texts.append(_str(_get(fn, "name")) + _str(_get(fn, "arguments")))
                else:
                    texts.append(_str(choice.get("text")))
    return "".join(texts)


def estimate_usage(view: RequestView, completion_text: str) -> Usage:
    """Token counts for a call whose answer reported none (tiktoken, offline)."""
    body = view.json or {}
    model = view.model
    messages, prompt = body.get("messages"), body.get("input", body.get("prompt"))
    if isinstance(messages, list):
        tools = body.get("tools") or body.get("functions")
        prompt_tokens = tokens.count_chat_prompt(model, messages, tools if isinstance(tools, list) else None)
    elif isinstance(prompt, list) and all(isinstance(p, str) for p in prompt):
        prompt_tokens = sum(tokens.count_text(model, p) for p in prompt)
    elif isinstance(prompt, list):
        prompt_tokens = tokens.count_chat_prompt(model, prompt)
    else:
        prompt_tokens = tokens.count_text(model, _str(prompt))
    return Usage(
        prompt_tokens=prompt_tokens, completion_tokens=tokens.count_completion(model, completion_text)
    )


# --- kinds ------------------------------------------------------------------------------------


def _read_tokens(payload: dict[str, Any]) -> Metered:
    return Metered(read_usage(payload.get("usage")), _str(payload.get("model")))


@dataclass(frozen=True, slots=True)
class TokenKind(KindDefaults):
    """Chat, completions, Responses and embeddings: billed by tokens from the answer's usage.

    `stream_usage_from`: ask for the usage chunk of streams (`""` always, `None` never, or the
    oldest `api-version` that accepts `stream_options`, as on Azure)."""

    stream_usage_from: str | None = ""
    estimates: ClassVar[bool] = True
    body: Body = Body.JSON
    billed: bool = True

    def prepare(self, view: RequestView) -> RequestView:
        if not view.stream or self.stream_usage_from is None or client_wants_usage(view.json):
            return view
        if self.stream_usage_from:
            version = (parse_qs(view.query).get("api-version") or [""])[0]
            if version < self.stream_usage_from:
                return view
        return with_stream_usage(view)

    def meter(self, view: RequestView, content_type: str) -> Meter:
        if content_type == SSE:  # withhold only the usage chunk the gateway asked for
            asked = self.stream_usage_from is not None and not client_wants_usage(view.json)
            return OpenAIStreamMeter(withhold_usage=asked)
        return JsonMeter(_read_tokens)

    def cost(self, pricing: Pricing, view: RequestView, metered: Metered) -> tuple[int, bool]:
        return usage_cost(pricing, view, metered)

    def estimate(self, view: RequestView, metered: Metered) -> Usage:
        return estimate_usage(view, metered.text)


def _read_images(payload: dict[str, Any]) -> Metered:
    data = payload.get("data")
    units = {"n": float(len(data))} if isinstance(data, list) else {}
    usage = payload.get("usage")
    if isinstance(usage, Mapping):
        details = usage.get("input_tokens_details") or {}
        units |= {
            "text_tokens": float(token_count(_get(details, "text_tokens"))),
            "image_tokens": float(token_count(_get(details, "image_tokens"))),
            "output_tokens": float(token_count(usage.get("output_tokens"))),
        }
    return Metered(model=_str(payload.get("model")), units=units)


@dataclass(frozen=True, slots=True)
class ImagesKind(KindDefaults):
    """Image generation and edits: token-billed models by their usage, others per image."""

    body: Body = Body.JSON
    billed: bool = True

    def prepare(self, view: RequestView) -> RequestView:
        n = (view.json or {}).get("n", 1)
        if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= MAX_IMAGES:
            raise Invalid(f"[BricksLLM] n must be a whole number between 1 and {MAX_IMAGES}")
        return view

    def meter(self, view: RequestView, content_type: str) -> Meter:
        return JsonMeter(_read_images) if content_type == "application/json" else PassMeter()

    def cost(self, pricing: Pricing, view: RequestView, metered: Metered) -> tuple[int, bool]:
        units, body = metered.units, view.json or {}
        model = metered.model or view.model
        if "output_tokens" in units:
            return pricing.table.image_token_cost_micros(
                model or "gpt-image-1",
                text_tokens=int(units["text_tokens"]),
                image_tokens=int(units["image_tokens"]),
                output_tokens=int(units["output_tokens"]),
            )
        n = int(units.get("n", body.get("n") or 1))
        size, quality = body.get("size"), body.get("quality")
        micros, known = pricing.table.image_cost_micros(
            model or "dall-e-2", size if isinstance(size, str) else None,
            quality if isinstance(quality, str) else None, n,
        )  # fmt: skip
        return micros, known and metered.parsed


@dataclass(frozen=True, slots=True)
class SpeechKind(KindDefaults):
    """Text to speech: billed per input character; the audio is passed on as it arrives."""

    body: Body = Body.JSON
    billed: bool = True

    def meter(self, view: RequestView, content_type: str) -> Meter:
        return PassMeter()

    def cost(self, pricing: Pricing, view: RequestView, metered: Metered) -> tuple[int, bool]:
        return pricing.table.speech_cost_micros(view.model, len(_str((view.json or {}).get("input"))))


def _read_transcription(payload: dict[str, Any]) -> Metered:
    seconds = payload.get("duration")
    usage = payload.get("usage")
    if _get(usage, "type") == "duration":
        seconds = _get(usage, "seconds")
    units = {"seconds": float(seconds)} if isinstance(seconds, int | float) else {}
    tokens_used = read_usage(usage) if _get(usage, "type") == "tokens" else None
    return Metered(tokens_used, units=units)


@dataclass(frozen=True, slots=True)
class TranscriptionKind(KindDefaults):
    """Speech to text: token-billed models by their usage, Whisper by the audio's duration
    (given only by `json`/`verbose_json` answers; a text answer is billed 0 and flagged)."""

    body: Body = Body.MULTIPART
    billed: bool = True

    def meter(self, view: RequestView, content_type: str) -> Meter:
        return JsonMeter(_read_transcription) if content_type == "application/json" else PassMeter()

    def cost(self, pricing: Pricing, view: RequestView, metered: Metered) -> tuple[int, bool]:
        if metered.usage is not None:
            return pricing.table.cost(view.model, metered.usage, pricing.overrides)
        seconds = metered.units.get("seconds")
        if seconds is None:
            return 0, False
        return pricing.table.audio_transcription_cost_micros(view.model, seconds)


@dataclass(frozen=True, slots=True)
class PassThroughKind(KindDefaults):
    """Forwarded and recorded, never priced (files, assistants, models, batches, ...)."""

    body: Body = Body.RAW
    billed: bool = False

    def meter(self, view: RequestView, content_type: str) -> Meter:
        return PassMeter()

    def cost(self, pricing: Pricing, view: RequestView, metered: Metered) -> tuple[int, bool]:
        return 0, True


CHAT = TokenKind()
RESPONSES = TokenKind(stream_usage_from=None)  # Responses streams always carry usage
EMBEDDINGS = TokenKind(stream_usage_from=None)
IMAGES = ImagesKind()
IMAGES_MULTIPART = ImagesKind(body=Body.MULTIPART)
SPEECH = SpeechKind()
TRANSCRIPTION = TranscriptionKind()
PASS = PassThroughKind()
UPLOAD = PassThroughKind(body=Body.STREAMED)
