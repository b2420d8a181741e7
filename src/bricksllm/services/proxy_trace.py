"""What one proxied request's observers need beyond its event, gathered while it runs: the
correlation id, the route pattern, why it was refused, when the upstream was called and
answered, and (for keys that opt in) the answer as it was relayed.

The correlation id is the client's `x-bricksllm-request-id` when it is well-formed (at most 128
characters of `[A-Za-z0-9._:-]`), otherwise a new random one; every reply carries it back in the
same header, the request's log line and its event carry it too.
"""

from __future__ import annotations

import random
import re
import time
from dataclasses import dataclass

from bricksllm.errors import (
    BricksError,
    LimitExceeded,
    NotFound,
    PolicyBlocked,
    TooLarge,
    Unauthorized,
    Unavailable,
    UpstreamError,
    UpstreamTimeout,
)
from bricksllm.ports import Headers
from bricksllm.services.exchange import Reply

REQUEST_ID_HEADER = "x-bricksllm-request-id"
_WELL_FORMED = re.compile(r"[A-Za-z0-9._:-]{1,128}")


def correlation_id(headers: Headers) -> str:
    """The client's id when well-formed, else a new one (128 random bits, hex: ids need to be
    unique, not unguessable, and `random` costs a tenth of `uuid4`)."""
    given = headers.get(REQUEST_ID_HEADER, "")
    if given and _WELL_FORMED.fullmatch(given):
        return given
    return f"{random.getrandbits(128):032x}"


# Forbidden messages -> reasons (the exception type alone does not tell them apart).
_FORBIDDEN = (("path is not allowed", "path_not_allowed"), ("model is not allowed", "model_not_allowed"))


def reason(exc: BricksError) -> str:
    """Why the gateway refused or failed a request, as one word for logs and metrics."""
    message = exc.message
    if isinstance(exc, Unauthorized):
        if "revoked" in message:
            return "revoked"
        return "expired" if "expired" in message else "unauthorized"
    if isinstance(exc, PolicyBlocked):
        return "pii_blocked"
    if isinstance(exc, LimitExceeded):
        return "rate_limited" if exc.code == "rate_limit_exceeded" else "cost_limited"
    if exc.status == 403:
        return next((r for text, r in _FORBIDDEN if text in message), "no_setting")
    if isinstance(exc, UpstreamTimeout):
        return "upstream_timeout"
    if isinstance(exc, UpstreamError):
        return "upstream_error"
    if isinstance(exc, NotFound):
        return "route_not_found"
    if isinstance(exc, TooLarge):
        return "too_large"
    if isinstance(exc, Unavailable):
        return "unavailable"
    return "invalid_request" if exc.status == 400 else exc.code


@dataclass(slots=True)
class Trace:
    """Filled in by `ProxyService` as the request goes; read once by `Recorder.record`."""

    correlation_id: str
    capture_limit: int = 0  # bytes of the answer kept for a key with shouldLogResponse; 0 = none
    route: str = ""  # the endpoint pattern, once the route is resolved
    error: BricksError | None = None  # what refused or failed the request
    forwarded_at: float = 0.0  # perf_counter when the request was sent upstream; 0 = never
    answered_at: float = 0.0  # perf_counter when the upstream's answer (its headers) arrived
    relayed: bytearray | None = None  # the answer as relayed, for a key that captures it

    def tag(self, reply: Reply) -> Reply:
        """The reply, carrying the correlation id."""
        reply.headers.append((REQUEST_ID_HEADER, self.correlation_id))
        return reply

    def capturing(self, response: bool) -> Trace:
        """This trace, keeping what is relayed when `response` (the key's shouldLogResponse)."""
        if response and self.capture_limit:
            self.relayed = bytearray()
        return self

    def forwarded(self) -> None:
        self.forwarded_at = time.perf_counter()

    def answered(self) -> None:
        self.answered_at = time.perf_counter()

    def relay(self, data: bytes) -> None:
        """Keep `data` (a part of the answer sent to the client) up to the capture limit."""
        kept = self.relayed
        if kept is not None and data and len(kept) < self.capture_limit:
            kept += data[: self.capture_limit - len(kept)]
