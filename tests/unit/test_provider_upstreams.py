"""Where each built-in provider sends a call and with which credentials, for the settings the
integration tests cannot exercise over loopback (the providers' public hosts: Azure's
`resourceName`, DeepInfra's and Anthropic's default URLs)."""

from __future__ import annotations

import pytest
from multidict import CIMultiDict

from bricksllm.domain.models import ProviderSetting
from bricksllm.providers.registry import ProviderRegistry


def _setting(provider: str, **entries: str) -> ProviderSetting:
    return ProviderSetting(id="s1", provider=provider, created_at=0, updated_at=0, setting=dict(entries))


@pytest.mark.parametrize(
    ("provider", "entries", "path", "query", "url"),
    [
        ("azure", {"resourceName": "contoso"},
         "/api/providers/azure/openai/deployments/prod-4o/chat/completions", "api-version=2024-10-21",
         "https://contoso.openai.azure.com/openai/deployments/prod-4o/chat/completions?api-version=2024-10-21"),
        ("azure", {"url": "https://gw.example/", "resourceName": "ignored"},
         "/api/providers/azure/openai/deployments/d/embeddings", "api-version=2024-10-21",
         "https://gw.example/openai/deployments/d/embeddings?api-version=2024-10-21"),
        ("anthropic", {}, "/api/providers/anthropic/v1/messages", "",
         "https://api.anthropic.com/v1/messages"),
        ("anthropic", {"url": "https://claude.example/v1"},
         "/api/providers/anthropic/v1/messages/count_tokens", "", "https://claude.example/v1/messages/count_tokens"),
        ("deepinfra", {}, "/api/providers/deepinfra/v1/chat/completions", "",
         "https://api.deepinfra.com/v1/openai/chat/completions"),
        ("deepinfra", {"url": "https://di.example"}, "/api/providers/deepinfra/v1/embeddings", "",
         "https://di.example/v1/openai/embeddings"),
        ("vllm", {"url": "http://vllm.internal:8000/v1"}, "/api/providers/vllm/v1/models", "",
         "http://vllm.internal:8000/v1/models"),
    ],
)  # fmt: skip
def test_upstream_url(provider: str, entries: dict[str, str], path: str, query: str, url: str) -> None:
    method = "GET" if path.endswith("/models") else "POST"
    found = ProviderRegistry().resolve(method, path, {})
    assert found is not None
    built, match = found
    assert built.name == provider
    assert built.upstream_url(_setting(provider, **entries), match, query) == url


@pytest.mark.parametrize(
    ("provider", "entries", "client", "expected"),
    [
        ("azure", {"apikey": "az"}, {}, [("api-key", "az")]),
        ("anthropic", {"apikey": "ant"}, {}, [("x-api-key", "ant"), ("anthropic-version", "2023-06-01")]),
        ("anthropic", {"apikey": "ant"}, {"Anthropic-Version": "2024-01-01"},
         [("x-api-key", "ant"), ("anthropic-version", "2024-01-01")]),
        ("vllm", {"url": "http://v"}, {}, []),
        ("vllm", {"url": "http://v", "apikey": "tok"}, {}, [("Authorization", "Bearer tok")]),
        ("deepinfra", {"apikey": "di"}, {}, [("Authorization", "Bearer di")]),
    ],
)  # fmt: skip
def test_upstream_credentials(
    provider: str, entries: dict[str, str], client: dict[str, str], expected: list[tuple[str, str]]
) -> None:
    registry = ProviderRegistry()
    owner = registry.owner(f"/api/providers/{provider}/v1/x")
    assert owner is not None and owner.name == provider
    assert owner.upstream_headers(_setting(provider, **entries), CIMultiDict(client)) == expected


def test_owner_is_known_from_the_path_alone() -> None:
    registry = ProviderRegistry()
    assert registry.owner("/api/providers/nobody/v1/messages") is None
    assert registry.owner("/api/custom/providers/acme/generate") is None  # custom: OpenAI's shape
    assert registry.owner("/elsewhere") is None
