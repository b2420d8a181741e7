"""Custom providers: data, not code. A `CustomProvider` (created through the admin API) becomes a
provider whose endpoints are its route configs.

`POST /api/custom/providers/{name}{path}` is sent to the route config's `target_url`. The
model, the stream flag, the prompt and the completion are found with the config's locations.
They are written in the reference's GJSON style (`messages.#.content`, `choices.0.delta.content`:
dot-separated keys, `#` for every element, numbers for indexes), which is translated to
JMESPath and evaluated by the `jmespath` library; a location using any other syntax is taken as
a JMESPath expression. Tokens are counted offline (tiktoken) from the prompt and completion
text and priced by the setting's `prices` (0 and flagged otherwise).

The credential is the setting's entry named by the provider's `authentication_param` (default
`apikey`), sent as `Authorization: Bearer ...`, or in the header named by the setting's
`authHeader` entry, as is.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import jmespath
from jmespath.exceptions import JMESPathError

from bricksllm.domain import tokens
from bricksllm.domain.models import CustomProvider, ProviderSetting, RouteConfig, Usage
from bricksllm.domain.pricing import PriceTable
from bricksllm.ports import Headers
from bricksllm.providers.base import (
    Body,
    Endpoint,
    KindDefaults,
    Match,
    Meter,
    Metered,
    OpenAIShape,
    Pricing,
    RequestView,
)
from bricksllm.providers.meters import JsonMeter, PassMeter
from bricksllm.providers.openai_format import SSE, usage_cost
from bricksllm.providers.sse import EventSplitter, field, json_data

PREFIX = "/api/custom/providers"
GENERIC_PATTERN = PREFIX + "/:provider/*wildcard"  # the reference's allowedPaths pattern
_GJSON = re.compile(r"[A-Za-z0-9_\-]+(?:\.[A-Za-z0-9_\-#]+)*")


@functools.lru_cache(maxsize=1024)
def compile_location(location: str) -> Any:
    """A compiled JMESPath expression for a location; ValueError when it does not parse."""
    if _GJSON.fullmatch(location):
        parts = []
        for part in location.split("."):
            parts.append("[*]" if part == "#" else f"[{part}]" if part.isdigit() else f'."{part}"')
        expression = "".join(parts).lstrip(".")
    else:
        expression = location
    try:
        return jmespath.compile(expression)
    except JMESPathError as exc:
        raise ValueError(f"not a GJSON-style path or a JMESPath expression: {exc}") from None


def text_at(location: str, data: Any) -> str:
    """The text at `location`: a string, or the strings of a (nested) list joined together."""
    if not location:
        return ""
    found = compile_location(location).search(data)
    parts: list[str] = []
    stack = [found]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            parts.append(item)
        elif isinstance(item, list):
            stack.extend(reversed(item))
    return "".join(parts)


class CustomStreamMeter:
    """Relays SSE events until the route's end word (forwarded, then the stream is done); gives
    up after `max_empty` consecutive events without data."""

    def __init__(self, config: RouteConfig) -> None:
        self.done = False
        self._config = config
        self._split = EventSplitter()
        self._texts: list[str] = []
        self._empty = 0
        self._failure = ""

    def feed(self, chunk: bytes) -> bytes:
        if self.done:  # nothing after the end word (or after giving up) reaches the client
            return b""
        out: list[bytes] = []
        for event in self._split.split(chunk):
            data = field(event, b"data").strip()
            out.append(event)
            if self._config.stream_end_word and data == self._config.stream_end_word.encode():
                self.done = True
                break
            if not data:
                self._empty += 1
                limit = self._config.stream_max_empty_messages
                if limit and self._empty >= limit:
                    self.done = True
                    self._failure = f"[BricksLLM] the provider sent {limit} empty messages in a row"
                    break
                continue
            self._empty = 0
            payload = json_data(event)
            if payload is not None:
                self._texts.append(text_at(self._config.stream_response_completion_location, payload))
        return b"".join(out)

    def finish(self) -> tuple[bytes, Metered]:
        rest = b"" if self.done else self._split.pending
        return rest, Metered(None, text="".join(self._texts), failure=self._failure)


@dataclass(frozen=True, slots=True)
class CustomKind(KindDefaults):
    config: RouteConfig
    estimates: ClassVar[bool] = True
    body: Body = Body.JSON
    billed: bool = True

    def describe(self, body: Mapping[str, Any]) -> tuple[str, bool]:
        model = text_at(self.config.model_location, body)
        stream = bool(self.config.stream_location) and (
            compile_location(self.config.stream_location).search(body) is True
        )
        return model, stream

    def meter(self, view: RequestView, content_type: str) -> Meter:
        if content_type == SSE and view.stream:
            return CustomStreamMeter(self.config)
        if content_type != "application/json":
            return PassMeter()
        location = self.config.response_completion_location
        return JsonMeter(lambda payload: Metered(None, text=text_at(location, payload)))

    def cost(self, pricing: Pricing, view: RequestView, metered: Metered) -> tuple[int, bool]:
        return usage_cost(pricing, view, metered)

    def estimate(self, view: RequestView, metered: Metered) -> Usage:
        prompt = text_at(self.config.request_prompt_location, view.json or {})
        return Usage(
            prompt_tokens=tokens.count_text(view.model, prompt),
            completion_tokens=tokens.count_completion(view.model, metered.text),
        )


class CustomProviderAdapter(OpenAIShape):
    """A `Provider` made from one custom provider's configuration."""

    required_setting: tuple[str, ...] = ()
    dropped_headers: frozenset[str] = frozenset()

    def __init__(self, config: CustomProvider) -> None:
        self.name = config.provider
        self.prefix = f"{PREFIX}/{config.provider}"
        self.prices = PriceTable.load("none")
        self._param = config.authentication_param or "apikey"
        self._endpoints = {
            rc.path: Endpoint(frozenset({"POST"}), self.prefix + rc.path, CustomKind(rc), (GENERIC_PATTERN,))
            for rc in config.route_configs
        }
        self._targets = {rc.path: rc.target_url for rc in config.route_configs}

    def match(self, method: str, path: str) -> Match | None:
        endpoint = self._endpoints.get(path)
        if endpoint is None or method not in endpoint.methods:
            return None
        return Match(endpoint, path)

    def upstream_url(self, setting: ProviderSetting, match: Match, query: str) -> str:
        target = self._targets[match.path]
        return target + ("&" if "?" in target else "?") + query if query else target

    def upstream_headers(self, setting: ProviderSetting, client: Headers) -> list[tuple[str, str]]:
        credential = setting.setting.get(self._param, "")
        if not credential:
            return []
        header = setting.setting.get("authHeader")
        return [(header, credential)] if header else [("Authorization", f"Bearer {credential}")]
