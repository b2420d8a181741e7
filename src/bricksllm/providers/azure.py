"""Azure OpenAI: deployment routes as `openai.AzureOpenAI` calls them, `api-key` auth.

The client's `api-version` query is passed through. The upstream is
`https://{resourceName}.openai.azure.com` or the setting's `url`. Azure answers carry the
model that served the deployment, which is what is priced (with OpenAI's table, Azure's list
prices being the same); the deployment name stands in for a request without a `model`.
Stream usage is asked for from `api-version` 2024-09-01 on (older versions refuse the option).
"""

from __future__ import annotations

from bricksllm.domain.models import ProviderSetting
from bricksllm.domain.pricing import PriceTable
from bricksllm.domain.text import encode_path
from bricksllm.ports import Headers
from bricksllm.providers.base import Kind, Match, OpenAIShape, RouteTable, join_url
from bricksllm.providers.openai_format import EMBEDDINGS, TokenKind

AZURE_CHAT = TokenKind(stream_usage_from="2024-09-01")
ROUTES: list[tuple[str, str, Kind]] = [
    ("POST", "/openai/deployments/:deployment_id/chat/completions", AZURE_CHAT),
    ("POST", "/openai/deployments/:deployment_id/completions", AZURE_CHAT),
    ("POST", "/openai/deployments/:deployment_id/embeddings", EMBEDDINGS),
]


class AzureProvider(OpenAIShape):
    name = "azure"
    prefix = "/api/providers/azure"
    required_setting: tuple[str, ...] = ("apikey", "resourceName|url")
    dropped_headers: frozenset[str] = frozenset()

    def __init__(self) -> None:
        self.prices = PriceTable.load("openai")
        self.routes = RouteTable(self.prefix, ROUTES)

    def match(self, method: str, path: str) -> Match | None:
        return self.routes.match(method, path)

    def default_model(self, match: Match) -> str:
        return match.params.get("deployment_id", "")

    def upstream_url(self, setting: ProviderSetting, match: Match, query: str) -> str:
        base = setting.base_url or f"https://{setting.setting.get('resourceName', '')}.openai.azure.com"
        return join_url(base, encode_path(match.path), query)

    def upstream_headers(self, setting: ProviderSetting, client: Headers) -> list[tuple[str, str]]:
        return [("api-key", setting.setting.get("apikey", ""))]
