"""The spend estimate reserved at admission, and the x-ratelimit-* headers."""

from __future__ import annotations

import time

import orjson
import pytest

from bricksllm.domain.limits import Quota, Window
from bricksllm.domain.models import ProviderSetting
from bricksllm.providers.base import RequestView
from bricksllm.providers.registry import ProviderRegistry
from bricksllm.services.limit_headers import reset, tightest_headers
from bricksllm.services.proxy import Target
from bricksllm.services.spend_estimate import TOKENIZE_LIMIT, Estimator


def view(body: dict[str, object]) -> RequestView:
    raw = orjson.dumps(body)
    return RequestView(raw, body, str(body.get("model", "")))


def chat_target(path: str = "/api/providers/openai/v1/chat/completions") -> Target:
    found = ProviderRegistry().resolve("POST", path, {})
    assert found is not None
    return Target(found[0], found[1], ProviderSetting("s", "openai", 0, 0))


CHAT = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hello there"}]}


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ({"max_tokens": 50}, 50),
        ({"max_completion_tokens": 70}, 70),
        ({"max_output_tokens": 90}, 90),
        ({}, 1024),  # the default allowance
        ({"max_tokens": True}, 1024),  # not a number: ignored
        ({"max_tokens": -5}, 1024),
        ({"max_tokens": 0}, 0),
    ],
)
def test_output_tokens(extra: dict[str, object], expected: int) -> None:
    assert Estimator().output_tokens(view({**CHAT, **extra})) == expected


def test_per_model_allowances() -> None:
    estimator = Estimator(100, {"gpt-4o": 4096})
    assert estimator.output_tokens(view(CHAT)) == 4096
    assert estimator.output_tokens(view({**CHAT, "model": "gpt-4o-mini"})) == 100


def test_the_estimate_prices_input_and_output_like_an_answer() -> None:
    v = view({**CHAT, "max_tokens": 100})
    estimator = Estimator()
    estimator.warm_up()
    cost, tokens = estimator.estimate(chat_target().kind, chat_target().pricing, v)
    inputs = estimator.input_tokens(v)
    assert 5 < inputs < len(v.body)  # the body's tokens: at least the prompt's, JSON syntax included
    assert tokens == inputs + 100
    assert cost == round(inputs * 2.5 + 100 * 10)  # gpt-4o: $2.50 in, $10 out per 1M tokens


def test_a_large_body_is_bounded_by_its_size() -> None:
    v = view({**CHAT, "messages": [{"role": "user", "content": "word " * TOKENIZE_LIMIT}]})
    estimator = Estimator()
    estimator.warm_up()
    assert estimator.input_tokens(v) == len(v.body)


def test_a_body_is_bounded_by_its_size_while_its_encoding_loads() -> None:
    v = view({**CHAT, "model": "gpt-3.5-turbo"})  # cl100k_base: not loaded at start-up
    estimator = Estimator()
    assert estimator.input_tokens(v) == len(v.body)  # never waits: the load runs in a thread
    for _ in range(400):
        if estimator.input_tokens(v) < len(v.body):
            break
        time.sleep(0.025)
    assert 5 < estimator.input_tokens(v) < len(v.body)


def test_unpriced_calls_reserve_nothing() -> None:
    found = ProviderRegistry().resolve("GET", "/api/providers/openai/v1/models", {})
    assert found is not None
    target = Target(found[0], found[1], ProviderSetting("s", "openai", 0, 0))
    assert Estimator().estimate(target.kind, target.pricing, RequestView(b"")) == (0, 0)


@pytest.mark.parametrize(
    ("seconds", "text"), [(1, "1s"), (59, "59s"), (60, "1m0s"), (3723, "1h2m3s"), (0, "0s")]
)
def test_reset_is_written_like_openai(seconds: int, text: str) -> None:
    assert reset(seconds) == text


def test_the_tightest_limit_of_each_kind_is_reported() -> None:
    minute, day = Window("m", 0, 60), Window("d", 0, 86_400)
    quotas = [Quota("requests", 60, "k", minute), Quota("requests", 1000, "k", day),
              Quota("tokens", 500, "k", day), Quota("cost", 10, "k")]  # fmt: skip
    headers = dict(tightest_headers(quotas, [59, 3, 400, 1], now=30))
    assert headers == {
        "x-ratelimit-limit-requests": "1000", "x-ratelimit-remaining-requests": "3",
        "x-ratelimit-reset-requests": "23h59m30s",
        "x-ratelimit-limit-tokens": "500", "x-ratelimit-remaining-tokens": "400",
        "x-ratelimit-reset-tokens": "23h59m30s",
    }  # fmt: skip
