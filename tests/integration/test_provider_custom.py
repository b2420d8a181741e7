"""Custom providers (data, not code) through the gateway over raw HTTP: each route config's path
forwarded to its `target_url`, the model, prompt and completion read at the configured locations,
streams relayed until the end word and given up after too many empty messages, the credential
sent as configured, and every call priced from offline token counts x the setting's prices.

Token counts are o200k_base (the tokenizer for model names tiktoken does not know).
"""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from tests.integration.conftest import Running
from tests.integration.mock_custom import (
    ANSWER_TEXT,
    END_WORD,
    STREAM_PARTS,
    UPSTREAM_KEY,
    MockCustom,
    route_configs,
)
from tests.integration.provider_harness import KEY, events_of, put_custom_provider, put_setting

BASE = "/api/custom/providers/acme"
AUTH = {"Authorization": f"Bearer {KEY}"}
PRICES = {
    "acme-large": {"input": 1000.0, "output": 2000.0},
    "acme-chat": {"input": 1000.0, "output": 2000.0},
}


def generate(text: str = "Say hello to the world", *, stream: bool = False) -> dict[str, Any]:
    return {
        "engine": "acme-large",
        "input": {"turns": [{"speaker": "user", "text": text}]},
        "options": {"stream": stream},
    }


async def _setup(
    gw: Running, mock: MockCustom, *, auth_param: str = "", setting: dict[str, str] | None = None, **key: Any
) -> str:
    await put_custom_provider(gw, "acme", route_configs(mock.url), auth_param)
    setting_id = await put_setting(gw, "acme", setting or {"apikey": UPSTREAM_KEY}, prices=PRICES)
    return str((await gw.create_key(setting_id, **key))["keyId"])


async def _post(gw: Running, path: str, body: Any, **headers: str) -> tuple[int, str]:
    async with gw.http.post(gw.proxy_url + path, json=body, headers={**AUTH, **headers}) as resp:
        return resp.status, await resp.text()


async def test_json_call_goes_to_the_route_target_and_is_priced(
    gateway: Running, mock_custom: MockCustom
) -> None:
    key_id = await _setup(gateway, mock_custom)
    status, text = await _post(gateway, BASE + "/generate?region=eu", generate())
    assert status == 200, text
    assert json.loads(text)["result"]["outputs"][0]["text"] == ANSWER_TEXT
    seen = mock_custom.requests[-1]
    assert (seen.path, seen.query) == ("/v2/generate", "region=eu")
    assert seen.headers["Authorization"] == f"Bearer {UPSTREAM_KEY}" and KEY not in str(seen.headers)
    assert seen.json() == generate()
    (event,) = await events_of(gateway, key_id)
    assert (event["provider"], event["model"], event["status"], event["path"]) == (
        "acme", "acme-large", 200, BASE + "/generate"
    )  # fmt: skip
    # "Say hello to the world" is 5 tokens, "Hello from acme!" 5; $1000 in, $2000 out per 1M
    assert (event["prompt_token_count"], event["completion_token_count"]) == (5, 5)
    assert round(event["cost_in_usd"] * 1e6) == 5 * 1000 + 5 * 2000


async def test_every_element_of_a_hash_location_is_read(gateway: Running, mock_custom: MockCustom) -> None:
    key_id = await _setup(gateway, mock_custom)
    messages = [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": "Say hello to the world"},
    ]
    status, text = await _post(gateway, BASE + "/chat", {"model": "acme-chat", "messages": messages})
    assert status == 200, text
    assert mock_custom.requests[-1].path == "/chat"
    (event,) = await events_of(gateway, key_id)
    # messages.#.content: "You are terse." + "Say hello to the world" = 9 tokens; choices.#.message.content 5
    assert (event["model"], event["prompt_token_count"], event["completion_token_count"]) == (
        "acme-chat",
        9,
        5,
    )
    assert round(event["cost_in_usd"] * 1e6) == 9 * 1000 + 5 * 2000


async def test_stream_is_relayed_until_the_end_word(gateway: Running, mock_custom: MockCustom) -> None:
    key_id = await _setup(gateway, mock_custom)
    started = time.monotonic()
    status, text = await _post(gateway, BASE + "/generate", generate(stream=True), **{"x-mock": "linger"})
    assert time.monotonic() - started < 2.5  # the upstream holds the connection for 3 s after the end word
    assert status == 200
    assert text.endswith(f"data: {END_WORD}\n\n") and "after the end word" not in text
    assert text.count("data: ") == 5
    (event,) = await events_of(gateway, key_id)
    assert (event["prompt_token_count"], event["completion_token_count"], event["status"]) == (5, 5, 200)
    assert round(event["cost_in_usd"] * 1e6) == 5 * 1000 + 5 * 2000


async def test_fewer_empty_messages_than_the_limit_are_relayed(
    gateway: Running, mock_custom: MockCustom
) -> None:
    await _setup(gateway, mock_custom)
    status, text = await _post(gateway, BASE + "/generate", generate(stream=True), **{"x-mock": "empty-2"})
    assert status == 200 and text.startswith("data:\n\ndata:\n\n") and text.endswith(f"data: {END_WORD}\n\n")


async def test_stream_gives_up_after_the_empty_message_limit(
    gateway: Running, mock_custom: MockCustom
) -> None:
    key_id = await _setup(gateway, mock_custom)
    started = time.monotonic()
    status, text = await _post(gateway, BASE + "/generate", generate(stream=True), **{"x-mock": "stall"})
    assert time.monotonic() - started < 1.5  # the upstream would go on sending empty events for 2 s
    assert status == 200  # the stream had begun
    assert '"Hello"' in text and "3 empty messages in a row" in text
    assert text.count("data: \n\n") == 3
    (event,) = await events_of(gateway, key_id)
    # what was generated before giving up is billed: "Hello" is 1 token
    assert (event["status"], event["prompt_token_count"], event["completion_token_count"]) == (502, 5, 1)
    assert round(event["cost_in_usd"] * 1e6) == 5 * 1000 + 1 * 2000


async def test_authentication_param_names_the_credential(gateway: Running, mock_custom: MockCustom) -> None:
    await _setup(gateway, mock_custom, auth_param="token", setting={"token": UPSTREAM_KEY})
    status, text = await _post(gateway, BASE + "/generate", generate())
    assert status == 200, text
    assert mock_custom.requests[-1].headers["Authorization"] == f"Bearer {UPSTREAM_KEY}"


async def test_auth_header_sends_the_credential_as_is(gateway: Running, mock_custom: MockCustom) -> None:
    mock_custom.expect_header = ("X-Acme-Key", UPSTREAM_KEY)
    await _setup(gateway, mock_custom, setting={"apikey": UPSTREAM_KEY, "authHeader": "X-Acme-Key"})
    status, text = await _post(gateway, BASE + "/generate", generate())
    assert status == 200, text
    assert "Authorization" not in mock_custom.requests[-1].headers


async def test_unknown_provider_path_or_method_is_404_after_authentication(
    gateway: Running, mock_custom: MockCustom
) -> None:
    await _setup(gateway, mock_custom)
    for path in ("/api/custom/providers/nobody/generate", BASE + "/nope", BASE):
        status, text = await _post(gateway, path, generate())
        assert status == 404 and "route not supported" in text, path
    async with gateway.http.get(gateway.proxy_url + BASE + "/generate", headers=AUTH) as resp:
        assert resp.status == 404
    status, text = await _post(
        gateway, "/api/custom/providers/nobody/generate", generate(), Authorization="Bearer x"
    )
    assert status == 401 and "key is not found" in text  # a stranger learns nothing about providers
    assert mock_custom.requests == []


async def test_generic_allowed_path_pattern(gateway: Running, mock_custom: MockCustom) -> None:
    generic = {"path": "/api/custom/providers/:provider/*wildcard", "method": "POST"}
    await _setup(gateway, mock_custom, allowedPaths=[generic])
    assert (await _post(gateway, BASE + "/generate", generate()))[0] == 200
    assert (await _post(gateway, BASE + "/chat", {"model": "acme-chat", "messages": []}))[0] == 200


async def test_upstream_error_passes_through_unbilled(gateway: Running, mock_custom: MockCustom) -> None:
    key_id = await _setup(gateway, mock_custom)
    status, text = await _post(gateway, BASE + "/generate", generate(), **{"x-mock": "error-503"})
    assert (status, text) == (503, '{"message": "mock error 503"}')
    (event,) = await events_of(gateway, key_id)
    assert (event["status"], event["cost_in_usd"]) == (503, 0)


async def test_an_edited_route_config_takes_effect(gateway: Running, mock_custom: MockCustom) -> None:
    await _setup(gateway, mock_custom)
    _, providers = await gateway.admin("GET", "/api/custom/providers")
    edit = {
        "route_configs": [{"path": "/generate", "target_url": f"{mock_custom.url}/v2/generate?edition=2"}]
    }
    status, data = await gateway.admin("PATCH", f"/api/custom/providers/{providers[0]['id']}", edit)
    assert status == 200, data
    assert (await _post(gateway, BASE + "/generate", generate()))[0] == 200
    assert mock_custom.requests[-1].query == "edition=2"


@pytest.mark.parametrize("stream", [False, True])
async def test_answer_bytes_are_untouched(gateway: Running, mock_custom: MockCustom, stream: bool) -> None:
    await _setup(gateway, mock_custom)
    status, text = await _post(gateway, BASE + "/generate", generate(stream=stream))
    assert status == 200
    if stream:
        assert text == "".join(f'data: {{"delta": {{"text": "{p}"}}}}\n\n' for p in STREAM_PARTS) + (
            f"data: {END_WORD}\n\n"
        )
    else:
        assert (
            text
            == '{"result": {"outputs": [{"text": "Hello from acme!"}]}, "meta": {"engine": "acme-large"}}'
        )


async def test_a_location_may_be_a_jmespath_expression(gateway: Running, mock_custom: MockCustom) -> None:
    jmespath_route = {
        "path": "/jp",
        "target_url": f"{mock_custom.url}/chat",
        "model_location": "model",
        "request_prompt_location": "messages[?role=='user'].content",
        "response_completion_location": "choices[0].message.content",
    }
    await put_custom_provider(gateway, "acme", [jmespath_route])
    setting_id = await put_setting(gateway, "acme", {"apikey": UPSTREAM_KEY}, prices=PRICES)
    key_id = str((await gateway.create_key(setting_id))["keyId"])
    messages = [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": "Say hello to the world"},
    ]
    status, text = await _post(gateway, BASE + "/jp", {"model": "acme-chat", "messages": messages})
    assert status == 200, text
    (event,) = await events_of(gateway, key_id)
    # only the user's message is the prompt here: 5 tokens; the completion 5
    assert (event["prompt_token_count"], event["completion_token_count"]) == (5, 5)
    assert round(event["cost_in_usd"] * 1e6) == 5 * 1000 + 5 * 2000
