"""What the proxy's HTTP server and `ProxyService` exchange: an `Inbound` request, a `Reply`.

The server (aiohttp today, a protocol-level one later) only translates between the wire and
these two values; everything a request means is decided by the service. A reply's body is
either bytes or a stream of chunks: the server writes chunks as they come and, if the client
goes away mid-stream, calls `aclose()` on the stream so the service can stop the upstream call
and still bill what was generated.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass, field
from typing import Protocol

from bricksllm.ports import Headers


class BodySource(Protocol):
    """The client's request body, not read yet: the service reads it whole or streams it."""

    content_length: int | None

    async def read(self, limit: int) -> bytes:
        """The whole body; `errors.TooLarge` beyond `limit` bytes."""
        ...

    def chunks(self) -> AsyncIterator[bytes]:
        """The body as it arrives, for uploads that are forwarded without buffering."""
        ...


@dataclass(frozen=True, slots=True)
class Inbound:
    method: str
    path: str  # as received: percent-encoded, without the query
    query: str  # raw query string, without "?"
    headers: Headers
    body: BodySource


@dataclass(frozen=True, slots=True)
class Reply:
    status: int
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""
    stream: AsyncGenerator[bytes, None] | None = None  # when set, the body; `body` is ignored


class ProxyHandler(Protocol):
    """What a proxy server calls for every request except its own health check."""

    async def handle(self, inbound: Inbound) -> Reply: ...
