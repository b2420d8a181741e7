"""One log line per admin API request (`bricksllm.admin.access`): method, route pattern, path,
status, latency and the peer; and, when metrics are on, `admin.requests` / `admin.latency` by
route *pattern* (never the raw path with its ids), method and status. It replaces aiohttp's
access log on the admin port, so every line is structured; the query string, headers and bodies
(which may hold key secrets and provider credentials) are never logged."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable

from aiohttp import web

from bricksllm.ports import Metrics

log = logging.getLogger("bricksllm.admin.access")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def route_pattern(request: web.Request) -> str:
    """The matched route as declared (`/api/key-management/keys/{keyId}`); "" when none matched."""
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else ""


class AccessLogMiddleware:
    """Outermost admin middleware: it sees the final status of every answer, problems included."""

    __middleware_version__ = 1

    def __init__(self, metrics: Metrics | None = None) -> None:
        self._metrics = metrics

    async def __call__(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        started = time.perf_counter()
        status = 500  # when the handler raises past every other middleware
        try:
            response = await handler(request)
            status = response.status
            return response
        except web.HTTPException as exc:
            status = exc.status
            raise
        finally:
            seconds = time.perf_counter() - started
            if self._metrics is not None:
                tags = {"route": route_pattern(request) or "unmatched", "method": request.method,
                        "status": str(status)}  # fmt: skip
                self._metrics.incr("admin.requests", tags=tags)
                self._metrics.timing("admin.latency", seconds * 1000, tags)
            if log.isEnabledFor(logging.INFO):
                log.info(
                    "%s %s %d",
                    request.method,
                    request.path,
                    status,
                    extra={
                        "method": request.method,
                        "route": route_pattern(request),
                        "path": request.path,
                        "status": status,
                        "latency_ms": round(seconds * 1000, 2),
                        "remote": request.remote or "",
                    },
                )
