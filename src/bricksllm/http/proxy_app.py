"""The proxy server (port 8002) on aiohttp.web: it only translates between aiohttp and
`services.exchange` (`Inbound` in, `Reply` out); `ProxyHandler` decides everything.

A streamed reply is written chunk by chunk as the service yields it; when the client goes away
the reply stream is closed (`aclose`), which lets the service stop the upstream call and bill
what was generated.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import aiohttp
from aiohttp import web

from bricksllm.errors import TooLarge
from bricksllm.services.exchange import Inbound, ProxyHandler

_GONE = (ConnectionResetError, aiohttp.ClientConnectionResetError)


class AiohttpBody:
    """`BodySource` over an aiohttp request."""

    def __init__(self, request: web.Request) -> None:
        self._request = request
        self.content_length = request.content_length

    async def read(self, limit: int) -> bytes:
        if self.content_length is not None and self.content_length > limit:
            raise TooLarge(f"[BricksLLM] request body over {limit // 2**20} MiB")
        parts: list[bytes] = []
        size = 0
        async for chunk in self._request.content.iter_any():
            size += len(chunk)
            if size > limit:
                raise TooLarge(f"[BricksLLM] request body over {limit // 2**20} MiB")
            parts.append(chunk)
        return b"".join(parts)

    async def chunks(self) -> AsyncIterator[bytes]:
        async for chunk in self._request.content.iter_any():
            yield chunk


def create_proxy_app(handler: ProxyHandler) -> web.Application:
    async def health(request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def proxy(request: web.Request) -> web.StreamResponse:
        inbound = Inbound(
            request.method,
            request.raw_path.partition("?")[0],
            request.rel_url.raw_query_string,
            request.headers,
            AiohttpBody(request),
        )
        reply = await handler.handle(inbound)
        if reply.stream is None:
            return web.Response(status=reply.status, body=reply.body, headers=reply.headers)
        out = web.StreamResponse(status=reply.status, headers=reply.headers)
        try:
            await out.prepare(request)
            async for chunk in reply.stream:
                await out.write(chunk)
        except _GONE:  # the client went away: stop the upstream call, bill what was generated
            await reply.stream.aclose()
            return out
        with contextlib.suppress(*_GONE):
            await out.write_eof()
        return out

    app = web.Application(client_max_size=2**63 - 1)  # bodies are bounded by the service
    app.router.add_route("GET", "/api/health", health)
    app.router.add_route("POST", "/api/health", health)
    app.router.add_route("*", "/{tail:.*}", proxy)
    return app
