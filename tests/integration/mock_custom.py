"""A mock custom provider on loopback: a made-up model API with its own JSON shapes and stream.

Custom providers are defined by operators as data (route configs with locations in the JSON), so
the mock deliberately speaks shapes that are nothing like OpenAI's:

    POST /v2/generate   {"engine": M, "input": {"turns": [{"speaker", "text"}...]}, "options": {"stream": B}}
        JSON answer     {"result": {"outputs": [{"text": T}]}, "meta": {...}}
        stream answer   SSE `data: {"delta": {"text": ...}}` events, then `data: [END]`
    POST /chat          {"model": M, "messages": [{"role", "content"}...]}   (OpenAI-like, JSON only)
        JSON answer     {"choices": [{"message": {"content": T}}]}

`ROUTE_CONFIGS` are the matching route configs (as the admin API takes them). The credential is
checked as configured (`expect_header`). Tests steer it with the `x-mock` header:

    x-mock: error-<status>    answer {"message": ...} with that status
    x-mock: empty-<n>         n empty events (`data:` with nothing) before the text
    x-mock: stall             one text event, then empty events forever (no end word)
    x-mock: linger            after the end word, more events and the connection held open 3 s
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from tests.integration.mock_base import MockServer

UPSTREAM_KEY = "custom-upstream-secret"
END_WORD = "[END]"
MAX_EMPTY = 3
GENERATED = ["Hello", " from", " acme", "!"]
STREAM_PARTS = GENERATED  # the text of the stream's events
ANSWER_TEXT = "".join(GENERATED)


def route_configs(mock_url: str) -> list[dict[str, Any]]:
    return [
        {
            "path": "/generate",
            "target_url": f"{mock_url}/v2/generate",
            "model_location": "engine",
            "request_prompt_location": "input.turns.#.text",
            "response_completion_location": "result.outputs.0.text",
            "stream_location": "options.stream",
            "stream_end_word": END_WORD,
            "stream_response_completion_location": "delta.text",
            "stream_max_empty_messages": MAX_EMPTY,
        },
        {
            "path": "/chat",
            "target_url": f"{mock_url}/chat",
            "model_location": "model",
            "request_prompt_location": "messages.#.content",
            "response_completion_location": "choices.#.message.content",
        },
    ]


@dataclass
class MockCustom(MockServer):
    expect_header: tuple[str, str] = ("Authorization", f"Bearer {UPSTREAM_KEY}")
    stream_aborted: asyncio.Event = field(default_factory=asyncio.Event)

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._check])
        app.router.add_post("/v2/generate", self.generate)
        app.router.add_post("/chat", self.chat)
        return app

    @web.middleware
    async def _check(self, request: web.Request, handler: Any) -> web.StreamResponse:
        await self.record(request)
        name, value = self.expect_header
        if request.headers.get(name) != value:
            return web.json_response({"message": "bad credential"}, status=401)
        mock = request.headers.get("x-mock", "")
        if mock.startswith("error-"):
            status = int(mock[6:])
            return web.json_response({"message": f"mock error {status}"}, status=status)
        return await handler(request)

    async def generate(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        if not body.get("options", {}).get("stream"):
            return web.json_response(
                {"result": {"outputs": [{"text": ANSWER_TEXT}]}, "meta": {"engine": body.get("engine")}}
            )
        mock = request.headers.get("x-mock", "")
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        try:
            if mock.startswith("empty-"):
                for _ in range(int(mock[6:])):
                    await resp.write(b"data:\n\n")
            if mock == "stall":
                await resp.write(_event(STREAM_PARTS[0]))
                for _ in range(200):  # bounded: 2 s at most
                    await resp.write(b"data: \n\n")
                    await asyncio.sleep(0.01)
                await resp.write_eof()
                return resp
            for part in STREAM_PARTS:
                await resp.write(_event(part))
            await resp.write(f"data: {END_WORD}\n\n".encode())
            if mock == "linger":
                await resp.write(_event(" (after the end word)"))
                await asyncio.sleep(3)
        except (ConnectionResetError, asyncio.CancelledError):
            self.stream_aborted.set()
            raise
        if request.transport is None or request.transport.is_closing():
            self.stream_aborted.set()
        await resp.write_eof()
        return resp

    async def chat(self, request: web.Request) -> web.Response:
        body = await request.json()
        return web.json_response(
            {"model": body.get("model"), "choices": [{"message": {"content": ANSWER_TEXT}}]}
        )


def _event(text: str) -> bytes:
    return b"data: " + json.dumps({"delta": {"text": text}}).encode() + b"\n\n"
