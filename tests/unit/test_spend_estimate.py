"""The spend estimate reserved at admission, and the x-ratelimit-* headers."""

from __future__ import annotations

import math
import time

import orjson
import pytest

from bricksllm.domain.limits import Quota, Window
from bricksllm.domain.models import Key, ProviderSetting
from bricksllm.errors import LimitExceeded
from bricksllm.providers.base import RequestView
from bricksllm.providers.registry import ProviderRegistry
from bricksllm.services.limit_headers import reset, tightest_headers
from bricksllm.services.limits import Limits
from bricksllm.services.proxy import Target
from bricksllm.services.spend_estimate import TOKENIZE_LIMIT, Estimator
from bricksllm.storage.memory_counters import MemoryCounters
from bricksllm.telemetry.metrics import InMemoryMetrics


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
    cost, tokens = estimator.estimate(chat_target().kind, chat_target().pricing, v)
    assert tokens == len(v.body) + 100  # bounded by the body's size: a token is at least a byte
    assert cost == math.ceil(len(v.body) * 2.5 + 100 * 10)  # gpt-4o: $2.50 in, $10 out per 1M tokens


async def test_the_exact_estimate_counts_the_body_tokens() -> None:
    v = view({**CHAT, "max_tokens": 100})
    estimator = Estimator()
    await estimator.load(v)
    cost, tokens = estimator.estimate(chat_target().kind, chat_target().pricing, v, exact=True)
    inputs = estimator.input_tokens(v, exact=True)
    assert 5 < inputs < len(v.body)  # the body's tokens: at least the prompt's, JSON syntax included
    assert tokens == inputs + 100
    assert cost == math.ceil(inputs * 2.5 + 100 * 10)


async def test_a_large_body_is_bounded_by_its_size_even_exactly() -> None:
    v = view({**CHAT, "messages": [{"role": "user", "content": "word " * TOKENIZE_LIMIT}]})
    estimator = Estimator()
    assert not estimator.refinable(v)
    await estimator.load(v)
    assert estimator.input_tokens(v, exact=True) == len(v.body)


def test_only_small_json_bodies_are_refinable() -> None:
    assert Estimator.refinable(view(CHAT))
    assert not Estimator.refinable(RequestView(b"not json", None, "gpt-4o"))
    assert not Estimator.refinable(RequestView(b"", {}, "gpt-4o"))


async def test_a_refused_size_bound_is_judged_again_on_the_exact_count() -> None:
    """A key whose budget the size bound does not fit but the exact estimate does is admitted,
    reserving the exact estimate; the refusal of the next call names the exact estimate too."""
    v = view({**CHAT, "max_tokens": 100})
    estimator = Estimator()
    await estimator.load(v)
    bound = estimator.estimate(chat_target().kind, chat_target().pricing, v)[0]
    exact = estimator.estimate(chat_target().kind, chat_target().pricing, v, exact=True)[0]
    assert exact < bound
    counters = MemoryCounters()
    limits = Limits(counters, InMemoryMetrics(), fail_open=False, clock=time.time, estimator=estimator)
    key = Key("k", "k", "h", 0, 0, cost_limit_micros=(exact + bound) // 2)
    admitted = await limits.admit(key, chat_target(), v)
    assert admitted.reservation.cost == exact and counters.reserved("k:spend") == exact
    with pytest.raises(LimitExceeded, match=rf"may cost up to \$0\.00{exact}"):
        await limits.admit(key, chat_target(), v)
    assert counters.reserved("k:spend") == exact  # the refused call reserved nothing


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
