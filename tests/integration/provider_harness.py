"""What the provider tests share: configuring each provider through the admin API, the official
SDK clients pointed at the gateway, the recorded events, and one `Upstream` per provider (its
mock, its setting and one priced call in its wire format) for the tests run against every one.

Each `Upstream` knows how a client of that provider sends its key and reads an error, so the
access-control matrix can check, provider by provider, that a refusal arrives in the shape that
provider's SDK understands and that the mock saw nothing.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import anthropic
import openai

from tests.integration import mock_anthropic, mock_azure, mock_custom
from tests.integration.conftest import Running
from tests.integration.mock_anthropic import MockAnthropic
from tests.integration.mock_azure import MockAzure
from tests.integration.mock_base import Recorded, start_mock
from tests.integration.mock_custom import MockCustom
from tests.integration.mock_openai import MockOpenAI

KEY = "my-secret-key"
AZURE_API_VERSION = "2024-10-21"
SETTINGS = "/api/provider-settings"
CUSTOM = "/api/custom/providers"


async def put_setting(gw: Running, provider: str, setting: dict[str, str], **extra: Any) -> str:
    status, data = await gw.admin("PUT", SETTINGS, {"provider": provider, "setting": setting, **extra})
    assert status == 200, data
    return str(data["id"])


async def put_custom_provider(
    gw: Running, name: str, configs: list[dict[str, Any]], authentication_param: str = ""
) -> dict[str, Any]:
    body = {"provider": name, "route_configs": configs, "authentication_param": authentication_param}
    status, data = await gw.admin("POST", CUSTOM, body)
    assert status == 200, data
    return dict(data)


def anthropic_sdk(gw: Running, key: str = KEY, **kw: Any) -> anthropic.AsyncAnthropic:
    """The official Anthropic client as the README shows it (closed with the gateway)."""
    client = anthropic.AsyncAnthropic(
        base_url=f"{gw.proxy_url}/api/providers/anthropic", api_key=key, max_retries=0, **kw
    )
    gw.clients.append(client)
    return client


def azure_sdk(gw: Running, key: str = KEY, api_version: str = AZURE_API_VERSION) -> openai.AsyncAzureOpenAI:
    client = openai.AsyncAzureOpenAI(
        azure_endpoint=f"{gw.proxy_url}/api/providers/azure",
        api_key=key,
        api_version=api_version,
        max_retries=0,
    )
    gw.clients.append(client)
    return client


def openai_sdk(gw: Running, provider: str, key: str = KEY) -> openai.AsyncOpenAI:
    """The OpenAI client against an OpenAI-compatible provider's routes (vLLM, DeepInfra)."""
    client = openai.AsyncOpenAI(
        api_key=key, base_url=f"{gw.proxy_url}/api/providers/{provider}/v1", max_retries=0
    )
    gw.clients.append(client)
    return client


async def events_of(gw: Running, key_id: str, count: int = 1) -> list[dict[str, Any]]:
    """The key's recorded events, oldest first; waits (2 s at most) until there are `count`.

    A stream's event is recorded when the gateway has relayed its end, which an SDK may not wait
    for: it stops reading at the last event (`data: [DONE]`, `message_stop`)."""
    for _ in range(40):
        await gw.flush_events()
        status, events = await gw.admin("GET", f"/api/events?keyIds={key_id}")
        assert status == 200, events
        if len(events) >= count:
            break
        await asyncio.sleep(0.05)
    return sorted(events, key=lambda e: (e["created_at"], e["id"]))


async def spend_of(gw: Running, key_id: str) -> int:
    status, spend = await gw.admin("GET", f"/api/reporting/keys/{key_id}")
    assert status == 200, spend
    return int(spend["costInMicroDollars"])


# --- one upstream per provider, for the tests run against every provider ----------------------


@dataclass
class Upstream:
    """A provider as a client sees it: where to send one priced call and how to read errors."""

    provider: str
    mock: MockOpenAI | MockAnthropic | MockAzure | MockCustom
    setting: dict[str, str]
    path: str  # the gateway path of a priced call
    body: dict[str, Any]  # its JSON body
    model: str  # the model the call names (what allowedModels is checked against)
    prices: dict[str, Any] = field(default_factory=dict)  # setting prices making the call cost > 0
    custom_routes: list[dict[str, Any]] | None = None  # a custom provider to create first
    anthropic_shape: bool = False
    key_header: Callable[[str], dict[str, str]] = lambda key: {"Authorization": f"Bearer {key}"}

    @property
    def requests(self) -> list[Recorded]:
        return self.mock.requests

    async def configure(self, gw: Running, **extra: Any) -> str:
        """The provider's setting (and custom provider) through the admin API; the setting id."""
        if self.custom_routes is not None:
            await put_custom_provider(gw, self.provider, self.custom_routes)
        extra.setdefault("prices", self.prices)
        return await put_setting(gw, self.provider, self.setting, **extra)

    async def call(self, gw: Running, key: str = KEY) -> tuple[int, dict[str, Any]]:
        async with gw.http.post(gw.proxy_url + self.path, json=self.body, headers=self.key_header(key)) as r:
            return r.status, await r.json(content_type=None)

    def error(self, status: int, body: dict[str, Any]) -> str:
        """The message of a gateway error, checking it is in this provider's shape."""
        if self.anthropic_shape:
            assert body["type"] == "error" and set(body["error"]) == {"type", "message"}, body
            assert body["error"]["type"] == mock_anthropic.ERROR_TYPES[status], body
            return str(body["error"]["message"])
        assert set(body["error"]) == {"message", "type", "code"}, body
        openai_types = {401: "authentication_error", 403: "permission_error", 429: "rate_limit_error"}
        assert body["error"]["type"] == openai_types[status], body
        return str(body["error"]["message"])


PROVIDERS = ("openai", "anthropic", "azure", "vllm", "deepinfra", "custom")
_CHAT = [{"role": "user", "content": "hi"}]


def _upstream(name: str, mock: Any) -> Upstream:
    if name == "openai":
        return Upstream("openai", mock, {"apikey": "sk-upstream-secret", "url": mock.url},
                        "/api/providers/openai/v1/chat/completions", {"model": "gpt-4o", "messages": _CHAT},
                        "gpt-4o")  # fmt: skip
    if name == "anthropic":
        body = {"model": "claude-sonnet-4-5", "max_tokens": 64, "messages": _CHAT}
        return Upstream(
            "anthropic", mock, {"apikey": mock_anthropic.UPSTREAM_KEY, "url": mock.url},
            "/api/providers/anthropic/v1/messages", body, "claude-sonnet-4-5",
            anthropic_shape=True, key_header=lambda key: {"x-api-key": key},
        )  # fmt: skip
    if name == "azure":
        return Upstream(
            "azure", mock, {"apikey": mock_azure.UPSTREAM_KEY, "url": mock.url},
            f"/api/providers/azure/openai/deployments/prod-4o/chat/completions?api-version={AZURE_API_VERSION}",
            {"model": "prod-4o", "messages": _CHAT}, "prod-4o", key_header=lambda key: {"api-key": key},
        )  # fmt: skip
    if name == "vllm":
        model = "meta-llama/Llama-3.1-8B-Instruct"
        return Upstream("vllm", mock, {"url": mock.url}, "/api/providers/vllm/v1/chat/completions",
                        {"model": model, "messages": _CHAT}, model,
                        prices={model: {"input": 2.0, "output": 5.0}})  # fmt: skip
    if name == "deepinfra":
        model = "meta-llama/Meta-Llama-3.1-70B-Instruct"
        return Upstream("deepinfra", mock, {"apikey": "di-upstream-secret", "url": mock.url},
                        "/api/providers/deepinfra/v1/chat/completions", {"model": model, "messages": _CHAT},
                        model, prices={model: {"input": 0.35, "output": 0.4}})  # fmt: skip
    assert name == "custom"
    body = {"engine": "acme-large", "input": {"turns": [{"speaker": "user", "text": "hi"}]}, "options": {}}
    return Upstream(
        "acme", mock, {"apikey": mock_custom.UPSTREAM_KEY}, "/api/custom/providers/acme/generate", body,
        "acme-large", prices={"acme-large": {"input": 1000.0, "output": 2000.0}},
        custom_routes=mock_custom.route_configs(mock.url),
    )  # fmt: skip


@asynccontextmanager
async def serving(name: str) -> AsyncIterator[Upstream]:
    """The named provider's mock upstream, running on loopback for the duration."""
    mock: Any
    if name in ("openai", "vllm", "deepinfra"):
        mock = MockOpenAI(base="/v1/openai" if name == "deepinfra" else "/v1")
        runner = await start_mock(mock)
    elif name == "anthropic":
        mock = MockAnthropic()
        runner = await start_mock(mock)
    elif name == "azure":
        mock = MockAzure()
        runner = await start_mock(mock)
    else:
        mock = MockCustom()
        runner = await start_mock(mock)
    try:
        yield _upstream(name, mock)
    finally:
        await runner.cleanup()
