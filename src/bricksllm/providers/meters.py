"""Meters shared by providers: the answer passed on untouched, or a JSON answer read at its end.

`JsonMeter` keeps a copy of what it forwards up to `limit` bytes: a JSON answer larger than
that (a huge `b64_json` image batch) is still relayed as it arrives, but is not parsed and its
`Metered.parsed` is False, so memory stays bounded whatever the upstream sends.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import orjson

from bricksllm.providers.base import Metered

JSON_METER_LIMIT = 32 * 1024 * 1024


class PassMeter:
    """Reads nothing: binary answers, errors, pass-through calls."""

    done = False

    def feed(self, chunk: bytes) -> bytes:
        return chunk

    def finish(self) -> tuple[bytes, Metered]:
        return b"", Metered()


def parse_json_object(body: bytes) -> dict[str, Any] | None:
    """A JSON object, or None. orjson first; the standard library for what orjson refuses
    (integers beyond 64 bits are read exactly there)."""
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError:
        try:
            value = json.loads(body)
        except (ValueError, RecursionError):
            return None
    return value if isinstance(value, dict) else None


class JsonMeter:
    done = False

    def __init__(self, read: Callable[[dict[str, Any]], Metered], limit: int = JSON_METER_LIMIT) -> None:
        self._read = read
        self._limit = limit
        self._parts: list[bytes] = []
        self._size = 0

    def feed(self, chunk: bytes) -> bytes:
        self._size += len(chunk)
        if self._size <= self._limit:
            self._parts.append(chunk)
        else:
            self._parts.clear()
        return chunk

    def finish(self) -> tuple[bytes, Metered]:
        if self._size > self._limit:
            return b"", Metered(parsed=False)
        payload = parse_json_object(self._parts[0] if len(self._parts) == 1 else b"".join(self._parts))
        if payload is None:
            return b"", Metered(parsed=False)
        return b"", self._read(payload)
