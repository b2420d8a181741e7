"""A mock Azure OpenAI resource on loopback, speaking Azure's REST wire format.

What distinguishes Azure from OpenAI, and what the gateway must therefore get right, is checked
as the real service checks it:

- routes are per deployment: `/openai/deployments/{deployment}/chat/completions`,
  `/completions`, `/embeddings`; an unknown deployment is 404 `DeploymentNotFound`;
- the `api-version` query parameter is required (404 "Resource not found" without it), and
  `stream_options` is refused (400) by versions older than 2024-09-01;
- authentication is the `api-key` header (401 otherwise);
- answers name the model that serves the deployment (e.g. `gpt-4o-2024-08-06`), carry
  `prompt_filter_results` / `content_filter_results`, and a stream opens with a chunk that has
  no choices and no model (the prompt filter results); the usage chunk comes only when asked.

Tests steer it with the `x-mock` header (`error-<status>`, `slow-<ms>`, `no-usage`, `no-model`
for a chat answer that names no model); every request is recorded.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from tests.integration.mock_base import MockServer

UPSTREAM_KEY = "azure-upstream-secret"
# deployment name -> the model Azure says served it
DEPLOYMENTS = {
    "prod-4o": "gpt-4o-2024-08-06",
    "mini": "gpt-4o-mini-2024-07-18",
    "embed": "text-embedding-3-small",
    "instruct": "gpt-35-turbo-instruct",
    "gpt-4o-mini": "gpt-4o-mini-2024-07-18",  # a deployment named after its model
}
EMBEDDING_TOKENS = 500  # per input
PROMPT_TOKENS = 120
CACHED_TOKENS = 40
COMPLETION_TOKENS = 30
STREAM_WORDS = ["Hello", " from", " Azure", "!"]
STREAM_OPTIONS_FROM = "2024-09-01"
FILTERS = {
    "hate": {"filtered": False, "severity": "safe"},
    "self_harm": {"filtered": False, "severity": "safe"},
    "sexual": {"filtered": False, "severity": "safe"},
    "violence": {"filtered": False, "severity": "safe"},
}


def azure_error(status: int, code: str, message: str) -> web.Response:
    return web.json_response({"error": {"code": code, "message": message}}, status=status)


@dataclass
class MockAzure(MockServer):
    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._check])
        base = "/openai/deployments/{deployment}"
        app.router.add_post(base + "/chat/completions", self.chat)
        app.router.add_post(base + "/completions", self.completions)
        app.router.add_post(base + "/embeddings", self.embeddings)
        return app

    @web.middleware
    async def _check(self, request: web.Request, handler: Any) -> web.StreamResponse:
        body = await self.record(request)
        if request.headers.get("api-key") != UPSTREAM_KEY:
            return azure_error(
                401,
                "401",
                "Access denied due to invalid subscription key or wrong API endpoint. Make sure to provide a "
                "valid key for an active subscription and use a correct regional API endpoint for your "
                "resource.",
            )
        if "api-version" not in request.query:
            return azure_error(404, "404", "Resource not found")
        deployment = request.match_info.get("deployment", "")
        if deployment not in DEPLOYMENTS:
            return azure_error(
                404,
                "DeploymentNotFound",
                "The API deployment for this resource does not exist. If you created the deployment within "
                "the last 5 minutes, please wait a moment and try again.",
            )
        mock = request.headers.get("x-mock", "")
        if mock.startswith("error-"):
            status = int(mock[6:])
            return azure_error(status, str(status), f"mock error {status}")
        if mock.startswith("slow-"):
            await asyncio.sleep(int(mock[5:]) / 1000)
        parsed = json.loads(body)
        if "stream_options" in parsed and request.query["api-version"] < STREAM_OPTIONS_FROM:
            return azure_error(400, "BadRequest", "Unrecognized request argument supplied: stream_options")
        return await handler(request)

    @staticmethod
    def _usage(request: web.Request) -> dict[str, Any] | None:
        if request.headers.get("x-mock") == "no-usage":
            return None
        return {
            "prompt_tokens": PROMPT_TOKENS,
            "completion_tokens": COMPLETION_TOKENS,
            "total_tokens": PROMPT_TOKENS + COMPLETION_TOKENS,
            "prompt_tokens_details": {"cached_tokens": CACHED_TOKENS},
            "completion_tokens_details": {"reasoning_tokens": 0},
        }

    async def chat(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        model = DEPLOYMENTS[request.match_info["deployment"]]
        created = int(time.time())
        prompt_filters = [{"prompt_index": 0, "content_filter_results": FILTERS}]
        if body.get("stream"):

            def chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
                choice = {
                    "index": 0,
                    "delta": delta,
                    "finish_reason": finish,
                    "content_filter_results": FILTERS,
                }
                obj = {
                    "id": "chatcmpl-azure",
                    "object": "chat.completion.chunk",
                    "created": created,
                    "model": model,
                    "system_fingerprint": "fp_azure",
                    "choices": [choice],
                }
                return b"data: " + json.dumps(obj).encode() + b"\n\n"

            first = {
                "choices": [],
                "created": 0,
                "id": "",
                "model": "",
                "object": "",
                "prompt_filter_results": prompt_filters,
            }
            events = [
                b"data: " + json.dumps(first).encode() + b"\n\n",
                chunk({"role": "assistant", "content": ""}),
            ]
            events += [chunk({"content": w}) for w in STREAM_WORDS]
            events.append(chunk({}, "stop"))
            usage = self._usage(request)
            if (body.get("stream_options") or {}).get("include_usage") and usage:
                obj = {"id": "chatcmpl-azure", "object": "chat.completion.chunk", "created": created,
                       "model": model, "choices": [], "usage": usage}  # fmt: skip
                events.append(b"data: " + json.dumps(obj).encode() + b"\n\n")
            events.append(b"data: [DONE]\n\n")
            resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
            await resp.prepare(request)
            for event in events:
                await resp.write(event)
            await resp.write_eof()
            return resp
        answer: dict[str, Any] = {
            "id": "chatcmpl-azure",
            "object": "chat.completion",
            "created": created,
            "model": model,
            "system_fingerprint": "fp_azure",
            "prompt_filter_results": prompt_filters,
            "choices": [
                {
                    "index": 0,
                    "finish_reason": "stop",
                    "message": {"role": "assistant", "content": "".join(STREAM_WORDS), "refusal": None},
                    "logprobs": None,
                    "content_filter_results": FILTERS,
                }
            ],
        }
        if usage := self._usage(request):
            answer["usage"] = usage
        if request.headers.get("x-mock") == "no-model":
            del answer["model"]
        return web.json_response(
            answer, headers={"apim-request-id": "apim-mock", "x-ms-region": "Sweden Central"}
        )

    async def completions(self, request: web.Request) -> web.Response:
        model = DEPLOYMENTS[request.match_info["deployment"]]
        answer: dict[str, Any] = {
            "id": "cmpl-azure",
            "object": "text_completion",
            "created": int(time.time()),
            "model": model,
            "choices": [{"index": 0, "text": "ok", "logprobs": None, "finish_reason": "stop"}],
        }
        if usage := self._usage(request):
            answer["usage"] = usage
        return web.json_response(answer)

    async def embeddings(self, request: web.Request) -> web.Response:
        body = await request.json()
        inputs = body["input"] if isinstance(body["input"], list) else [body["input"]]
        fmt = body.get("encoding_format", "float")
        vector: Any = "AACAPwAAAEAAAEBA" if fmt == "base64" else [1.0, 2.0, 3.0]
        return web.json_response(
            {
                "object": "list",
                "data": [
                    {"object": "embedding", "index": i, "embedding": vector} for i in range(len(inputs))
                ],
                "model": DEPLOYMENTS[request.match_info["deployment"]],
                "usage": {
                    "prompt_tokens": EMBEDDING_TOKENS * len(inputs),
                    "total_tokens": EMBEDDING_TOKENS * len(inputs),
                },
            }
        )
