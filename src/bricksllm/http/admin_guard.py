"""Admin API protection against requests a web page makes from the operator's browser.

Without ADMIN_PASS the admin API is open on loopback, so any page open in the operator's
browser could write to it (a `text/plain` POST needs no CORS preflight), or read it through a
hostile DNS name that resolves to 127.0.0.1 (DNS rebinding). Before any handler runs:
- writes (POST, PUT, PATCH) must be `Content-Type: application/json` (415 otherwise), which a
  page on another origin cannot send without a preflight the gateway never approves;
- a request carrying an `Origin` is refused (403) unless that origin is this server itself
  (same host and port as `Host`) or listed in ADMIN_ALLOWED_ORIGINS;
- the `Host` must name this server: on loopback (no ADMIN_PASS) localhost, 127.0.0.1 or [::1],
  plus ADMIN_ALLOWED_HOSTS; with ADMIN_PASS only ADMIN_ALLOWED_HOSTS when it is set.
`/api/health` stays open for load balancers.
"""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import urlsplit

from aiohttp import web

from bricksllm.errors import Forbidden, UnsupportedMediaType
from bricksllm.http.problems import Handler

LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "[::1]"})
WRITES = frozenset({"POST", "PUT", "PATCH"})


def host_name(host: str) -> str:
    """`Host` without its port, lower-case (`[::1]:8001` -> `[::1]`)."""
    host = host.strip().lower()
    if host.startswith("["):
        return host[: host.find("]") + 1]
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


class AdminGuard:
    __middleware_version__ = 1

    def __init__(
        self, *, loopback_only: bool, allowed_hosts: Iterable[str], allowed_origins: Iterable[str]
    ) -> None:
        hosts = {host_name(h) for h in allowed_hosts}
        self._hosts = (LOOPBACK_NAMES | hosts) if loopback_only else (frozenset(hosts) or None)
        self._origins = frozenset(o.strip().rstrip("/").lower() for o in allowed_origins)

    async def __call__(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path == "/api/health":
            return await handler(request)
        host = request.headers.get("Host", "")
        if self._hosts is not None and host_name(host) not in self._hosts:
            raise Forbidden("the Host header does not name this server (set ADMIN_ALLOWED_HOSTS)")
        origin = request.headers.get("Origin")
        if origin is not None and not self._same_or_allowed(origin, host):
            raise Forbidden("cross-origin requests are refused (set ADMIN_ALLOWED_ORIGINS)")
        if request.method in WRITES and request.content_type not in ("application/json",):
            raise UnsupportedMediaType("writes must be sent as Content-Type: application/json")
        return await handler(request)

    def _same_or_allowed(self, origin: str, host: str) -> bool:
        origin = origin.strip().rstrip("/").lower()
        if origin in self._origins:
            return True
        parts = urlsplit(origin)
        return parts.scheme in ("http", "https") and parts.netloc == host.strip().lower()
