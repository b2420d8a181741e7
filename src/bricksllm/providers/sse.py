"""Server-sent events, sans-I/O: split a byte stream into whole events without re-framing them.

Bytes pass through the gateway untouched, so events are cut with their terminating blank line
included and handed back exactly as received; a partial event waits for the next chunk. Lines
may end in CRLF, LF or CR, as the SSE specification allows.
"""

from __future__ import annotations

import re
from typing import Any

import orjson

_EVENT_END = re.compile(rb"\r\n\r\n|\n\n|\r\r")
_LINE = re.compile(rb"\r\n|\n|\r")


class EventSplitter:
    def __init__(self) -> None:
        self.pending = b""

    def split(self, chunk: bytes) -> list[bytes]:
        """The events completed by `chunk`, each with its terminating blank line."""
        data = self.pending + chunk if self.pending else chunk
        events: list[bytes] = []
        start = 0
        for m in _EVENT_END.finditer(data):
            events.append(data[start : m.end()])
            start = m.end()
        self.pending = data[start:]
        return events


def field(event: bytes, name: bytes) -> bytes:
    """The value of an event's `name:` lines (several `data:` lines are joined by LF)."""
    prefix = name + b":"
    values = [ln[len(prefix) :].removeprefix(b" ") for ln in _LINE.split(event) if ln.startswith(prefix)]
    return b"\n".join(values)


def json_data(event: bytes) -> dict[str, Any] | None:
    """The event's `data:` payload as a JSON object, or None (e.g. `[DONE]`, a comment)."""
    data = field(event, b"data")
    if not data or data[:1] != b"{":
        return None
    try:
        payload = orjson.loads(data)
    except orjson.JSONDecodeError:
        return None
    return payload if isinstance(payload, dict) else None
