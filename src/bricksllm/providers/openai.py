"""OpenAI: the reference's routes plus the ones users need today, Bearer auth, OpenAI's prices.

Organisation and project headers sent by a client are dropped (a key holder must not bill
another organisation or project of the operator's account); the setting may set its own
(`organization`, `project`), or allow the client's with `allowClientOrganization: "true"`.
"""

from __future__ import annotations

from bricksllm.domain.models import ProviderSetting
from bricksllm.domain.pricing import PriceTable
from bricksllm.domain.text import encode_path
from bricksllm.ports import Headers
from bricksllm.providers.base import Kind, Match, OpenAIShape, RouteTable, join_url
from bricksllm.providers.openai_format import (
    CHAT,
    EMBEDDINGS,
    IMAGES,
    IMAGES_MULTIPART,
    PASS,
    RESPONSES,
    SPEECH,
    TRANSCRIPTION,
    UPLOAD,
)

ROUTES: list[tuple[str, str, Kind]] = [
    # (methods, pattern relative to /api/providers/openai, kind)
    ("POST", "/v1/chat/completions", CHAT),
    ("POST", "/v1/completions", CHAT),
    ("POST", "/v1/embeddings", EMBEDDINGS),
    ("POST", "/v1/moderations", PASS),
    ("POST", "/v1/responses", RESPONSES),
    ("GET DELETE", "/v1/responses/:response_id", PASS),
    ("POST", "/v1/responses/:response_id/cancel", PASS),
    ("GET", "/v1/responses/:response_id/input_items", PASS),
    ("GET", "/v1/models", PASS),
    ("GET DELETE", "/v1/models/:model", PASS),
    ("GET", "/v1/files", PASS),
    ("POST", "/v1/files", UPLOAD),
    ("GET DELETE", "/v1/files/:file_id", PASS),
    ("GET", "/v1/files/:file_id/content", PASS),
    ("POST", "/v1/uploads", PASS),
    ("POST", "/v1/uploads/:upload_id/parts", UPLOAD),
    ("POST", "/v1/uploads/:upload_id/complete", PASS),
    ("POST", "/v1/uploads/:upload_id/cancel", PASS),
    ("GET POST", "/v1/assistants", PASS),
    ("GET POST DELETE", "/v1/assistants/:assistant_id", PASS),
    ("GET POST", "/v1/assistants/:assistant_id/files", PASS),
    ("GET DELETE", "/v1/assistants/:assistant_id/files/:file_id", PASS),
    ("POST", "/v1/threads", PASS),
    ("GET POST", "/v1/threads/runs", PASS),
    ("GET POST DELETE", "/v1/threads/:thread_id", PASS),
    ("GET POST", "/v1/threads/:thread_id/messages", PASS),
    ("GET POST DELETE", "/v1/threads/:thread_id/messages/:message_id", PASS),
    ("GET", "/v1/threads/:thread_id/messages/:message_id/files", PASS),
    ("GET", "/v1/threads/:thread_id/messages/:message_id/files/:file_id", PASS),
    ("GET POST", "/v1/threads/:thread_id/runs", PASS),
    ("GET POST", "/v1/threads/:thread_id/runs/:run_id", PASS),
    ("POST", "/v1/threads/:thread_id/runs/:run_id/submit_tool_outputs", PASS),
    ("POST", "/v1/threads/:thread_id/runs/:run_id/cancel", PASS),
    ("GET", "/v1/threads/:thread_id/runs/:run_id/steps", PASS),
    ("GET", "/v1/threads/:thread_id/runs/:run_id/steps/:step_id", PASS),
    ("POST", "/v1/images/generations", IMAGES),
    ("POST", "/v1/images/edits", IMAGES_MULTIPART),
    ("POST", "/v1/images/variations", IMAGES_MULTIPART),
    ("POST", "/v1/audio/speech", SPEECH),
    ("POST", "/v1/audio/transcriptions", TRANSCRIPTION),
    ("POST", "/v1/audio/translations", TRANSCRIPTION),
    ("GET POST", "/v1/batches", PASS),
    ("GET", "/v1/batches/:batch_id", PASS),
    ("POST", "/v1/batches/:batch_id/cancel", PASS),
    ("GET POST", "/v1/vector_stores", PASS),
    ("GET POST DELETE", "/v1/vector_stores/:vector_store_id", PASS),
    ("POST", "/v1/vector_stores/:vector_store_id/search", PASS),
    ("GET POST", "/v1/vector_stores/:vector_store_id/files", PASS),
    ("GET POST DELETE", "/v1/vector_stores/:vector_store_id/files/:file_id", PASS),
    ("GET", "/v1/vector_stores/:vector_store_id/files/:file_id/content", PASS),
    ("POST", "/v1/vector_stores/:vector_store_id/file_batches", PASS),
    ("GET", "/v1/vector_stores/:vector_store_id/file_batches/:batch_id", PASS),
    ("POST", "/v1/vector_stores/:vector_store_id/file_batches/:batch_id/cancel", PASS),
    ("GET", "/v1/vector_stores/:vector_store_id/file_batches/:batch_id/files", PASS),
]
ORG_HEADERS = ("OpenAI-Organization", "OpenAI-Project")


def base_without_v1(setting: ProviderSetting, default: str) -> str:
    """A setting `url` may be given with or without the `/v1` the routes already carry."""
    base = (setting.base_url or default).rstrip("/")
    return base[:-3] if base.endswith("/v1") else base


class OpenAIProvider(OpenAIShape):
    name = "openai"
    prefix = "/api/providers/openai"
    required_setting: tuple[str, ...] = ("apikey",)
    dropped_headers = frozenset(h.lower() for h in ORG_HEADERS)

    def __init__(self) -> None:
        self.prices = PriceTable.load("openai")
        self.routes = RouteTable(self.prefix, ROUTES)

    def match(self, method: str, path: str) -> Match | None:
        return self.routes.match(method, path)

    def upstream_url(self, setting: ProviderSetting, match: Match, query: str) -> str:
        return join_url(base_without_v1(setting, "https://api.openai.com"), encode_path(match.path), query)

    def upstream_headers(self, setting: ProviderSetting, client: Headers) -> list[tuple[str, str]]:
        s = setting.setting
        headers = [("Authorization", f"Bearer {s.get('apikey', '')}")]
        allow_client = s.get("allowClientOrganization") == "true"
        for header, key in zip(ORG_HEADERS, ("organization", "project"), strict=True):
            value = s.get(key) or (client.get(header, "") if allow_client else "")
            if value:
                headers.append((header, value))
        return headers
