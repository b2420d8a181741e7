"""Metrics of the admin API and the Prometheus scrape endpoint.

`AdminMetricsMiddleware` (outermost, so it sees the status of error responses too) counts every
admin request by route *pattern* (`/api/key-management/keys/{keyId}`, never the raw path with
its ids), method and status. `GET /metrics` serves the Prometheus text format: on the admin port
behind ADMIN_PASS like the rest of the admin API, or alone on METRICS_PORT without auth
(`create_metrics_app`), for a scraper on a private network.
"""

from __future__ import annotations

import time
from typing import Protocol

from aiohttp import web

from bricksllm.http.problems import Handler
from bricksllm.ports import Metrics

METRICS_PATH = "/metrics"


class Exposition(Protocol):
    """What `GET /metrics` serves (`telemetry.prometheus.PrometheusSink`)."""

    content_type: str

    def render(self) -> bytes: ...


class AdminMetricsMiddleware:
    __middleware_version__ = 1

    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics

    async def __call__(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        started = time.perf_counter()
        status = 500
        try:
            response = await handler(request)
            status = response.status
            return response
        except web.HTTPException as exc:
            status = exc.status
            raise
        finally:
            resource = request.match_info.route.resource
            route = resource.canonical if resource is not None else "unmatched"
            tags = {"route": route, "method": request.method, "status": str(status)}
            self._metrics.incr("admin.requests", tags=tags)
            self._metrics.timing("admin.latency", (time.perf_counter() - started) * 1000, tags)


def metrics_handler(exposition: Exposition) -> Handler:
    async def scrape(request: web.Request) -> web.StreamResponse:
        response = web.Response(body=exposition.render())
        response.headers["Content-Type"] = exposition.content_type
        return response

    return scrape


def create_metrics_app(exposition: Exposition) -> web.Application:
    """`GET /metrics` alone (METRICS_PORT): no auth, nothing else served."""
    app = web.Application()
    app.router.add_get(METRICS_PATH, metrics_handler(exposition))
    return app
