"""Who one proxied request is and what it said: its correlation id and (for keys that opt in)
the answer as it was relayed. Its timings are `proxy_record.Timing`, its reason the error's.

The correlation id is the client's `x-bricksllm-request-id` when it is well-formed (at most 128
characters of `[A-Za-z0-9._:-]`), otherwise a new random one; every reply carries it back in the
same header, the request's log line and its event carry it too.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass

from bricksllm.ports import Headers

REQUEST_ID_HEADER = "x-bricksllm-request-id"
_WELL_FORMED = re.compile(r"[A-Za-z0-9._:-]{1,128}")


def correlation_id(headers: Headers) -> str:
    """The client's id when well-formed, else a new one (128 random bits, hex: ids need to be
    unique, not unguessable, and `random` costs a tenth of `uuid4`)."""
    given = headers.get(REQUEST_ID_HEADER, "")
    if given and _WELL_FORMED.fullmatch(given):
        return given
    return f"{random.getrandbits(128):032x}"


@dataclass(slots=True)
class Trace:
    """Filled in by `ProxyService` as the request goes; read once by `Recorder.record`."""

    correlation_id: str
    capture_limit: int = 0  # bytes of the answer kept for a key with shouldLogResponse; 0 = none
    relayed: bytearray | None = None  # the answer as relayed, for a key that captures it

    def header(self) -> tuple[str, str]:
        """The header every reply carries back."""
        return REQUEST_ID_HEADER, self.correlation_id

    def capturing(self, response: bool) -> Trace:
        """This trace, keeping what is relayed when `response` (the key's shouldLogResponse)."""
        if response and self.capture_limit:
            self.relayed = bytearray()
        return self

    def relay(self, data: bytes) -> None:
        """Keep `data` (a part of the answer sent to the client) up to the capture limit."""
        kept = self.relayed
        if kept is not None and data and len(kept) < self.capture_limit:
            kept += data[: self.capture_limit - len(kept)]
