"""`AiohttpUpstream`: the `Upstream` port on one pooled `aiohttp.ClientSession`.

One session per process, created inside the running loop, with an explicit connection limit
and keep-alive (a session per request would cost a TCP handshake each time). The request URL
is sent exactly as built (`encoded=True`): what the gateway matched is what the provider sees.
aiohttp's exceptions become the gateway's here and only here: connection failures, resets and
malformed answers are `UpstreamError` (502), timeouts `UpstreamTimeout` (504). The per-phase
timeouts are those of the fast adapter (aiohttp's first-byte clock also covers the connection
and the upload), and proxies are decided by the same `proxies.Proxies`, so both pass one
contract suite (tests/contract/test_upstream.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import AsyncIterator, Iterator

import aiohttp
from multidict import CIMultiDictProxy
from yarl import URL

from bricksllm.errors import UpstreamError, UpstreamTimeout
from bricksllm.ports import UpstreamRequest
from bricksllm.upstream.proxies import Proxies, Proxy

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
    def __init__(self, response: aiohttp.ClientResponse, idle_timeout: float | None = None) -> None:
        self._response = response
        self._idle = idle_timeout
        self.status = response.status
        self.headers: CIMultiDictProxy[str] = response.headers

    async def chunks(self) -> AsyncIterator[bytes]:
        content = self._response.content
        while True:
            with _translated():
                if self._idle is None:
                    chunk = await content.readany()
                else:
                    async with asyncio.timeout(self._idle):
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
    def __init__(
        self,
        *,
        connections: int = 512,
        connect_timeout: float = 10.0,
        first_byte_timeout: float | None = None,
        idle_timeout: float | None = None,
        ssl_context: ssl.SSLContext | None = None,
        proxies: Proxies | None = None,
    ) -> None:
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(
                limit=connections, keepalive_timeout=30, ttl_dns_cache=300, ssl=ssl_context or True
            ),
            auto_decompress=False,
            skip_auto_headers=("User-Agent", "Accept-Encoding", "Content-Type"),
        )
        self._connect_timeout = connect_timeout
        self._first_byte = first_byte_timeout
        self._idle = idle_timeout
        self._proxies = proxies or Proxies()

    async def send(self, request: UpstreamRequest) -> AiohttpResponse:
        timeout = aiohttp.ClientTimeout(total=request.timeout, connect=self._connect_timeout)
        url = URL(request.url, encoded=True)
        proxy = self._proxy(url) if self._proxies else None
        with _translated():
            async with asyncio.timeout(self._first_byte):
                response = await self._session.request(
                    request.method,
                    url,
                    headers=request.headers,
                    data=request.body if request.body != b"" else None,
                    timeout=timeout,
                    allow_redirects=False,
                    proxy=proxy.url if proxy else None,
                    proxy_headers={"Proxy-Authorization": proxy.authorization}
                    if proxy and proxy.authorization
                    else None,
                )
        return AiohttpResponse(response, self._idle)

    def _proxy(self, url: URL) -> Proxy | None:
        if url.host is None or url.port is None:
            return None
        return self._proxies.for_origin(url.scheme, url.host, url.port)

    async def close(self) -> None:
        await self._session.close()
