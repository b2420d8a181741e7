"""`AiohttpUpstream`: the `Upstream` port on one pooled `aiohttp.ClientSession`.

One session per process, created inside the running loop, with an explicit connection limit
and keep-alive (a session per request would cost a TCP handshake each time). The request URL
is sent exactly as built (`encoded=True`): what the gateway matched is what the provider sees.
aiohttp's exceptions become the gateway's here and only here: connection failures, resets and
malformed answers are `UpstreamError` (502), timeouts `UpstreamTimeout` (504).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterator

import aiohttp
from multidict import CIMultiDictProxy
from yarl import URL

from bricksllm.errors import UpstreamError, UpstreamTimeout
from bricksllm.ports import UpstreamRequest

READ_CHUNK = 256 * 1024


@contextlib.contextmanager
def _translated() -> Iterator[None]:
    try:
        yield
    except TimeoutError as exc:
        raise UpstreamTimeout("[BricksLLM] the provider did not answer in time") from exc
    except (aiohttp.ClientError, OSError) as exc:
        raise UpstreamError(f"[BricksLLM] the provider could not be reached ({type(exc).__name__})") from exc


class AiohttpResponse:
    def __init__(self, response: aiohttp.ClientResponse) -> None:
        self._response = response
        self.status = response.status
        self.headers: CIMultiDictProxy[str] = response.headers

    async def chunks(self) -> AsyncIterator[bytes]:
        content = self._response.content
        while True:
            with _translated():
                chunk = await content.readany()
            if not chunk:
                return
            yield chunk

    async def read(self, limit: int) -> bytes:
        parts: list[bytes] = []
        size = 0
        async for chunk in self.chunks():
            size += len(chunk)
            if size > limit:
                raise UpstreamError(f"[BricksLLM] the provider's answer is over {limit} bytes")
            parts.append(chunk)
        return b"".join(parts)

    async def aclose(self) -> None:
        self._response.close()  # not release(): an unread body must not go back to the pool


class AiohttpUpstream:
    def __init__(self, *, connections: int = 512, connect_timeout: float = 10.0) -> None:
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=connections, keepalive_timeout=30, ttl_dns_cache=300),
            auto_decompress=False,
            skip_auto_headers=("User-Agent", "Accept-Encoding", "Content-Type"),
        )
        self._connect_timeout = connect_timeout

    async def send(self, request: UpstreamRequest) -> AiohttpResponse:
        timeout = aiohttp.ClientTimeout(total=request.timeout, connect=self._connect_timeout)
        with _translated():
            response = await self._session.request(
                request.method,
                URL(request.url, encoded=True),
                headers=request.headers,
                data=request.body if request.body != b"" else None,
                timeout=timeout,
                allow_redirects=False,
            )
        return AiohttpResponse(response)

    async def close(self) -> None:
        await self._session.close()
