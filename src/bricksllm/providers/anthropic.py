"""Anthropic: Messages (JSON and SSE), the legacy Text Completions route, token counting.

The official `anthropic` SDK works with `base_url` = `http://host:8002/api/providers/anthropic`
and a gateway key as `api_key` (sent as `x-api-key`, or `Authorization: Bearer` with
`auth_token`). Upstream, the setting's `apikey` goes in `x-api-key`; the client's
`anthropic-version` is passed through (a default when absent), and so is `anthropic-beta`.
Gateway errors use Anthropic's shape so the SDK raises the right exception class.

Usage: a Messages answer reports `input_tokens` (fresh), `cache_creation_input_tokens` and
`cache_read_input_tokens` besides `output_tokens`; a stream splits them between
`message_start` (input side) and `message_delta` (cumulative output, sometimes input too).
The legacy `/v1/complete` reports no usage at all: its tokens are estimated offline.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import orjson

from bricksllm.domain import tokens
from bricksllm.domain.models import ProviderSetting, Usage, token_count
from bricksllm.domain.pricing import PriceTable
from bricksllm.domain.text import encode_path
from bricksllm.ports import Headers
from bricksllm.providers.base import (
    Body,
    Kind,
    KindDefaults,
    Match,
    Meter,
    Metered,
    Pricing,
    RequestView,
    RouteTable,
    join_url,
)
from bricksllm.providers.meters import JsonMeter, PassMeter
from bricksllm.providers.openai_format import PASS, SSE, usage_cost
from bricksllm.providers.sse import EventSplitter, field, json_data

DEFAULT_VERSION = "2023-06-01"
# Rough offline estimate for the legacy route (Claude's tokenizer is not public): cl100k_base.
_ESTIMATE_MODEL = "gpt-4"
ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    503: "overloaded_error",
    529: "overloaded_error",
}


def _str(value: Any) -> str:
    return value if isinstance(value, str) else ""


def read_usage(u: Any, base: Usage | None = None) -> Usage | None:
    """Anthropic usage as the gateway's: prompt = fresh + cache writes + cache reads. Fields
    absent from `u` keep their value in `base` (a stream's `message_delta` after `message_start`)."""
    if not isinstance(u, Mapping):
        return None
    base = base or Usage()
    written = base.cache_write_tokens
    read = base.cached_prompt_tokens
    fresh = base.prompt_tokens - written - read
    if "input_tokens" in u:
        fresh = token_count(u["input_tokens"])
    if "cache_creation_input_tokens" in u:
        written = token_count(u["cache_creation_input_tokens"])
    if "cache_read_input_tokens" in u:
        read = token_count(u["cache_read_input_tokens"])
    output = token_count(u["output_tokens"]) if "output_tokens" in u else base.completion_tokens
    return Usage(
        prompt_tokens=fresh + written + read,
        completion_tokens=output,
        cached_prompt_tokens=read,
        cache_write_tokens=written,
    )


class MessagesStreamMeter:
    """Reads `message_start` and `message_delta`; every event goes on untouched. `done` once
    `message_stop` has been fed."""

    def __init__(self) -> None:
        self.done = False
        self._split = EventSplitter()
        self._usage: Usage | None = None
        self._model = ""
        self._texts: list[str] = []

    def feed(self, chunk: bytes) -> bytes:
        for event in self._split.split(chunk):
            if b"message_stop" in event and field(event, b"event") == b"message_stop":
                self.done = True
            elif b"message_start" in event or b"message_delta" in event:
                payload = json_data(event)
                if payload is None:
                    continue
                message = payload.get("message") if payload.get("type") == "message_start" else payload
                if isinstance(message, Mapping):
                    self._model = _str(message.get("model")) or self._model
                    self._usage = read_usage(message.get("usage"), self._usage) or self._usage
            elif b"content_block_delta" in event and self._usage is None:
                payload = json_data(event)
                delta = payload.get("delta") if payload else None
                if isinstance(delta, Mapping):
                    self._texts.append(_str(delta.get("text")) + _str(delta.get("partial_json")))
        return chunk

    def finish(self) -> tuple[bytes, Metered]:
        return b"", Metered(self._usage, self._model, text="".join(self._texts))


def _read_message(payload: dict[str, Any]) -> Metered:
    return Metered(read_usage(payload.get("usage")), _str(payload.get("model")))


def _prompt_text(body: Mapping[str, Any]) -> str:
    """The text of a Messages request (system and every text block), for offline estimates."""
    parts: list[str] = []
    system = body.get("system")
    blocks = [system] if isinstance(system, str) else (system if isinstance(system, list) else [])
    for message in body.get("messages") or ():
        content = message.get("content") if isinstance(message, Mapping) else None
        blocks += [content] if isinstance(content, str) else (content if isinstance(content, list) else [])
    for block in blocks:
        if isinstance(block, Mapping):
            block = block.get("text")
        parts.append(_str(block))
    return "\n".join(parts)


class CompletionStreamMeter:
    """Legacy `/v1/complete` stream: `completion` events carry text, never usage."""

    done = False

    def __init__(self) -> None:
        self._split = EventSplitter()
        self._texts: list[str] = []
        self._model = ""

    def feed(self, chunk: bytes) -> bytes:
        for event in self._split.split(chunk):
            payload = json_data(event)
            if payload is not None:
                self._texts.append(_str(payload.get("completion")))
                self._model = _str(payload.get("model")) or self._model
        return chunk

    def finish(self) -> tuple[bytes, Metered]:
        return b"", Metered(None, self._model, text="".join(self._texts))


def _read_completion(payload: dict[str, Any]) -> Metered:
    return Metered(None, _str(payload.get("model")), text=_str(payload.get("completion")))


def _legacy_prompt(body: Mapping[str, Any]) -> str:
    return _str(body.get("prompt"))


@dataclass(frozen=True, slots=True)
class AnthropicKind(KindDefaults):
    """Messages and the legacy Text Completions API: the same billing (usage when the answer
    reports it, Claude's text estimated offline otherwise), their own meters and prompt text."""

    stream_meter: Callable[[], Meter]
    read: Callable[[dict[str, Any]], Metered]
    prompt_text: Callable[[Mapping[str, Any]], str]
    estimates: ClassVar[bool] = True
    body: Body = Body.JSON
    billed: bool = True

    def meter(self, view: RequestView, content_type: str) -> Meter:
        if content_type == SSE:
            return self.stream_meter()
        return JsonMeter(self.read) if content_type == "application/json" else PassMeter()

    def cost(self, pricing: Pricing, view: RequestView, metered: Metered) -> tuple[int, bool]:
        return usage_cost(pricing, view, metered)

    def estimate(self, view: RequestView, metered: Metered) -> Usage:
        return Usage(
            prompt_tokens=tokens.count_text(_ESTIMATE_MODEL, self.prompt_text(view.json or {})),
            completion_tokens=tokens.count_completion(_ESTIMATE_MODEL, metered.text),
        )


MESSAGES = AnthropicKind(MessagesStreamMeter, _read_message, _prompt_text)
COMPLETE = AnthropicKind(CompletionStreamMeter, _read_completion, _legacy_prompt)  # no usage, ever
ROUTES: list[tuple[str, str, Kind]] = [
    ("POST", "/v1/messages", MESSAGES),
    ("POST", "/v1/complete", COMPLETE),
    ("POST", "/v1/messages/count_tokens", PASS),
    ("GET", "/v1/models", PASS),
    ("GET", "/v1/models/:model_id", PASS),
]


class AnthropicProvider:
    name = "anthropic"
    prefix = "/api/providers/anthropic"
    required_setting: tuple[str, ...] = ("apikey",)
    dropped_headers = frozenset({"anthropic-version"})  # sent from upstream_headers, with a default

    def __init__(self) -> None:
        self.prices = PriceTable.load("anthropic")
        self.routes = RouteTable(self.prefix, ROUTES)

    def match(self, method: str, path: str) -> Match | None:
        return self.routes.match(method, path)

    def default_model(self, match: Match) -> str:
        return ""

    def upstream_url(self, setting: ProviderSetting, match: Match, query: str) -> str:
        base = (setting.base_url or "https://api.anthropic.com").rstrip("/").removesuffix("/v1")
        return join_url(base, encode_path(match.path), query)

    def upstream_headers(self, setting: ProviderSetting, client: Headers) -> list[tuple[str, str]]:
        return [
            ("x-api-key", setting.setting.get("apikey", "")),
            ("anthropic-version", client.get("anthropic-version") or DEFAULT_VERSION),
        ]

    @staticmethod
    def error_body(status: int, message: str, code: str) -> bytes:
        kind = ERROR_TYPES.get(status, "api_error")
        return orjson.dumps({"type": "error", "error": {"type": kind, "message": message}})

    @staticmethod
    def stream_error(message: str) -> bytes:
        body = orjson.dumps({"type": "error", "error": {"type": "api_error", "message": message}})
        return b"event: error\ndata: " + body + b"\n\n"
