"""The proxy server (port 8002): a thin aiohttp layer around `services.proxy.ProxyService`.

It reads what the pipeline needs from the request, forwards the client's bytes upstream with
the provider credential in place of the client's key, and relays the answer: buffered for JSON,
event by event for server-sent events (see `http.relay`). Gateway errors use OpenAI's error shape.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import aiohttp
import orjson
from aiohttp import web
from yarl import URL

from bricksllm.errors import BricksError, Invalid, LimitExceeded, TooLarge, UpstreamError, UpstreamTimeout
from bricksllm.http import relay
from bricksllm.http.headers import rate_headers, upstream_headers
from bricksllm.services.proxy import Call, ProxyService
from bricksllm.settings import SettingsError, parse_duration

log = logging.getLogger(__name__)

_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "invalid_request_error",
    429: "rate_limit_error",
}
MAX_BODY = 64 * 1024 * 1024


def error_response(exc: BricksError, call: Call | None = None) -> web.Response:
    body = {
        "error": {"message": exc.message, "type": _ERROR_TYPES.get(exc.status, "api_error"), "code": exc.code}
    }
    headers = {}
    if isinstance(exc, LimitExceeded):
        if exc.retry_after:
            headers["Retry-After"] = str(exc.retry_after)
        else:  # an all-time budget: retrying cannot help; tell the OpenAI SDKs not to
            headers["x-should-retry"] = "false"
    if call is not None:
        headers.update(rate_headers(call))
    return web.Response(
        status=exc.status, body=orjson.dumps(body), content_type="application/json", headers=headers
    )


def _timeout(headers: Any, default: float) -> float:
    raw = headers.get("x-request-timeout")
    if not raw:
        return default
    try:
        value = parse_duration("x-request-timeout", raw)
    except SettingsError:
        raise Invalid("[BricksLLM] invalid timeout in x-request-timeout") from None
    if value <= 0:
        raise Invalid("[BricksLLM] invalid timeout in x-request-timeout")
    return value


def _upstream_url(call: Call, query: str) -> URL:
    assert call.setting is not None and call.op is not None and call.provider is not None
    base = (call.setting.base_url or call.provider.default_base_url).rstrip("/")
    path = call.op.upstream_path
    if base.endswith("/v1") and path.startswith("/v1/"):
        base = base[:-3]
    return URL(base + path + ("?" + query if query else ""), encoded=True)


def create_proxy_app(
    service: ProxyService, session: Callable[[], aiohttp.ClientSession], default_timeout: float
) -> web.Application:
    async def health(request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def proxy(request: web.Request) -> web.StreamResponse:
        raw_path = request.raw_path.partition("?")[0]
        call = Call(request.method, raw_path, request.headers.get("X-CUSTOM-EVENT-ID", ""))
        try:
            service.authenticate(call, request.headers)
            timeout = _timeout(request.headers, default_timeout)
            assert call.op is not None
            if call.op.kind == "upload":
                data: Any = request.content  # streamed through, never buffered
                await service.admit(call, b"", request.content_type)
            else:
                if request.content_length and request.content_length > MAX_BODY:
                    raise TooLarge(f"[BricksLLM] request body over {MAX_BODY // 2**20} MiB")
                body = await request.read()
                data = await service.admit(call, body, request.headers.get("Content-Type", "")) or None
        except BricksError as exc:
            service.reject(call, exc.status)
            return error_response(exc, call)
        except web.HTTPRequestEntityTooLarge:
            service.reject(call, 413)
            return error_response(TooLarge(f"[BricksLLM] request body over {MAX_BODY // 2**20} MiB"), call)
        headers = upstream_headers(request.headers, call, keep_length=call.op.kind == "upload")
        try:
            upstream = await session().request(
                request.method,
                _upstream_url(call, request.query_string),
                data=data,
                headers=headers,
                timeout=aiohttp.ClientTimeout(total=timeout),
                allow_redirects=False,
            )
        except TimeoutError:
            await service.finish(call, 504, None, 0)
            return error_response(UpstreamTimeout("[BricksLLM] the provider did not answer in time"), call)
        except aiohttp.ClientError as exc:
            await service.finish(call, 502, None, 0)
            log.warning("upstream request failed: %s", type(exc).__name__)
            return error_response(UpstreamError("[BricksLLM] the provider could not be reached"), call)
        try:
            if upstream.content_type == "text/event-stream":
                return await relay.stream(request, upstream, call, service)
            if upstream.content_type == "application/json" or not 200 <= upstream.status < 300:
                return await relay.buffered(upstream, call, service)
            return await relay.raw(request, upstream, call, service)
        finally:
            upstream.release()

    app = web.Application(client_max_size=MAX_BODY)
    app.router.add_route("GET", "/api/health", health)
    app.router.add_route("POST", "/api/health", health)
    app.router.add_route("*", "/{tail:.*}", proxy)
    return app
