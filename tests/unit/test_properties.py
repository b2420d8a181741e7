"""Property-based tests (hypothesis) of the rules a gateway must never get wrong: limit windows,
prices, request paths and which headers cross the gateway."""

from __future__ import annotations

import string
from datetime import UTC, datetime

from hypothesis import given, settings
from hypothesis import strategies as st
from multidict import CIMultiDict

from bricksllm.domain.limits import window
from bricksllm.domain.models import ModelPrice, ProviderSetting, Usage
from bricksllm.domain.pricing import cost_micros
from bricksllm.domain.text import PathRefused, canonical_path, encode_path
from bricksllm.providers.registry import ProviderRegistry
from bricksllm.services.proxy_headers import HOP_BY_HOP, NOT_FORWARDED, client_key, upstream_headers

NOW = st.integers(min_value=0, max_value=4_102_444_800)  # 1970 .. 2100
UNITS = st.sampled_from(["s", "m", "h", "d", "mo"])


@given(unit=UNITS, now=NOW)
def test_a_window_contains_now_and_the_next_one_starts_where_it_ends(unit: str, now: int) -> None:
    w = window(unit, now)
    assert w.start <= now < w.end
    assert window(unit, w.start) == w and window(unit, w.end - 1) == w
    after = window(unit, w.end)
    assert after.start == w.end > w.start
    if unit == "mo":
        start = datetime.fromtimestamp(w.start, UTC)
        assert (start.day, start.hour, start.minute, start.second) == (1, 0, 0, 0)
        assert 28 * 86_400 <= w.end - w.start <= 31 * 86_400
    else:
        assert w.end - w.start == {"s": 1, "m": 60, "h": 3600, "d": 86_400}[unit]
        assert w.start % (w.end - w.start) == 0  # calendar-aligned in UTC


PRICES = st.floats(min_value=0, max_value=200, allow_nan=False, allow_infinity=False)
COUNTS = st.integers(min_value=-10, max_value=10**9)


@given(
    price=st.builds(ModelPrice, input=PRICES, output=PRICES, cached_input=st.none() | PRICES,
                    cache_write=st.none() | PRICES),
    prompt=COUNTS, completion=COUNTS, cached=COUNTS, written=COUNTS, more=st.integers(0, 10**6),
)  # fmt: skip
def test_a_cost_is_never_negative_and_more_tokens_never_cost_less(
    price: ModelPrice, prompt: int, completion: int, cached: int, written: int, more: int
) -> None:
    usage = Usage(prompt, completion, cached_prompt_tokens=cached, cache_write_tokens=written)
    cost = cost_micros(price, usage)
    assert cost >= 0
    larger = Usage(prompt, completion + more, cached_prompt_tokens=cached, cache_write_tokens=written)
    assert cost_micros(price, larger) >= cost
    # at most the price of every prompt token at the dearest rate, plus the completion
    dearest = max(price.input, price.cached_input or 0, price.cache_write or 0)
    bound = max(prompt, 0) * dearest + max(completion, 0) * price.output
    assert cost <= round(bound) + 1


@given(price=PRICES, a=st.integers(0, 10**7), b=st.integers(0, 10**7))
def test_costs_add_up_within_one_micro_dollar(price: float, a: int, b: int) -> None:
    p = ModelPrice(input=price, output=price)
    together = cost_micros(p, Usage(a + b, 0))
    apart = cost_micros(p, Usage(a, 0)) + cost_micros(p, Usage(b, 0))
    assert abs(together - apart) <= 1  # each call is rounded once, half up


SEGMENT = st.text(alphabet=st.characters(blacklist_categories=("Cs", "Cc")), min_size=1, max_size=12).filter(
    lambda s: s not in (".", "..") and not any(c in s for c in "/?#\\")
)


@given(segments=st.lists(SEGMENT, min_size=1, max_size=6))
def test_what_is_matched_is_exactly_what_is_forwarded(segments: list[str]) -> None:
    decoded = "/" + "/".join(segments)
    encoded = encode_path(decoded)
    assert canonical_path(encoded) == decoded
    assert encode_path(canonical_path(encoded)) == encoded  # stable: forwarded as matched


TRICKS = ["..", ".", "%2e%2e", "%2E.", ".%2e", "%2e", "a%2fb", "a%2Fb", "a%5cb", "a%3fb", "a%23b", "a%00b",
          "a%0db", "%ff"]  # fmt: skip


@given(
    before=st.lists(SEGMENT, max_size=3),
    after=st.lists(SEGMENT, max_size=3),
    trick=st.sampled_from(TRICKS),
)  # fmt: skip
def test_a_path_that_could_be_read_two_ways_is_refused(
    before: list[str], after: list[str], trick: str
) -> None:
    raw = "/" + "/".join(
        [*(encode_path("/" + s)[1:] for s in before), trick, *(encode_path("/" + s)[1:] for s in after)]
    )
    try:
        decoded = canonical_path(raw)
    except PathRefused:
        return
    raise AssertionError(f"{raw!r} was accepted as {decoded!r}")


HEADER_NAMES = st.sampled_from(
    sorted(
        NOT_FORWARDED
        | {"Content-Type", "X-Custom", "OpenAI-Organization", "OpenAI-Project", "Accept", "User-Agent"}
    )
)
HEADER_VALUES = st.text(alphabet=string.ascii_letters + string.digits + "-_ ", min_size=1, max_size=20)


@settings(max_examples=200)
@given(headers=st.lists(st.tuples(HEADER_NAMES, HEADER_VALUES), max_size=12), upper=st.booleans())
def test_the_clients_key_and_hop_by_hop_headers_never_reach_a_provider(
    headers: list[tuple[str, str]], upper: bool
) -> None:
    incoming = CIMultiDict((n.upper() if upper else n, v) for n, v in headers)
    registry = ProviderRegistry()
    for name in ("openai", "anthropic", "azure", "vllm", "deepinfra"):
        provider = registry.resolve("POST", f"/api/providers/{name}/v1/embeddings", {})
        prov = provider[0] if provider else registry.owner(f"/api/providers/{name}/x")
        assert prov is not None
        values = {"apikey": "sk-provider", "resourceName": "r", "url": "http://u"}
        setting = ProviderSetting(id="s", provider=name, created_at=0, updated_at=0, setting=values)
        sent = upstream_headers(incoming, prov, setting, keep_length=False)
        client = client_key(incoming)
        for key, value in sent:
            lowered = key.lower()
            assert lowered not in HOP_BY_HOP
            assert lowered not in {"x-custom-event-id", "x-request-timeout", "cookie"}
            if lowered in {"authorization", "api-key", "x-api-key"}:  # only the provider's credential
                assert value in {"Bearer sk-provider", "sk-provider"}, (name, key, client)
        assert ("Accept-Encoding", "identity") in sent
        assert (
            not {k.lower() for k, _ in sent} & {"openai-organization", "openai-project"} or name != "openai"
        )
