"""A mock OpenAI server for tests, started on loopback, speaking OpenAI's real wire formats.

JSON responses with `usage`, server-sent event streams (with a usage chunk only when
`stream_options.include_usage` is set), multipart uploads, binary downloads and OpenAI-shaped
errors. Tests steer it with the `x-mock` request header:

    x-mock: error-429 | error-500 | error-400   answer with that OpenAI error
    x-mock: slow-<ms>                           wait before answering (and between stream chunks)
    x-mock: broken-stream                       cut the connection in the middle of a stream
    x-mock: no-usage                            omit usage from JSON and streams
    x-mock: truncated-json                      promise a JSON body and hang up half-way
    x-mock: echo                                a chat answer repeating the last message
    x-mock-answer: <text>                       a chat answer saying <text>

Every request is recorded (method, path, query, headers, body) for assertions.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import json
import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from tests.integration.mock_base import MockServer
from tests.integration.mock_base import Recorded as Recorded  # re-exported: older tests import them from here
from tests.integration.mock_base import start_mock as start_mock

PROMPT_TOKENS = 11
COMPLETION_TOKENS = 7
CACHED_TOKENS = 3
STREAM_WORDS = ["Hello", " from", " the", " mock", "!"]


@dataclass
class MockOpenAI(MockServer):
    files: dict[str, dict[str, Any]] = field(default_factory=dict)
    file_contents: dict[str, bytes] = field(default_factory=dict)
    stream_aborted: asyncio.Event = field(default_factory=asyncio.Event)
    usage_override: dict[str, Any] | None = None  # the usage every answer reports, when set
    base: str = "/v1"  # where the API is mounted (DeepInfra serves it under /v1/openai)

    # --- app -------------------------------------------------------------------------

    def app(self) -> web.Application:
        app = web.Application(client_max_size=64 * 1024 * 1024, middlewares=[self._record])
        r, b = app.router, self.base
        r.add_post(b + "/chat/completions", self.chat)
        r.add_post(b + "/completions", self.completions)
        r.add_post(b + "/embeddings", self.embeddings)
        r.add_post(b + "/moderations", self.moderations)
        r.add_post(b + "/responses", self.responses)
        r.add_get(b + "/models", self.models)
        r.add_get(b + "/models/{model}", self.model)
        r.add_post(b + "/files", self.upload)
        r.add_get(b + "/files", self.list_files)
        r.add_get(b + "/files/{file_id}", self.get_file)
        r.add_delete(b + "/files/{file_id}", self.delete_file)
        r.add_get(b + "/files/{file_id}/content", self.file_content)
        r.add_post(b + "/images/generations", self.images)
        r.add_post(b + "/images/edits", self.image_edit)
        r.add_post(b + "/audio/speech", self.speech)
        r.add_post(b + "/audio/transcriptions", self.transcription)
        r.add_post(b + "/audio/translations", self.transcription)
        r.add_route("*", "/{tail:.*}", self.generic)
        return app

    @web.middleware
    async def _record(self, request: web.Request, handler: Any) -> web.StreamResponse:
        await self.record(request)
        mock = request.headers.get("x-mock", "")
        if mock.startswith("error-"):
            status = int(mock[6:])
            kinds = {400: "invalid_request_error", 429: "rate_limit_exceeded", 500: "server_error"}
            return web.json_response(
                {
                    "error": {
                        "message": f"mock error {status}",
                        "type": kinds.get(status, "api_error"),
                        "param": None,
                        "code": None,
                    }
                },
                status=status,
                headers={"x-should-retry": "false"},
            )
        if mock == "truncated-json":  # promise a body, send half of it, hang up
            response = web.StreamResponse(
                headers={"Content-Type": "application/json", "Content-Length": "200"}
            )
            await response.prepare(request)
            await response.write(b'{"id": "chatcmpl-1", "object": "chat.comp')
            assert request.transport is not None
            request.transport.close()
            return response
        if mock.startswith("slow-") and "stream" not in request.path:
            await asyncio.sleep(int(mock[5:]) / 1000)
        return await handler(request)

    def _usage(self, request: web.Request, responses_api: bool = False) -> dict[str, Any] | None:
        if request.headers.get("x-mock") == "no-usage":
            return None
        if self.usage_override is not None:
            return self.usage_override
        if responses_api:
            return {
                "input_tokens": PROMPT_TOKENS,
                "input_tokens_details": {"cached_tokens": CACHED_TOKENS},
                "output_tokens": COMPLETION_TOKENS,
                "output_tokens_details": {"reasoning_tokens": 2},
                "total_tokens": PROMPT_TOKENS + COMPLETION_TOKENS,
            }
        return {
            "prompt_tokens": PROMPT_TOKENS,
            "completion_tokens": COMPLETION_TOKENS,
            "total_tokens": PROMPT_TOKENS + COMPLETION_TOKENS,
            "prompt_tokens_details": {"cached_tokens": CACHED_TOKENS},
            "completion_tokens_details": {"reasoning_tokens": 2},
        }

    async def _sse(self, request: web.Request, events: list[bytes]) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
        await resp.prepare(request)
        mock = request.headers.get("x-mock", "")
        delay = int(mock[5:]) / 1000 if mock.startswith("slow-") else 0
        try:
            for i, event in enumerate(events):
                if mock == "broken-stream" and i == 2:
                    assert request.transport is not None
                    request.transport.close()
                    return resp
                await resp.write(event)
                if delay:
                    await asyncio.sleep(delay)
        except (ConnectionResetError, asyncio.CancelledError):
            self.stream_aborted.set()
            raise
        if request.transport is None or request.transport.is_closing():
            self.stream_aborted.set()
        await resp.write_eof()
        return resp

    # --- handlers --------------------------------------------------------------------

    async def chat(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        model = body["model"]
        usage = self._usage(request)
        created = int(time.time())
        if body.get("stream"):

            def chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
                obj = {
                    "id": "chatcmpl-mock",
                    "object": "chat.completion.chunk",
                    "created": created,
                    "model": model,
                    "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
                }
                return b"data: " + json.dumps(obj).encode() + b"\n\n"

            events = [chunk({"role": "assistant", "content": ""})]
            events += [chunk({"content": w}) for w in STREAM_WORDS]
            events.append(chunk({}, "stop"))
            include = (body.get("stream_options") or {}).get("include_usage")
            if include and usage:
                obj = {
                    "id": "chatcmpl-mock",
                    "object": "chat.completion.chunk",
                    "created": created,
                    "model": model,
                    "choices": [],
                    "usage": usage,
                }
                events.append(b"data: " + json.dumps(obj).encode() + b"\n\n")
            events.append(b"data: [DONE]\n\n")
            return await self._sse(request, events)
        resp: dict[str, Any] = {
            "id": "chatcmpl-mock",
            "object": "chat.completion",
            "created": created,
            "model": model,
            "choices": [
                {
                    "index": 0,
                    "message": {
                        "role": "assistant",
                        "content": self._answer_text(request, body),
                        "refusal": None,
                    },
                    "logprobs": None,
                    "finish_reason": "stop",
                }
            ],
        }
        if usage:
            resp["usage"] = usage
        return web.json_response(resp, headers={"x-request-id": "req-mock", "openai-processing-ms": "5"})

    @staticmethod
    def _answer_text(request: web.Request, body: dict[str, Any]) -> str:
        if "x-mock-answer" in request.headers:  # the answer the test wants
            return request.headers["x-mock-answer"]
        if request.headers.get("x-mock") == "echo":  # the last message's text, back
            content = body["messages"][-1]["content"]
            return content if isinstance(content, str) else json.dumps(content)
        return "".join(STREAM_WORDS)

    async def completions(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        resp = {
            "id": "cmpl-mock",
            "object": "text_completion",
            "created": int(time.time()),
            "model": body["model"],
            "choices": [{"index": 0, "text": "ok", "logprobs": None, "finish_reason": "stop"}],
        }
        if usage := self._usage(request):
            resp["usage"] = usage
        return web.json_response(resp)

    async def embeddings(self, request: web.Request) -> web.Response:
        body = await request.json()
        inputs = body["input"] if isinstance(body["input"], list) else [body["input"]]
        fmt = body.get("encoding_format", "float")
        vector: Any = "AACAPwAAAEAAAEBA" if fmt == "base64" else [1.0, 2.0, 3.0]
        data = [{"object": "embedding", "index": i, "embedding": vector} for i in range(len(inputs))]
        return web.json_response(
            {
                "object": "list",
                "data": data,
                "model": body["model"],
                "usage": {"prompt_tokens": 5 * len(inputs), "total_tokens": 5 * len(inputs)},
            }
        )

    async def moderations(self, request: web.Request) -> web.Response:
        return web.json_response(
            {
                "id": "modr-mock",
                "model": "omni-moderation-latest",
                "results": [{"flagged": False, "categories": {}, "category_scores": {}}],
            }
        )

    async def responses(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        usage = self._usage(request, responses_api=True)
        response = {
            "id": "resp_mock",
            "object": "response",
            "created_at": int(time.time()),
            "model": body["model"],
            "status": "completed",
            "output": [
                {
                    "type": "message",
                    "id": "msg_1",
                    "role": "assistant",
                    "status": "completed",
                    "content": [{"type": "output_text", "text": "Hello!", "annotations": []}],
                }
            ],
            "usage": usage,
            "parallel_tool_calls": True,
            "tool_choice": "auto",
            "tools": [],
        }
        if body.get("stream"):

            def ev(name: str, data: dict[str, Any]) -> bytes:
                return f"event: {name}\ndata: {json.dumps({'type': name, **data})}\n\n".encode()

            created = {**response, "status": "in_progress", "usage": None, "output": []}
            events = [ev("response.created", {"response": created, "sequence_number": 0})]
            events += [
                ev(
                    "response.output_text.delta",
                    {
                        "item_id": "msg_1",
                        "output_index": 0,
                        "content_index": 0,
                        "delta": w,
                        "sequence_number": i + 1,
                    },
                )
                for i, w in enumerate(STREAM_WORDS)
            ]
            events.append(ev("response.completed", {"response": response, "sequence_number": 99}))
            return await self._sse(request, events)
        return web.json_response(response)

    async def models(self, request: web.Request) -> web.Response:
        return web.json_response(
            {
                "object": "list",
                "data": [{"id": "gpt-4o-mini", "object": "model", "created": 1, "owned_by": "openai"}],
            }
        )

    async def model(self, request: web.Request) -> web.Response:
        return web.json_response(
            {"id": request.match_info["model"], "object": "model", "created": 1, "owned_by": "openai"}
        )

    async def upload(self, request: web.Request) -> web.Response:
        form = _form(request, await request.read())
        purpose = form.get("purpose", (b"", ""))[0].decode()
        content, filename = form.get("file", (b"", "file"))
        file_id = f"file-{len(self.files) + 1}"
        obj = {
            "id": file_id,
            "object": "file",
            "bytes": len(content),
            "created_at": int(time.time()),
            "filename": filename,
            "purpose": purpose,
            "status": "processed",
        }
        self.files[file_id] = obj
        self.file_contents[file_id] = content
        return web.json_response(obj)

    async def list_files(self, request: web.Request) -> web.Response:
        return web.json_response({"object": "list", "data": list(self.files.values()), "has_more": False})

    async def get_file(self, request: web.Request) -> web.Response:
        f = self.files.get(request.match_info["file_id"])
        if f is None:
            return web.json_response(
                {
                    "error": {
                        "message": "No such file",
                        "type": "invalid_request_error",
                        "param": None,
                        "code": None,
                    }
                },
                status=404,
            )
        return web.json_response(f)

    async def delete_file(self, request: web.Request) -> web.Response:
        file_id = request.match_info["file_id"]
        self.files.pop(file_id, None)
        return web.json_response({"id": file_id, "object": "file", "deleted": True})

    async def file_content(self, request: web.Request) -> web.Response:
        return web.Response(
            body=self.file_contents.get(request.match_info["file_id"], b""),
            content_type="application/octet-stream",
        )

    async def images(self, request: web.Request) -> web.Response:
        body = await request.json()
        n = int(body.get("n") or 1)
        return web.json_response(
            {"created": int(time.time()), "data": [{"url": f"https://img.example/{i}.png"} for i in range(n)]}
        )

    async def image_edit(self, request: web.Request) -> web.Response:
        form = _form(request, await request.read())
        assert form["image"][0], "the image did not arrive"
        return web.json_response(
            {"created": int(time.time()), "data": [{"url": "https://img.example/edit.png"}]}
        )

    async def speech(self, request: web.Request) -> web.Response:
        return web.Response(body=b"ID3\x00fake-mp3-bytes", content_type="audio/mpeg")

    async def transcription(self, request: web.Request) -> web.Response:
        form = _form(request, await request.read())
        assert form["file"][0], "the audio file did not arrive"
        fmt = form.get("response_format", (b"json", ""))[0].decode()
        if fmt == "text":
            return web.Response(text="hello world\n", content_type="text/plain")
        if fmt == "verbose_json":
            return web.json_response(
                {
                    "task": "transcribe",
                    "language": "english",
                    "duration": 90.0,
                    "text": "hello world",
                    "segments": [],
                }
            )
        return web.json_response({"text": "hello world"})

    async def generic(self, request: web.Request) -> web.Response:
        """Assistants, threads, runs, batches, vector stores...: an object that echoes the call."""
        body = await request.read()
        obj: dict[str, Any] = {
            "id": "obj_mock",
            "object": "mock",
            "created_at": int(time.time()),
            "path": request.path,
            "method": request.method,
            "query": request.query_string,
        }
        if request.method == "GET" and not request.path.rstrip("/").split("/")[-1].startswith(
            ("asst_", "thread_", "run_", "msg_", "batch_", "vs_", "step_")
        ):
            return web.json_response(
                {
                    "object": "list",
                    "data": [],
                    "first_id": None,
                    "last_id": None,
                    "has_more": False,
                    "path": request.path,
                    "query": request.query_string,
                }
            )
        if body:
            obj["echo"] = json.loads(body) if body[:1] == b"{" else None
        return web.json_response(obj)


def _form(request: web.Request, body: bytes) -> dict[str, tuple[bytes, str]]:
    """name -> (content, filename) of a multipart/form-data body, parsed from the raw bytes."""
    head = f"Content-Type: {request.headers['Content-Type']}\r\n\r\n".encode()
    message = email.message_from_bytes(head + body, policy=email.policy.HTTP)
    parts: dict[str, tuple[bytes, str]] = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        parts[str(name)] = (part.get_payload(decode=True) or b"", part.get_filename() or "")
    return parts
