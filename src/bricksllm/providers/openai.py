"""OpenAI: routes of the reference plus the ones users need today, auth, and usage parsing."""

from __future__ import annotations

from typing import Any

from bricksllm.domain.models import ProviderSetting, Usage, token_count
from bricksllm.domain.text import encode_path
from bricksllm.providers.base import Operation, Route, RouteTable

_ROUTES: list[tuple[str, str, str]] = [
    # (methods, pattern relative to /api/providers/openai, kind)
    ("POST", "/v1/chat/completions", "chat"),
    ("POST", "/v1/completions", "completions"),
    ("POST", "/v1/embeddings", "embeddings"),
    ("POST", "/v1/moderations", "moderations"),
    ("POST", "/v1/responses", "responses"),
    ("GET DELETE", "/v1/responses/:response_id", "passthrough"),
    ("POST", "/v1/responses/:response_id/cancel", "passthrough"),
    ("GET", "/v1/responses/:response_id/input_items", "passthrough"),
    ("GET", "/v1/models", "passthrough"),
    ("GET DELETE", "/v1/models/:model", "passthrough"),
    ("GET", "/v1/files", "passthrough"),
    ("POST", "/v1/files", "upload"),
    ("GET DELETE", "/v1/files/:file_id", "passthrough"),
    ("GET", "/v1/files/:file_id/content", "passthrough"),
    ("POST", "/v1/uploads", "passthrough"),
    ("POST", "/v1/uploads/:upload_id/parts", "upload"),
    ("POST", "/v1/uploads/:upload_id/complete", "passthrough"),
    ("POST", "/v1/uploads/:upload_id/cancel", "passthrough"),
    ("GET POST", "/v1/assistants", "passthrough"),
    ("GET POST DELETE", "/v1/assistants/:assistant_id", "passthrough"),
    ("GET POST", "/v1/assistants/:assistant_id/files", "passthrough"),
    ("GET DELETE", "/v1/assistants/:assistant_id/files/:file_id", "passthrough"),
    ("POST", "/v1/threads", "passthrough"),
    ("POST", "/v1/threads/runs", "passthrough"),
    ("GET", "/v1/threads/runs", "passthrough"),
    ("GET POST DELETE", "/v1/threads/:thread_id", "passthrough"),
    ("GET POST", "/v1/threads/:thread_id/messages", "passthrough"),
    ("GET POST DELETE", "/v1/threads/:thread_id/messages/:message_id", "passthrough"),
    ("GET", "/v1/threads/:thread_id/messages/:message_id/files", "passthrough"),
    ("GET", "/v1/threads/:thread_id/messages/:message_id/files/:file_id", "passthrough"),
    ("GET POST", "/v1/threads/:thread_id/runs", "passthrough"),
    ("GET POST", "/v1/threads/:thread_id/runs/:run_id", "passthrough"),
    ("POST", "/v1/threads/:thread_id/runs/:run_id/submit_tool_outputs", "passthrough"),
    ("POST", "/v1/threads/:thread_id/runs/:run_id/cancel", "passthrough"),
    ("GET", "/v1/threads/:thread_id/runs/:run_id/steps", "passthrough"),
    ("GET", "/v1/threads/:thread_id/runs/:run_id/steps/:step_id", "passthrough"),
    ("POST", "/v1/images/generations", "images"),
    ("POST", "/v1/images/edits", "images_multipart"),
    ("POST", "/v1/images/variations", "images_multipart"),
    ("POST", "/v1/audio/speech", "speech"),
    ("POST", "/v1/audio/transcriptions", "transcription"),
    ("POST", "/v1/audio/translations", "transcription"),
    ("GET POST", "/v1/batches", "passthrough"),
    ("GET", "/v1/batches/:batch_id", "passthrough"),
    ("POST", "/v1/batches/:batch_id/cancel", "passthrough"),
    ("GET POST", "/v1/vector_stores", "passthrough"),
    ("GET POST DELETE", "/v1/vector_stores/:vector_store_id", "passthrough"),
    ("POST", "/v1/vector_stores/:vector_store_id/search", "passthrough"),
    ("GET POST", "/v1/vector_stores/:vector_store_id/files", "passthrough"),
    ("GET POST DELETE", "/v1/vector_stores/:vector_store_id/files/:file_id", "passthrough"),
    ("GET", "/v1/vector_stores/:vector_store_id/files/:file_id/content", "passthrough"),
    ("POST", "/v1/vector_stores/:vector_store_id/file_batches", "passthrough"),
    ("GET", "/v1/vector_stores/:vector_store_id/file_batches/:batch_id", "passthrough"),
    ("POST", "/v1/vector_stores/:vector_store_id/file_batches/:batch_id/cancel", "passthrough"),
    ("GET", "/v1/vector_stores/:vector_store_id/file_batches/:batch_id/files", "passthrough"),
]


def _int(d: Any, *path: str) -> int:
    for p in path:
        if not isinstance(d, dict):
            return 0
        d = d.get(p)
    return token_count(d)


class OpenAIProvider:
    name = "openai"
    prefix = "/api/providers/openai"
    default_base_url = "https://api.openai.com"

    def __init__(self) -> None:
        routes = [Route(m, self.prefix + p, kind) for ms, p, kind in _ROUTES for m in ms.split()]
        self.routes = RouteTable(self.prefix, routes)

    def match(self, method: str, path: str) -> Operation | None:
        route = self.routes.match(method, path)
        if route is None:
            return None
        return Operation(method, route.pattern, route.kind, encode_path(path[len(self.prefix) :]))

    def auth_headers(self, setting: ProviderSetting) -> dict[str, str]:
        headers = {"Authorization": f"Bearer {setting.setting.get('apikey', '')}"}
        if org := setting.setting.get("organization"):
            headers["OpenAI-Organization"] = org
        if project := setting.setting.get("project"):
            headers["OpenAI-Project"] = project
        return headers

    def prepare_body(self, op: Operation, parsed: dict[str, Any]) -> bool:
        """Ask for the usage chunk on streamed chat/completions so streams are priced exactly."""
        if op.kind in ("chat", "completions") and parsed.get("stream") is True:
            options = parsed.get("stream_options")
            if not isinstance(options, dict) or options.get("include_usage") is not True:
                parsed["stream_options"] = {**(options or {}), "include_usage": True}
                return True
        return False

    def usage(self, op: Operation, body: dict[str, Any]) -> Usage | None:
        u = body.get("usage")
        if not isinstance(u, dict):
            return None
        if op.kind in ("responses", "images", "images_multipart"):
            return Usage(
                prompt_tokens=_int(u, "input_tokens"),
                completion_tokens=_int(u, "output_tokens"),
                cached_prompt_tokens=_int(u, "input_tokens_details", "cached_tokens"),
                reasoning_tokens=_int(u, "output_tokens_details", "reasoning_tokens"),
            )
        return Usage(
            prompt_tokens=_int(u, "prompt_tokens") or _int(u, "input_tokens"),
            completion_tokens=_int(u, "completion_tokens") or _int(u, "output_tokens"),
            cached_prompt_tokens=_int(u, "prompt_tokens_details", "cached_tokens"),
            reasoning_tokens=_int(u, "completion_tokens_details", "reasoning_tokens"),
        )

    def stream_usage(self, op: Operation, event: dict[str, Any]) -> Usage | None:
        if op.kind == "responses":
            response = event.get("response")
            return self.usage(op, response) if isinstance(response, dict) else None
        return self.usage(op, event)

    def stream_text(self, op: Operation, event: dict[str, Any]) -> str:
        """The generated text carried by one stream event (used only when no usage arrived)."""
        if op.kind == "responses":
            delta = event.get("delta")
            return (
                delta if event.get("type") == "response.output_text.delta" and isinstance(delta, str) else ""
            )
        parts: list[str] = []
        for choice in event.get("choices") or ():
            if not isinstance(choice, dict):
                continue
            delta = choice.get("delta")
            if isinstance(delta, dict):
                if isinstance(delta.get("content"), str):
                    parts.append(delta["content"])
                for call in delta.get("tool_calls") or ():
                    fn = call.get("function") if isinstance(call, dict) else None
                    if isinstance(fn, dict):
                        parts.append(str(fn.get("name") or "") + str(fn.get("arguments") or ""))
            elif isinstance(choice.get("text"), str):
                parts.append(choice["text"])
        return "".join(parts)
