"""OpenAI-compatible servers: vLLM (and any server speaking OpenAI's API at a `url`) and
DeepInfra. Same wire format and meters as OpenAI; Bearer auth when a key is set.

vLLM's upstream is `{url}/v1/...` (its `url` is required); DeepInfra's is
`https://api.deepinfra.com/v1/openai/...` (or `{url}/v1/openai/...`). Self-hosted models have no
list price: they are priced by the setting's `prices` (0 and flagged otherwise); DeepInfra ships
its embedding prices as the original gateway did.
"""

from __future__ import annotations

from bricksllm.domain.models import ProviderSetting
from bricksllm.domain.pricing import PriceTable
from bricksllm.domain.text import encode_path
from bricksllm.ports import Headers
from bricksllm.providers.base import Kind, Match, OpenAIShape, RouteTable, join_url
from bricksllm.providers.openai import base_without_v1
from bricksllm.providers.openai_format import CHAT, EMBEDDINGS, PASS

ROUTES: list[tuple[str, str, Kind]] = [
    ("POST", "/v1/chat/completions", CHAT),
    ("POST", "/v1/completions", CHAT),
    ("POST", "/v1/embeddings", EMBEDDINGS),
    ("GET", "/v1/models", PASS),
]


class OpenAICompatibleProvider(OpenAIShape):
    dropped_headers: frozenset[str] = frozenset()

    def __init__(
        self,
        name: str,
        *,
        prices: str,
        default_base_url: str,
        upstream_prefix: str,
        required: tuple[str, ...],
    ) -> None:
        self.name = name
        self.prefix = f"/api/providers/{name}"
        self.required_setting = required
        self.prices = PriceTable.load(prices)
        self.routes = RouteTable(self.prefix, ROUTES)
        self._default_base_url = default_base_url
        self._upstream_prefix = upstream_prefix  # inserted before the route's path after /v1

    def match(self, method: str, path: str) -> Match | None:
        return self.routes.match(method, path)

    def upstream_url(self, setting: ProviderSetting, match: Match, query: str) -> str:
        base = base_without_v1(setting, self._default_base_url)
        path = "/v1" + self._upstream_prefix + match.path.removeprefix("/v1")
        return join_url(base, encode_path(path), query)

    def upstream_headers(self, setting: ProviderSetting, client: Headers) -> list[tuple[str, str]]:
        key = setting.setting.get("apikey", "")
        return [("Authorization", f"Bearer {key}")] if key else []


def vllm() -> OpenAICompatibleProvider:
    return OpenAICompatibleProvider(
        "vllm", prices="none", default_base_url="", upstream_prefix="", required=("url",)
    )


def deepinfra() -> OpenAICompatibleProvider:
    return OpenAICompatibleProvider(
        "deepinfra",
        prices="deepinfra",
        default_base_url="https://api.deepinfra.com",
        upstream_prefix="/openai",
        required=("apikey",),
    )
