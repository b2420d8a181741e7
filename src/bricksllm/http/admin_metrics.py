"""The Prometheus scrape endpoint. Admin requests are counted by
`admin_access_log.AccessLogMiddleware`. `GET /metrics` serves the Prometheus text format: on the
admin port behind ADMIN_PASS like the rest of the admin API, or alone on METRICS_PORT without
auth (`create_metrics_app`), for a scraper on a private network."""

from __future__ import annotations

from typing import Protocol

from aiohttp import web

from bricksllm.http.problems import Handler

METRICS_PATH = "/metrics"


class Exposition(Protocol):
    """What `GET /metrics` serves (`telemetry.prometheus.PrometheusSink`)."""

    content_type: str

    def render(self) -> bytes: ...


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
