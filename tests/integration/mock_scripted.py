"""A mock OpenAI upstream that fails on cue: each request takes the next behaviour of `script`
(once it is empty, every request is answered normally by `MockOpenAI`).

    ok                 answered normally
    <status>           an OpenAI error with that status (429, 500, 503, 400, ...)
    429:<seconds>      429 with `Retry-After: <seconds>`
    hang               answers only after 2 s (a step timeout shorter than that ends it)
    die-before         a 200 event stream whose connection closes before its first byte
    die-after          a 200 event stream whose connection closes after its first event

Refused connections need no mock: a setting pointing at a closed port gives them.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from tests.integration.mock_openai import MockOpenAI

FIRST_EVENT = (
    b'data: {"id":"c","object":"chat.completion.chunk","model":"m",'
    b'"choices":[{"index":0,"delta":{"content":"Hi"}}]}\n\n'
)


@dataclass
class ScriptedOpenAI(MockOpenAI):
    script: list[str] = field(default_factory=list)

    def app(self) -> web.Application:
        app = super().app()
        app.middlewares.append(self._scripted)
        return app

    @web.middleware
    async def _scripted(self, request: web.Request, handler: Any) -> web.StreamResponse:
        action = self.script.pop(0) if self.script else "ok"
        if action == "ok":
            return await handler(request)
        if action == "hang":
            await asyncio.sleep(2)  # longer than the tests' step timeouts; short for the cleanup
            return await handler(request)
        if action in ("die-before", "die-after"):
            response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
            await response.prepare(request)
            if action == "die-after":
                await response.write(FIRST_EVENT)
            assert request.transport is not None
            request.transport.close()
            return response
        status, _, retry_after = action.partition(":")
        body = {
            "error": {"message": f"scripted {status}", "type": "server_error", "param": None, "code": None}
        }
        headers = {"Retry-After": retry_after} if retry_after else {}
        return web.Response(
            status=int(status), text=json.dumps(body), content_type="application/json", headers=headers
        )
