"""The `raw` reference lane: the same bare pass-through as passthrough.py, on the fast path.

Server: `bricksllm.http.fast_server.FastServer` (asyncio Protocol + httptools); upstream client:
`bricksllm.upstream.fast.FastUpstream` (Protocols + httptools + keep-alive pools); uvloop. It
does exactly what passthrough.py does (Bearer key from a dict, the client's bytes forwarded with
the upstream credential, SSE relayed chunk by chunk, `usage` read from the JSON or the last SSE
chunk), so the two lanes side by side show what the protocol-level plumbing gains, and the
governed gateway on the fast path can be held against the ceiling of its own plumbing (issue 15).

    python bench/passthrough_raw.py --port 9201 --upstream http://127.0.0.1:9100 --key bench-key
"""

from __future__ import annotations

import argparse
import asyncio
import signal
from collections.abc import AsyncIterator

from bricksllm.http.fast_server import FastServer
from bricksllm.ports import UpstreamRequest, UpstreamResponse
from bricksllm.services.exchange import Inbound, Reply
from bricksllm.upstream.fast import FastUpstream

try:
    from orjson import loads
except ImportError:
    from json import loads  # type: ignore[assignment]

ROUTE = "/api/providers/openai/v1/chat/completions"
_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "content-encoding"}
_JSON = (("Content-Type", "application/json"),)


class Passthrough:
    def __init__(self, upstream: str, keys: set[str], upstream_key: str) -> None:
        self.target = upstream.rstrip("/") + "/v1/chat/completions"
        self.keys = {f"Bearer {k}" for k in keys}
        self.headers = (("Authorization", f"Bearer {upstream_key}"), *_JSON)
        self.client = FastUpstream(connections=1024)
        self.usage_seen = 0

    async def handle(self, inbound: Inbound) -> Reply:
        if inbound.path != ROUTE:
            return Reply(404, list(_JSON), b'{"error":{"message":"not found"}}')
        if inbound.headers.get("Authorization", "") not in self.keys:
            return Reply(401, list(_JSON), b'{"error":{"message":"bad key"}}')
        body = await inbound.body.read(64 << 20)
        up = await self.client.send(UpstreamRequest("POST", self.target, self.headers, body, 600.0))
        out = [(k, v) for k, v in up.headers.items() if k.lower() not in _HOP]
        if up.headers.get("Content-Type", "").startswith("text/event-stream"):
            return Reply(up.status, out, stream=self._relay(up))
        data = await up.read(64 << 20)
        if up.status == 200 and loads(data).get("usage"):
            self.usage_seen += 1
        return Reply(up.status, out, data)

    async def _relay(self, up: UpstreamResponse) -> AsyncIterator[bytes]:
        last = b""
        try:
            async for chunk in up.chunks():
                yield chunk
                last = (last + chunk)[-4096:]
            for line in reversed(last.split(b"\n")):
                if line.startswith(b"data: {") and b'"usage":{' in line:
                    self.usage_seen += 1
                    break
        finally:
            await up.aclose()


async def serve(args: argparse.Namespace) -> None:
    handler = Passthrough(args.upstream, set(args.key or ["bench-key"]), "sk-bench")
    server = FastServer(handler)
    await server.start(args.host, args.port)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await server.stop(grace=2)
    await handler.client.close()


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=9201)
    p.add_argument("--upstream", required=True, help="base URL of the upstream (calls {upstream}/v1/...)")
    p.add_argument("--key", action="append", default=[], help="accepted Bearer key (repeatable)")
    args = p.parse_args(argv)
    try:
        import uvloop

        uvloop.run(serve(args))
    except ImportError:
        asyncio.run(serve(args))


if __name__ == "__main__":
    main()
