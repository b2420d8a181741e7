"""The provider plug-in interface: what the proxy pipeline asks of a provider, and nothing more.

A provider is one module declaring
- its **endpoints**: a route pattern, the methods, and a `Kind` that says how the request body
  is read, what is forwarded, how the answer is metered and what it costs;
- how the **upstream** URL and credentials are built from a provider setting, and which client
  headers never reach it;
- its **price table**, its **error shape** (so each SDK raises the right exception), and the
  setting fields it requires (asked by the admin API).

Everything else (keys, limits, events, relaying bytes, timeouts) belongs to the gateway and is
shared. Kinds and meters are sans-I/O: a meter is fed the answer's bytes chunk by chunk and
says at the end what was used, so every one of them is unit-tested with recorded answers.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, ClassVar, Protocol

import orjson

from bricksllm.domain.models import ModelPrice, ProviderSetting, Usage
from bricksllm.domain.pricing import PriceTable
from bricksllm.ports import Headers


class Body(Enum):
    """How a request body is read before anything is decided."""

    JSON = "json"  # must be a JSON object (400 otherwise); model and stream flag read from it
    MULTIPART = "multipart"  # read whole; the `model` form field is read
    STREAMED = "streamed"  # forwarded as it arrives, never buffered (uploads)
    RAW = "raw"  # read whole and forwarded as is (GETs, pass-through calls)


@dataclass(frozen=True, slots=True)
class RequestView:
    """What the pipeline knows of a request once its body is read (frozen: a transform such as
    PII redaction returns a new one)."""

    body: bytes  # what will be forwarded
    json: Mapping[str, Any] | None = None  # the client's parsed JSON object, when the body is one
    model: str = ""
    stream: bool = False
    content_type: str = ""
    query: str = ""  # raw query string (e.g. Azure's api-version)
    action: str = ""  # what a screening policy decided (allowed, warned, redacted, blocked)
    findings: tuple[str, ...] = ()  # what it found: entity types, never values


@dataclass(frozen=True, slots=True)
class Metered:
    """What an answer says was used. `usage` None: the answer reported none (`text` then holds
    what was generated, for an offline estimate). `parsed` False: a successful answer that could
    not be read, billed from the request alone and flagged."""

    usage: Usage | None = None
    model: str = ""  # the model the upstream says answered, if it says
    units: Mapping[str, float] = field(default_factory=dict)  # images: "n"; audio: "seconds"
    text: str = ""
    parsed: bool = True
    failure: str = ""  # the meter gave up on a broken answer: the stream ends with this error


@dataclass(frozen=True, slots=True)
class Pricing:
    """A provider's price table with a setting's per-model overrides on top."""

    table: PriceTable
    overrides: Mapping[str, ModelPrice] = field(default_factory=dict)


class Meter(Protocol):
    """Sans-I/O reader of one answer body, fed chunk by chunk as it is relayed."""

    done: bool  # True once the answer is complete (e.g. a custom provider's end word was seen)

    def feed(self, chunk: bytes) -> bytes:
        """Take the next bytes of the answer; return the bytes to send on to the client (the same
        bytes except where the gateway withholds what it asked for on the client's behalf)."""
        ...

    def finish(self) -> tuple[bytes, Metered]:
        """End of the answer: bytes still held back that must be sent, and what was used."""
        ...


class Kind(Protocol):
    """The behaviour of an endpoint: chat, embeddings, a pass-through call, an upload, ..."""

    @property
    def body(self) -> Body: ...
    @property
    def billed(self) -> bool:
        """False: forwarded and recorded, never priced."""
        ...

    @property
    def estimates(self) -> bool:
        """Answers may lack usage: then `estimate` counts tokens offline."""
        ...

    def describe(self, body: Mapping[str, Any]) -> tuple[str, bool]:
        """(model, stream flag) of a parsed JSON request."""
        ...

    def prepare(self, view: RequestView) -> RequestView:
        """The request to forward (e.g. with stream usage asked for). Returns `view` unchanged
        when nothing needs to change, so unchanged bytes are forwarded untouched."""
        ...

    def meter(self, view: RequestView, content_type: str) -> Meter:
        """A meter for a successful answer of this content type."""
        ...

    def cost(self, pricing: Pricing, view: RequestView, metered: Metered) -> tuple[int, bool]:
        """Micro-dollars, and whether the model had a price (False: a default was used)."""
        ...

    def estimate(self, view: RequestView, metered: Metered) -> Usage:
        """Token counts from the request and the generated text, for an answer that reported no
        usage (tiktoken, offline; may load a tokenizer: call it in a thread)."""
        ...


class KindDefaults:
    """What most kinds do: model and stream flag from `model` / `stream`, nothing to prepare,
    nothing to estimate."""

    __slots__ = ()
    estimates: ClassVar[bool] = False

    def describe(self, body: Mapping[str, Any]) -> tuple[str, bool]:
        model = body.get("model")
        return (model if isinstance(model, str) else ""), body.get("stream") is True

    def prepare(self, view: RequestView) -> RequestView:
        return view

    def estimate(self, view: RequestView, metered: Metered) -> Usage:
        return Usage()


@dataclass(frozen=True, slots=True)
class Endpoint:
    methods: frozenset[str]
    pattern: str  # full route pattern as used in allowedPaths, e.g. /api/providers/openai/v1/files/:file_id
    kind: Kind
    aliases: tuple[str, ...] = ()  # other patterns allowedPaths may name it by


@dataclass(frozen=True, slots=True)
class Match:
    """A request path resolved to a provider's endpoint."""

    endpoint: Endpoint
    path: str  # the decoded path relative to the provider's prefix, e.g. /v1/files/file-abc
    params: Mapping[str, str] = field(default_factory=dict)


class Provider(Protocol):
    @property
    def name(self) -> str: ...
    @property
    def prefix(self) -> str:
        """e.g. /api/providers/openai"""
        ...

    @property
    def prices(self) -> PriceTable: ...
    @property
    def required_setting(self) -> tuple[str, ...]:
        """Setting entries the provider cannot work without (`a|b`: one of them)."""
        ...

    @property
    def dropped_headers(self) -> frozenset[str]:
        """Lower-case client headers never forwarded to it."""
        ...

    def match(self, method: str, path: str) -> Match | None:
        """`path` is relative to the prefix, decoded (see `domain.text.canonical_path`)."""
        ...

    def upstream_url(self, setting: ProviderSetting, match: Match, query: str) -> str: ...

    def upstream_headers(self, setting: ProviderSetting, client: Headers) -> list[tuple[str, str]]:
        """Credentials and provider headers to send, built from the setting (and, where the
        provider needs them, from the client's headers, e.g. Anthropic's API version)."""
        ...

    def default_model(self, match: Match) -> str:
        """The model of a request whose body names none (Azure: the deployment)."""
        ...

    def error_body(self, status: int, message: str, code: str) -> bytes:
        """A gateway error in this provider's wire shape."""
        ...

    def stream_error(self, message: str) -> bytes:
        """The event that ends a stream the upstream broke, in this provider's shape."""
        ...


# --- helpers shared by providers -------------------------------------------------------------


class RouteTable:
    """Matches a method and a path against route patterns with `:params`: static paths by dict,
    the others by regex, in declaration order."""

    def __init__(self, prefix: str, routes: Sequence[tuple[str, str, Kind]]) -> None:
        """`routes`: (space-separated methods, pattern relative to `prefix`, kind)."""
        self._static: dict[tuple[str, str], Endpoint] = {}
        self._dynamic: list[tuple[re.Pattern[str], Endpoint]] = []
        for methods, pattern, kind in routes:
            endpoint = Endpoint(frozenset(methods.split()), prefix + pattern, kind)
            if ":" in pattern:
                regex = re.sub(r":([a-z_]+)", r"(?P<\1>[^/]+)", pattern)
                self._dynamic.append((re.compile(f"^{regex}$"), endpoint))
            else:
                for method in endpoint.methods:
                    self._static[(method, pattern)] = endpoint

    def match(self, method: str, path: str) -> Match | None:
        endpoint = self._static.get((method, path))
        if endpoint is not None:
            return Match(endpoint, path)
        for regex, endpoint in self._dynamic:
            if method in endpoint.methods and (m := regex.match(path)):
                return Match(endpoint, path, m.groupdict())
        return None

    def patterns(self) -> set[str]:
        return {e.pattern for e in self._static.values()} | {e.pattern for _, e in self._dynamic}


def join_url(base: str, path: str, query: str) -> str:
    """`base` (no trailing slash needed) + an encoded `path` + `?query` when there is one."""
    return base.rstrip("/") + path + ("?" + query if query else "")


OPENAI_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "invalid_request_error",
    429: "rate_limit_error",
}


def openai_error_body(status: int, message: str, code: str) -> bytes:
    """OpenAI's error shape, which the OpenAI SDKs (and most OpenAI-compatible clients) read."""
    kind = OPENAI_ERROR_TYPES.get(status, "api_error")
    return orjson.dumps({"error": {"message": message, "type": kind, "code": code}})


def openai_stream_error(message: str) -> bytes:
    return b"data: " + orjson.dumps({"error": {"message": message, "type": "bricksllm_error"}}) + b"\n\n"


class OpenAIShape:
    """Defaults of an OpenAI-format provider: its error shapes, no default model."""

    error_body = staticmethod(openai_error_body)
    stream_error = staticmethod(openai_stream_error)

    def default_model(self, match: Match) -> str:
        return ""
