"""`FakeUpstream`: the `Upstream` port answered in memory by a function, for unit tests.

    upstream = FakeUpstream(lambda req: FakeResponse(200, {"content-type": "application/json"}, [b"{}"]))

The handler may also raise `errors.UpstreamError` / `UpstreamTimeout` to simulate a transport
failure, and a response may carry an exception among its chunks to fail mid-body. Every request
is kept in `requests` (with a streamed body read into bytes) for assertions.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, field

from multidict import CIMultiDict

from bricksllm.errors import UpstreamError
from bricksllm.ports import UpstreamRequest


@dataclass
class FakeResponse:
    status: int
    header_map: Mapping[str, str] = field(default_factory=dict)
    body: Sequence[bytes | Exception] = ()
    closed: bool = False

    def __post_init__(self) -> None:
        self.headers = CIMultiDict(self.header_map)

    async def chunks(self) -> AsyncIterator[bytes]:
        for chunk in self.body:
            if isinstance(chunk, Exception):
                raise chunk
            yield chunk

    async def read(self, limit: int) -> bytes:
        data = b""
        async for chunk in self.chunks():
            data += chunk
            if len(data) > limit:
                raise UpstreamError("[BricksLLM] the provider's answer is too large")
        return data

    async def aclose(self) -> None:
        self.closed = True


@dataclass
class FakeUpstream:
    handler: Callable[[UpstreamRequest], FakeResponse]
    requests: list[tuple[UpstreamRequest, bytes]] = field(default_factory=list)

    async def send(self, request: UpstreamRequest) -> FakeResponse:
        body = request.body
        if not isinstance(body, bytes):
            body = b"".join([chunk async for chunk in _aiter(body)])
        self.requests.append((request, body))
        return self.handler(request)

    async def close(self) -> None:
        return None


async def _aiter(body: AsyncIterable[bytes]) -> AsyncIterator[bytes]:
    async for chunk in body:
        yield chunk
