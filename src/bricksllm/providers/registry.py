"""The single list of providers: which path belongs to which provider, and what each needs.

Built-in providers live under `/api/providers/{name}`; custom providers, defined by operators
as data, under `/api/custom/providers/{name}` and are made into providers on first use (one
adapter per configuration version, so an edit takes effect with the next snapshot).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from bricksllm.domain.models import CustomProvider
from bricksllm.providers.anthropic import AnthropicProvider
from bricksllm.providers.azure import AzureProvider
from bricksllm.providers.base import Match, Provider
from bricksllm.providers.custom import PREFIX as CUSTOM_PREFIX
from bricksllm.providers.custom import CustomProviderAdapter
from bricksllm.providers.openai import OpenAIProvider
from bricksllm.providers.openai_compatible import deepinfra, vllm

BUILTIN_PREFIX = "/api/providers"
# Accepted as provider settings although the proxy does not serve them yet.
SETTINGS_ONLY: Mapping[str, tuple[str, ...]] = {
    "bedrock": ("awsAccessKeyId", "awsSecretAccessKey", "awsRegion")
}


def default_providers() -> list[Provider]:
    return [OpenAIProvider(), AnthropicProvider(), AzureProvider(), vllm(), deepinfra()]


class ProviderRegistry:
    def __init__(self, builtins: Sequence[Provider] | None = None) -> None:
        self._builtins = {p.name: p for p in (builtins if builtins is not None else default_providers())}
        self._custom: dict[CustomProvider, CustomProviderAdapter] = {}

    @property
    def builtin_names(self) -> tuple[str, ...]:
        return (*self._builtins, *SETTINGS_ONLY)

    def required_setting(self, name: str) -> tuple[str, ...] | None:
        """Setting entries a built-in provider needs; None when `name` is not built in."""
        if name in self._builtins:
            return self._builtins[name].required_setting
        return SETTINGS_ONLY.get(name)

    @staticmethod
    def serves(path: str) -> bool:
        """Whether `path` is under a provider prefix at all (checked before authentication)."""
        return path.startswith((BUILTIN_PREFIX + "/", CUSTOM_PREFIX + "/"))

    def owner(self, path: str) -> Provider | None:
        """The built-in provider whose prefix `path` is under, known from the path alone: errors
        raised before the route is resolved (unknown key, path not allowed, ...) are rendered in
        its shape, so its SDK reads them. Custom providers speak OpenAI's error shape anyway."""
        if not path.startswith(BUILTIN_PREFIX + "/"):
            return None
        return self._builtins.get(path[len(BUILTIN_PREFIX) + 1 :].partition("/")[0])

    def resolve(
        self, method: str, path: str, custom: Mapping[str, CustomProvider]
    ) -> tuple[Provider, Match] | None:
        """The provider and endpoint of a decoded path, or None."""
        if path.startswith(CUSTOM_PREFIX + "/"):
            name, _, rest = path[len(CUSTOM_PREFIX) + 1 :].partition("/")
            config = custom.get(name)
            if config is None:
                return None
            provider: Provider = self._adapter(config)
        else:
            name, _, rest = path[len(BUILTIN_PREFIX) + 1 :].partition("/")
            found = self._builtins.get(name)
            if found is None:
                return None
            provider = found
        match = provider.match(method, "/" + rest)
        return (provider, match) if match is not None else None

    def _adapter(self, config: CustomProvider) -> CustomProviderAdapter:
        adapter = self._custom.get(config)
        if adapter is None:
            if len(self._custom) > 1000:  # configurations replaced many times over
                self._custom.clear()
            adapter = self._custom[config] = CustomProviderAdapter(config)
        return adapter
