"""A mock Anthropic API on loopback, speaking the real wire formats of the Messages API.

What the gateway must get right is what the real API does, so the mock checks what the real API
checks (an `x-api-key` it knows, an `anthropic-version` header, `model` / `max_tokens` /
`messages`, a legacy prompt in `\\n\\nHuman: ... \\n\\nAssistant:` form) and answers as it
answers:

- Messages JSON with `usage` incl. `cache_creation_input_tokens` / `cache_read_input_tokens`;
  a `tool_use` block when the request offers tools;
- Messages SSE: `message_start` (input side of usage, `output_tokens: 1`), `content_block_start`,
  `ping`, `content_block_delta` (text or `input_json_delta`), `content_block_stop`,
  `message_delta` (cumulative `output_tokens`), `message_stop`;
- legacy Text Completions JSON and SSE (`completion` events, no usage anywhere);
- `count_tokens` (`{"input_tokens": N}`) and the models list;
- errors as `{"type": "error", "error": {"type", "message"}, "request_id"}` with the real
  statuses (400, 401, 403, 404, 429, 500, 529).

Tests steer it with the `x-mock` request header:

    x-mock: error-<status>   answer with that Anthropic error (400/401/403/404/429/500/529)
    x-mock: slow-<ms>        wait before answering (and between stream events)
    x-mock: broken-stream    cut the connection after the third stream event
    x-mock: full-delta-usage message_delta repeats the input side of usage (as newer models do)

Every request is recorded (method, path, query, headers, body) for assertions.
"""

from __future__ import annotations

import asyncio
import base64
import json
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from tests.integration.mock_base import MockServer

UPSTREAM_KEY = "sk-ant-upstream-secret"
# The usage every Messages answer reports (JSON and stream alike), unless overridden.
INPUT_TOKENS = 21  # fresh input
CACHE_WRITE_TOKENS = 1000  # cache_creation_input_tokens
CACHE_READ_TOKENS = 3000  # cache_read_input_tokens
OUTPUT_TOKENS = 9
COUNTED_TOKENS = 14  # what count_tokens answers
STREAM_WORDS = ["Hello", " from", " the", " mock", "!"]
TOOL_INPUT = {"location": "Paris"}
# Aliases the real API resolves to a dated snapshot in its answers.
ANSWER_MODELS = {
    "claude-haiku-4-5": "claude-haiku-4-5-20251001",
    "claude-sonnet-4-5": "claude-sonnet-4-5-20250929",
    "claude-3-5-haiku-latest": "claude-3-5-haiku-20241022",
}
ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    529: "overloaded_error",
}


def error_response(status: int, message: str) -> web.Response:
    body = {
        "type": "error",
        "error": {"type": ERROR_TYPES.get(status, "api_error"), "message": message},
        "request_id": "req_mock",
    }
    return web.json_response(body, status=status, headers={"request-id": "req_mock"})


def sse(name: str, data: dict[str, Any]) -> bytes:
    return f"event: {name}\ndata: {json.dumps(data)}\n\n".encode()


@dataclass
class MockAnthropic(MockServer):
    usage_override: dict[str, Any] | None = None  # the Messages usage every answer reports

    def app(self) -> web.Application:
        app = web.Application(client_max_size=64 * 1024 * 1024, middlewares=[self._check])
        r = app.router
        r.add_post("/v1/messages", self.messages)
        r.add_post("/v1/messages/count_tokens", self.count_tokens)
        r.add_post("/v1/complete", self.complete)
        r.add_get("/v1/models", self.models)
        r.add_get("/v1/models/{model_id}", self.model)
        return app

    @web.middleware
    async def _check(self, request: web.Request, handler: Any) -> web.StreamResponse:
        body = await self.record(request)
        if request.headers.get("x-api-key") != UPSTREAM_KEY:
            return error_response(401, "invalid x-api-key")
        if not request.headers.get("anthropic-version"):
            return error_response(400, "anthropic-version: header is required")
        mock = request.headers.get("x-mock", "")
        if mock.startswith("error-"):
            status = int(mock[6:])
            return error_response(status, f"mock error {status}")
        if mock.startswith("slow-"):
            await asyncio.sleep(int(mock[5:]) / 1000)
        if body and request.method == "POST":
            try:
                parsed = json.loads(body)
            except ValueError:
                return error_response(400, "the request body is not valid JSON")
            if not isinstance(parsed, dict):
                return error_response(400, "the request body must be an object")
        return await handler(request)

    def _usage(self) -> dict[str, Any]:
        if self.usage_override is not None:
            return dict(self.usage_override)
        return {
            "input_tokens": INPUT_TOKENS,
            "cache_creation_input_tokens": CACHE_WRITE_TOKENS,
            "cache_read_input_tokens": CACHE_READ_TOKENS,
            "output_tokens": OUTPUT_TOKENS,
        }

    # --- Messages -------------------------------------------------------------------------

    async def messages(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        problem = _messages_problem(body)
        if problem:
            return error_response(400, problem)
        model = ANSWER_MODELS.get(body["model"], body["model"])
        tools = body.get("tools") or []
        content: list[dict[str, Any]]
        if tools:
            tool_block = {
                "type": "tool_use",
                "id": "toolu_mock",
                "name": tools[0]["name"],
                "input": TOOL_INPUT,
            }
            content, stop = [tool_block], "tool_use"
        else:
            content, stop = [{"type": "text", "text": "".join(STREAM_WORDS)}], "end_turn"
        usage = self._usage()
        message = {
            "id": "msg_mock",
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": content,
            "stop_reason": stop,
            "stop_sequence": None,
            "usage": usage,
        }
        if not body.get("stream"):
            return web.json_response(message, headers={"request-id": "req_mock"})
        start_usage = {**usage, "output_tokens": 1}
        delta_usage = {"output_tokens": usage.get("output_tokens", 0)}
        if request.headers.get("x-mock") == "full-delta-usage":
            delta_usage = dict(usage)
        start = {**message, "content": [], "stop_reason": None, "usage": start_usage}
        events = [sse("message_start", {"type": "message_start", "message": start})]
        if tools:
            empty = {**content[0], "input": {}}
            events.append(
                sse(
                    "content_block_start", {"type": "content_block_start", "index": 0, "content_block": empty}
                )
            )
            events.append(sse("ping", {"type": "ping"}))
            raw = json.dumps(TOOL_INPUT)
            for part in (raw[:5], raw[5:]):
                delta = {"type": "input_json_delta", "partial_json": part}
                events.append(
                    sse("content_block_delta", {"type": "content_block_delta", "index": 0, "delta": delta})
                )
        else:
            block = {"type": "text", "text": ""}
            events.append(
                sse(
                    "content_block_start", {"type": "content_block_start", "index": 0, "content_block": block}
                )
            )
            events.append(sse("ping", {"type": "ping"}))
            for word in STREAM_WORDS:
                delta = {"type": "text_delta", "text": word}
                events.append(
                    sse("content_block_delta", {"type": "content_block_delta", "index": 0, "delta": delta})
                )
        events.append(sse("content_block_stop", {"type": "content_block_stop", "index": 0}))
        events.append(
            sse(
                "message_delta",
                {
                    "type": "message_delta",
                    "delta": {"stop_reason": stop, "stop_sequence": None},
                    "usage": delta_usage,
                },
            )
        )
        events.append(sse("message_stop", {"type": "message_stop"}))
        return await self._stream(request, events)

    async def count_tokens(self, request: web.Request) -> web.Response:
        body = await request.json()
        if not body.get("model") or not isinstance(body.get("messages"), list):
            return error_response(400, "model and messages are required")
        return web.json_response({"input_tokens": COUNTED_TOKENS})

    # --- legacy Text Completions -------------------------------------------------------------

    async def complete(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        prompt = body.get("prompt")
        if not body.get("model") or not isinstance(body.get("max_tokens_to_sample"), int):
            return error_response(400, "model and max_tokens_to_sample are required")
        if (
            not isinstance(prompt, str)
            or not prompt.startswith("\n\nHuman:")
            or not prompt.endswith("\n\nAssistant:")
        ):
            return error_response(
                400, 'prompt must start with "\\n\\nHuman:" and end with "\\n\\nAssistant:"'
            )
        model = body["model"]
        if not body.get("stream"):
            return web.json_response(
                {
                    "type": "completion",
                    "id": "compl_mock",
                    "completion": "".join(STREAM_WORDS),
                    "stop_reason": "stop_sequence",
                    "model": model,
                }
            )
        events = []
        for i, word in enumerate(STREAM_WORDS):
            last = i == len(STREAM_WORDS) - 1
            data = {
                "type": "completion",
                "id": "compl_mock",
                "completion": word,
                "stop_reason": "stop_sequence" if last else None,
                "model": model,
            }
            events.append(sse("completion", data))
            if i == 1:
                events.append(sse("ping", {"type": "ping"}))
        return await self._stream(request, events)

    # --- models ------------------------------------------------------------------------------

    async def models(self, request: web.Request) -> web.Response:
        data = [_model_info(m) for m in ANSWER_MODELS.values()]
        return web.json_response(
            {"data": data, "has_more": False, "first_id": data[0]["id"], "last_id": data[-1]["id"]}
        )

    async def model(self, request: web.Request) -> web.Response:
        return web.json_response(_model_info(request.match_info["model_id"]))

    # --- plumbing ----------------------------------------------------------------------------

    async def _stream(self, request: web.Request, events: list[bytes]) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
        await resp.prepare(request)
        mock = request.headers.get("x-mock", "")
        delay = int(mock[5:]) / 1000 if mock.startswith("slow-") else 0
        for i, event in enumerate(events):
            if mock == "broken-stream" and i == 3:
                assert request.transport is not None
                request.transport.close()
                return resp
            await resp.write(event)
            if delay:
                await asyncio.sleep(delay)
        await resp.write_eof()
        return resp


def _model_info(model_id: str) -> dict[str, Any]:
    return {"type": "model", "id": model_id, "display_name": model_id, "created_at": "2025-01-01T00:00:00Z"}


def _messages_problem(body: dict[str, Any]) -> str:
    """What the real API would refuse in a Messages request (the parts the tests exercise)."""
    if not isinstance(body.get("model"), str) or not body["model"]:
        return "model: field required"
    if not isinstance(body.get("max_tokens"), int):
        return "max_tokens: field required"
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        return "messages: at least one message is required"
    system = body.get("system")
    if system is not None and not isinstance(system, str | list):
        return "system: must be a string or a list of text blocks"
    for i, message in enumerate(messages):
        if message.get("role") not in ("user", "assistant"):
            return f"messages.{i}.role: must be user or assistant"
        content = message.get("content")
        for block in content if isinstance(content, list) else []:
            if block.get("type") == "image":
                source = block.get("source") or {}
                try:
                    base64.b64decode(source.get("data", ""), validate=True)
                except ValueError:
                    return f"messages.{i}.content: image data is not valid base64"
                if source.get("media_type") not in ("image/jpeg", "image/png", "image/gif", "image/webp"):
                    return f"messages.{i}.content: unsupported image media_type"
    for tool in body.get("tools") or []:
        if not tool.get("name") or not isinstance(tool.get("input_schema"), dict):
            return "tools: each tool needs a name and an input_schema"
    return ""
