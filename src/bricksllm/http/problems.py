"""The one place where exceptions become HTTP error responses (RFC 9457 problem+json).

`ProblemMiddleware` is the outermost middleware of the admin app. It turns the gateway's error
tree (`bricksllm.errors`), Pydantic validation errors, aiohttp's own HTTP exceptions (unknown
route, wrong method, body too large) and anything unexpected into
`{"type": "/errors/<slug>", "title", "status", "detail", "instance", "fields"?}`. Unexpected
exceptions are logged with their traceback and answered with a generic 500: internals and
request values (which may be secrets) are never echoed; Pydantic messages are used without the
offending input.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from aiohttp import web
from pydantic import ValidationError

from bricksllm import errors
from bricksllm.http.admin_schemas import Problem

log = logging.getLogger("bricksllm.admin")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

PROBLEM_JSON = "application/problem+json"


class BadJson(errors.Invalid):
    """The request body is not a JSON object."""


# error class -> (slug, title); the first matching class wins.
_SLUGS: tuple[tuple[type[Exception], str, str], ...] = (
    (BadJson, "json", "Malformed JSON body"),
    (errors.UnsupportedMediaType, "unsupported-media-type", "Unsupported media type"),
    (errors.Invalid, "validation", "Invalid request"),
    (errors.Unauthorized, "unauthorized", "Unauthorized"),
    (errors.Forbidden, "forbidden", "Forbidden"),
    (errors.NotFound, "not-found", "Not found"),
    (errors.Conflict, "conflict", "Conflict"),
    (errors.LimitExceeded, "limit-exceeded", "Limit exceeded"),
    (errors.Unavailable, "unavailable", "Service unavailable"),
    (errors.UpstreamError, "upstream", "Upstream error"),
)

_HTTP_SLUGS = {
    404: ("not-found", "Not found", "no such endpoint"),
    405: ("method-not-allowed", "Method not allowed", "method not allowed on this endpoint"),
    413: ("too-large", "Request body too large", "the request body exceeds the limit"),
}


def problem(
    status: int, slug: str, title: str, detail: str, instance: str, fields: list[str] | None = None
) -> web.Response:
    body = Problem(
        type=f"/errors/{slug}",
        title=title,
        status=status,
        detail=detail,
        instance=instance,
        fields=fields or None,
    )
    return web.Response(
        status=status, body=body.model_dump_json(exclude_none=True), content_type=PROBLEM_JSON
    )


def _field_name(loc: tuple[str | int, ...]) -> str:
    name = ""
    for part in loc:
        name += f"[{part}]" if isinstance(part, int) else (f".{part}" if name else str(part))
    return name or "body"


def _message(error: dict[str, object]) -> str:
    kind = error.get("type")
    if kind == "extra_forbidden":
        return "unknown field"
    if kind == "missing":
        return "is required"
    msg = str(error.get("msg", "is invalid"))
    return msg.removeprefix("Value error, ")


def validation_problem(exc: ValidationError, instance: str) -> web.Response:
    pairs = [(_field_name(tuple(e["loc"])), _message(dict(e))) for e in exc.errors(include_input=False)]
    detail = "; ".join(f"{field}: {msg}" for field, msg in pairs)
    fields = list(dict.fromkeys(field for field, _ in pairs))
    return problem(400, "validation", "Invalid request", detail, instance, fields)


class ProblemMiddleware:
    """aiohttp middleware: run the handler, map whatever it raises to a problem response."""

    __middleware_version__ = 1

    async def __call__(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        instance = request.path
        try:
            return await handler(request)
        except errors.BricksError as exc:
            slug, title = next(
                ((s, t) for cls, s, t in _SLUGS if isinstance(exc, cls)), ("internal", "Error")
            )
            response = problem(exc.status, slug, title, exc.message, instance, exc.fields)
            if isinstance(exc, errors.LimitExceeded) and exc.retry_after:
                response.headers["Retry-After"] = str(exc.retry_after)
            return response
        except ValidationError as exc:
            return validation_problem(exc, instance)
        except web.HTTPException as exc:
            if exc.status < 400:
                raise
            slug, title, detail = _HTTP_SLUGS.get(exc.status, ("http", exc.reason, exc.reason))
            response = problem(exc.status, slug, title, detail, instance)
            if isinstance(exc, web.HTTPMethodNotAllowed):
                response.headers["Allow"] = ", ".join(sorted(exc.allowed_methods))
            return response
        except Exception:
            log.exception("unhandled error on %s %s", request.method, instance)
            return problem(500, "internal", "Internal server error", "an unexpected error occurred", instance)
