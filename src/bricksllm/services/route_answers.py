"""Upstream answers as a route holds them before committing to a step, and cached answers.

A step has answered once its first byte is in hand: `Primed` is a stream whose first chunk was
read (so a stream that dies before it fails over), `Buffered` a whole non-streamed answer (so a
body cut half-way fails over too). Both are `ports.UpstreamResponse`s, handed to the proxy's own
relay, meters and pricing unchanged.

A cached answer is the answering step's index, the content type and the bytes the client got;
`tee` stores a stream as it is relayed, before its last event goes out (a client that asks
again as soon as it has read `[DONE]` gets the hit).
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

from multidict import CIMultiDict

from bricksllm.ports import Headers, UpstreamResponse

STREAM_END = b"data: [DONE]"


class Primed:
    """A streamed answer whose first chunk has been read."""

    def __init__(self, response: UpstreamResponse, first: bytes, rest: AsyncIterator[bytes]) -> None:
        self._response = response
        self._first = first
        self._rest = rest
        self.status = response.status
        self.headers: Headers = response.headers

    async def chunks(self) -> AsyncIterator[bytes]:
        yield self._first
        async for chunk in self._rest:
            yield chunk

    async def read(self, limit: int) -> bytes:
        parts = [chunk async for chunk in self.chunks()]
        return b"".join(parts)[:limit]

    async def aclose(self) -> None:
        await self._response.aclose()


class Buffered:
    """A whole answer already read (its connection released)."""

    def __init__(self, status: int, headers: Headers, body: bytes) -> None:
        self.status = status
        copy = CIMultiDict(headers)
        copy.popall("Transfer-Encoding", None)
        copy["Content-Length"] = str(len(body))
        self.headers: Headers = copy
        self._body = body

    async def chunks(self) -> AsyncIterator[bytes]:
        if self._body:
            yield self._body

    async def read(self, limit: int) -> bytes:
        return self._body[:limit]

    async def aclose(self) -> None:
        return None


@dataclass(frozen=True, slots=True)
class CachedAnswer:
    step: int
    content_type: str
    body: bytes

    def encode(self) -> bytes:
        return b"%d\n%s\n" % (self.step, self.content_type.encode()) + self.body

    @classmethod
    def decode(cls, value: bytes) -> CachedAnswer | None:
        step, _, rest = value.partition(b"\n")
        content_type, sep, body = rest.partition(b"\n")
        if not sep or not step.lstrip(b"-").isdigit():
            return None
        return cls(int(step), content_type.decode(), body)

    @property
    def streamed(self) -> bool:
        return self.content_type.startswith("text/event-stream")


async def replay(body: bytes) -> AsyncGenerator[bytes, None]:
    """A cached stream, event by event."""
    for event in body.split(b"\n\n"):
        if event:
            yield event + b"\n\n"


async def tee(
    stream: AsyncGenerator[bytes, None], limit: int, store: Callable[[bytes], Awaitable[None]]
) -> AsyncGenerator[bytes, None]:
    """Relay `stream`; when it ends with `[DONE]` within `limit` bytes, `store` it first."""
    parts: list[bytes] = []
    size = 0
    try:
        async for chunk in stream:
            size += len(chunk)
            if size <= limit:
                parts.append(chunk)
                if chunk.rstrip().endswith(STREAM_END):  # not a `[DONE]` quoted inside an event
                    await store(b"".join(parts))
            yield chunk
    finally:
        await stream.aclose()
