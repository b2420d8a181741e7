"""The pure rules of routes: the cache key, retry delays, Retry-After, which route a path calls."""

from __future__ import annotations

from typing import Any

import pytest

from bricksllm.domain.routes import (
    CHAT,
    EMBEDDINGS,
    Route,
    RouteStep,
    cache_key,
    operation_of,
    retry_after,
    retry_delay,
    rewrite,
    split_path,
)

BODY: dict[str, Any] = {
    "model": "gpt-4o-mini",
    "messages": [{"role": "user", "content": "hi"}],
    "temperature": 0.2,
    "max_tokens": 100,
    "tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}],
    "response_format": {"type": "json_object"},
    "seed": 1,
    "stream": False,
}
CHANGES: list[tuple[str, Any]] = [
    ("model", "gpt-4o"),
    ("messages", [{"role": "user", "content": "hi!"}]),
    ("temperature", 0.3),
    ("max_tokens", 101),
    ("tools", []),
    ("response_format", {"type": "text"}),
    ("seed", 2),
    ("stream", True),
    ("top_p", 0.9),  # a parameter the request did not have
    ("user", "someone"),
]


@pytest.mark.parametrize(("name", "value"), CHANGES)
def test_every_parameter_is_in_the_cache_key(name: str, value: Any) -> None:
    assert cache_key("r", CHAT, "", {**BODY, name: value}) != cache_key("r", CHAT, "", BODY)


def test_the_cache_key_ignores_key_order_and_names_route_operation_and_scope() -> None:
    reordered = dict(reversed(list(BODY.items())))
    assert cache_key("r", CHAT, "", reordered) == cache_key("r", CHAT, "", BODY)
    key = cache_key("r", CHAT, "", BODY)
    assert cache_key("r2", CHAT, "", BODY) != key
    assert cache_key("r", EMBEDDINGS, "", BODY) != key
    assert cache_key("r", CHAT, "policy-1", BODY) != key
    assert len(key) == 64 and "gpt" not in key  # a digest: nothing of the request is readable


def test_a_step_rewrites_the_model_and_its_params_win() -> None:
    step = RouteStep("openai", "gpt-4o-mini", params={"temperature": 0, "max_tokens": 10})
    assert rewrite({"model": "x", "temperature": 1, "n": 2}, step) == {
        "model": "gpt-4o-mini", "temperature": 0, "n": 2, "max_tokens": 10,
    }  # fmt: skip


def test_retry_delays() -> None:
    assert [retry_delay("constant", 0.5, n) for n in (1, 2, 3)] == [0.5, 0.5, 0.5]
    assert [retry_delay("exponential", 0.5, n) for n in (1, 2, 3)] == [0.5, 1.0, 2.0]


def test_retry_after_in_seconds_or_as_a_date() -> None:
    now = 1_700_000_000.0  # Tue, 14 Nov 2023 22:13:20 GMT
    assert retry_after("7", now) == 7.0
    assert retry_after("Tue, 14 Nov 2023 22:13:50 GMT", now) == 30.0
    assert retry_after("Tue, 14 Nov 2023 22:00:00 GMT", now) == 0.0  # in the past
    assert retry_after("", now) is None
    assert retry_after("soon", now) is None


def test_which_route_a_path_calls() -> None:
    chat = Route("r1", "n", "/prod", 0, 0)
    odd = Route("r2", "n", "/v1/chat/completions", 0, 0)
    routes = {"/prod": chat, "/v1/chat/completions": odd}
    assert split_path("/prod", routes) == (chat, "")
    assert split_path("/prod/chat/completions", routes) == (chat, CHAT)
    assert split_path("/prod/embeddings", routes) == (chat, EMBEDDINGS)
    assert split_path("/v1/chat/completions", routes) == (odd, CHAT)  # an exact match wins
    assert split_path("/prod/images/generations", routes) is None
    assert split_path("/other", routes) is None


def test_the_body_says_chat_or_embeddings() -> None:
    assert operation_of({"messages": []}) == CHAT
    assert operation_of({"input": "x"}) == EMBEDDINGS
    assert operation_of({}) == CHAT
