"""The dashboard's static files, served by the admin app at `/ui/` (and `/` redirects there).

The dashboard is plain ES modules and CSS shipped as package data in `http/ui/` (no build step,
nothing fetched from another host): every number it shows comes from the public admin JSON API,
called by the browser with the operator's `X-API-KEY`. The files themselves hold no data, so
`admin_auth` lets `/ui/*` through without the password.

Responses carry a strict Content-Security-Policy (scripts, styles and connections to this origin
only), so even an injected string could not load or send anything elsewhere, and `no-cache` so
an upgraded gateway never runs with a stale mix of modules (revalidation by ETag keeps it cheap).
"""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

from bricksllm.errors import NotFound

UI_DIR = Path(__file__).parent / "ui"
PREFIX = "/ui/"

# Only these kinds of files are served; the type is fixed here rather than guessed from the
# platform's mime database (module scripts are refused by browsers under a wrong type).
CONTENT_TYPES = {
    ".html": "text/html",
    ".js": "text/javascript",
    ".css": "text/css",
    ".svg": "image/svg+xml",
    ".png": "image/png",
}

CSP = "; ".join(
    (
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "connect-src 'self'",
        "base-uri 'none'",
        "form-action 'none'",
        "frame-ancestors 'none'",
    )
)
HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


def resolve(relative: str, root: Path = UI_DIR) -> Path:
    """The file under `root` that `relative` names; `NotFound` for anything else (other types,
    hidden files, directories, paths that climb out of `root`)."""
    parts = [p for p in relative.split("/") if p]
    if not parts:
        parts = ["index.html"]
    if any(p.startswith(".") or "\\" in p for p in parts):
        raise NotFound("no such dashboard file")
    path = root.joinpath(*parts)
    if path.suffix not in CONTENT_TYPES or not path.is_file():
        raise NotFound("no such dashboard file")
    if not path.resolve().is_relative_to(root.resolve()):
        raise NotFound("no such dashboard file")
    return path


async def _file(request: web.Request) -> web.StreamResponse:
    path = resolve(request.match_info.get("path", ""))
    headers = {**HEADERS, "Content-Type": CONTENT_TYPES[path.suffix]}
    return web.FileResponse(path, headers=headers)


async def _to_ui(request: web.Request) -> web.StreamResponse:
    raise web.HTTPFound(PREFIX)


def add_ui_routes(app: web.Application) -> None:
    app.router.add_get("/", _to_ui)
    app.router.add_get("/ui", _to_ui)
    app.router.add_get(PREFIX + "{path:.*}", _file)
