"""Admin API protection: the `X-API-KEY` header must equal ADMIN_PASS (constant-time compare).

With an empty password the middleware lets everything through; the composition root then binds
the admin port to loopback only. `/api/health` is always open so load balancers can probe it,
and so are the dashboard's static files (`/`, `/ui`, `/ui/...`): they hold no data, and the
page asks for the password before its first API call.
Failures raise `errors.Unauthorized`, which `problems.ProblemMiddleware` answers with a 401.
"""

from __future__ import annotations

import hmac

from aiohttp import web

from bricksllm.errors import Unauthorized
from bricksllm.http.problems import Handler

OPEN_PATHS = frozenset({"/api/health", "/", "/ui"})
OPEN_PREFIXES = ("/ui/",)


class AdminAuthMiddleware:
    __middleware_version__ = 1

    def __init__(self, admin_pass: str) -> None:
        self._password = admin_pass.encode()

    async def __call__(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        path = request.path
        if self._password and path not in OPEN_PATHS and not path.startswith(OPEN_PREFIXES):
            given = request.headers.get("X-API-KEY", "").encode("utf-8", "surrogateescape")
            if not hmac.compare_digest(given, self._password):
                raise Unauthorized("missing or wrong X-API-KEY header")
        return await handler(request)
