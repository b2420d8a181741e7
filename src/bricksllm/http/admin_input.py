"""Admin API edge check on what the URL carries: query values and path parameters.

aiohttp decodes `%00` to NUL and bytes that are not UTF-8 to U+FFFD. Neither should reach a
store (PostgreSQL refuses NUL; a replaced byte would silently match nothing), so such a value is
answered with a 400 naming the parameter before any handler runs. Bodies are checked by
`admin_app.read_model`.
"""

from __future__ import annotations

from aiohttp import web

from bricksllm.domain.text import is_storable
from bricksllm.errors import Invalid
from bricksllm.http.problems import Handler


def _bad(value: str) -> bool:
    return "\ufffd" in value or not is_storable(value)


class StorableInputMiddleware:
    __middleware_version__ = 1

    async def __call__(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        bad = [name for name, value in request.query.items() if _bad(name) or _bad(value)]
        bad += [name for name, value in request.match_info.items() if _bad(value)]
        if bad:
            names = list(dict.fromkeys(bad))
            raise Invalid(
                f"{', '.join(names)}: must be valid UTF-8 (percent-encoded) without NUL characters",
                fields=names,
            )
        return await handler(request)
