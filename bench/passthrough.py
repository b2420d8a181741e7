"""The reference point of the throughput target: a bare pass-through proxy, no governance.

Built on the same server and client libraries as the gateway (aiohttp.web + one pooled
aiohttp.ClientSession, uvloop), it does the least a gateway must do and nothing more: check a
Bearer key in a dict, forward the client's bytes with the upstream credential, relay SSE chunks
as they arrive, and read `usage` from the JSON body or from the last SSE chunk. Issue 5 asks the
governed gateway to reach >= 60 % of this (>= 40 % on PostgreSQL + Redis) in the same run.

    python bench/passthrough.py --port 9200 --upstream http://127.0.0.1:9100 --key bench-key
"""

from __future__ import annotations

import argparse

import aiohttp
from aiohttp import web

try:
    from orjson import loads
except ImportError:
    from json import loads  # type: ignore[assignment]

ROUTE = "/api/providers/openai/v1/chat/completions"
_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "content-encoding"}


def build_app(upstream: str, keys: dict[str, str], upstream_key: str) -> web.Application:
    app = web.Application()
    target = upstream.rstrip("/") + "/v1/chat/completions"
    usage_seen = {"n": 0}

    async def session_ctx(app: web.Application):  # type: ignore[no-untyped-def]
        conn = aiohttp.TCPConnector(limit=1024, keepalive_timeout=60)
        app["session"] = aiohttp.ClientSession(connector=conn, auto_decompress=False)
        yield
        await app["session"].close()

    app.cleanup_ctx.append(session_ctx)

    async def health(_: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def chat(request: web.Request) -> web.StreamResponse:
        auth = request.headers.get("Authorization", "")
        if not auth.startswith("Bearer ") or auth[7:] not in keys:
            return web.json_response({"error": {"message": "bad key"}}, status=401)
        body = await request.read()
        session: aiohttp.ClientSession = request.app["session"]
        headers = {"Authorization": f"Bearer {upstream_key}", "Content-Type": "application/json"}
        async with session.post(target, data=body, headers=headers) as up:
            out_headers = {k: v for k, v in up.headers.items() if k.lower() not in _HOP}
            if up.content_type == "text/event-stream":
                resp = web.StreamResponse(status=up.status, headers=out_headers)
                await resp.prepare(request)
                last = b""
                async for chunk in up.content.iter_any():
                    await resp.write(chunk)
                    last = (last + chunk)[-4096:]
                # the usage chunk, when present, is the last data: line before [DONE]
                for line in reversed(last.split(b"\n")):
                    if line.startswith(b"data: {") and b'"usage":{' in line:
                        usage_seen["n"] += 1
                        break
                await resp.write_eof()
                return resp
            data = await up.read()
            if up.status == 200:
                usage = loads(data).get("usage")
                if usage:
                    usage_seen["n"] += 1
            return web.Response(status=up.status, body=data, headers=out_headers)

    app.router.add_get("/api/health", health)
    app.router.add_post(ROUTE, chat)
    return app


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=9200)
    p.add_argument("--upstream", required=True, help="base URL of the upstream (calls {upstream}/v1/...)")
    p.add_argument("--key", action="append", default=[], help="accepted Bearer key (repeatable)")
    a = p.parse_args(argv)
    app = build_app(a.upstream, {k: k for k in a.key or ["bench-key"]}, "sk-bench")
    try:
        import uvloop

        loop = uvloop.new_event_loop()
    except ImportError:
        loop = None
    web.run_app(app, host=a.host, port=a.port, access_log=None, print=None, loop=loop)


if __name__ == "__main__":
    main()
