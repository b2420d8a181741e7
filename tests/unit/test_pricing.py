"""The price table and cost arithmetic: golden values worked out by hand in each case.

Token prices are USD per 1M tokens, so `tokens * price` is micro-dollars; every expected value
below is that product written out.
"""

from __future__ import annotations

import json
from importlib import resources
from typing import Any

import pytest

from bricksllm.domain.models import ModelPrice, Usage
from bricksllm.domain.pricing import PriceTable, cost_micros, embedding_cost_micros, resolve


@pytest.fixture(scope="module")
def table() -> PriceTable:
    return PriceTable.load_default()


def test_shipped_table_records_its_source_and_is_cached(table: PriceTable) -> None:
    assert "2025" in table.source and "openai.com" in table.source
    assert PriceTable.load_default() is table


def test_prices_json_ships_as_package_data() -> None:
    data = json.loads(resources.files("bricksllm.domain").joinpath("data", "prices.json").read_text())
    assert data["models"]["gpt-4o"] == {"input": 2.5, "cached_input": 1.25, "output": 10.0}


# model, prompt, cached, completion, expected micros
CHAT_COSTS = [
    # the brief's example: 234 * 2.5 + 1000 * 1.25 + 567 * 10
    ("gpt-4o", 1234, 1000, 567, 234 * 2.5 + 1000 * 1.25 + 567 * 10),
    ("gpt-4o-2024-08-06", 1000, 0, 1000, 2_500 + 10_000),
    ("gpt-4o-2024-11-20", 1000, 0, 1000, 2_500 + 10_000),
    ("gpt-4o-2024-05-13", 1000, 500, 1000, 1000 * 5 + 1000 * 15),  # no cached price: all input
    ("gpt-4o-mini", 1_000_000, 0, 1_000_000, 150_000 + 600_000),
    ("gpt-4o-mini", 1000, 1000, 0, 75),
    ("gpt-4o-mini-2024-07-18", 2000, 1000, 1000, 150 + 75 + 600),
    ("gpt-4.1", 1000, 400, 100, 600 * 2 + 400 * 0.5 + 100 * 8),
    ("gpt-4.1-2025-04-14", 1000, 0, 0, 2000),
    ("gpt-4.1-mini", 1000, 500, 1000, 500 * 0.4 + 500 * 0.1 + 1000 * 1.6),
    ("gpt-4.1-nano", 10_000, 2000, 1000, 8000 * 0.1 + 2000 * 0.025 + 1000 * 0.4),
    ("gpt-4.5-preview", 100, 100, 100, 100 * 37.5 + 100 * 150),
    ("o1", 1000, 200, 500, 800 * 15 + 200 * 7.5 + 500 * 60),
    ("o1-2024-12-17", 1000, 0, 0, 15_000),
    ("o1-preview", 1000, 0, 1000, 15_000 + 60_000),
    ("o1-mini", 1000, 100, 1000, 900 * 1.1 + 100 * 0.55 + 1000 * 4.4),
    ("o1-pro", 1000, 0, 1000, 150_000 + 600_000),
    ("o3", 1000, 500, 1000, 500 * 2 + 500 * 0.5 + 1000 * 8),
    ("o3-mini", 1000, 0, 1000, 1100 + 4400),
    ("o3-mini-2025-01-31", 1000, 0, 1000, 1100 + 4400),
    ("o4-mini", 1000, 1000, 1000, 275 + 4400),
    ("gpt-4-turbo", 1000, 0, 1000, 10_000 + 30_000),
    ("gpt-4-turbo-2024-04-09", 1000, 0, 1000, 10_000 + 30_000),
    ("gpt-4-turbo-preview", 1000, 0, 1000, 10_000 + 30_000),
    ("gpt-4-0125-preview", 1000, 0, 1000, 10_000 + 30_000),
    ("gpt-4-1106-vision-preview", 1000, 0, 1000, 10_000 + 30_000),
    ("gpt-4", 1000, 0, 1000, 30_000 + 60_000),
    ("gpt-4-0613", 1000, 0, 1000, 30_000 + 60_000),
    ("gpt-4-32k", 1000, 0, 1000, 60_000 + 120_000),
    ("gpt-4-32k-0613", 1000, 0, 1000, 60_000 + 120_000),
    ("gpt-3.5-turbo", 1000, 0, 1000, 500 + 1500),
    ("gpt-3.5-turbo-0125", 1000, 0, 1000, 500 + 1500),
    ("gpt-3.5-turbo-1106", 1000, 0, 1000, 1000 + 2000),
    ("gpt-3.5-turbo-0613", 1000, 0, 1000, 1500 + 2000),
    ("gpt-3.5-turbo-16k-0613", 1000, 0, 1000, 3000 + 4000),
    ("gpt-3.5-turbo-instruct", 1000, 0, 1000, 1500 + 2000),
    ("gpt-3.5-turbo-instruct-0914", 1000, 0, 1000, 1500 + 2000),
    ("gpt-35-turbo", 1000, 0, 1000, 500 + 1500),  # Azure's spelling
    ("chatgpt-4o-latest", 1000, 0, 1000, 5000 + 15_000),
    ("gpt-4o-audio-preview-2024-12-17", 1000, 0, 1000, 2500 + 10_000),
    ("gpt-4o-realtime-preview-2024-12-17", 1000, 1000, 1000, 2500 + 20_000),
    ("gpt-4o-mini-realtime-preview", 1000, 0, 1000, 600 + 2400),
    ("gpt-5", 1000, 1000, 1000, 125 + 10_000),
    ("gpt-5-2025-08-07", 1000, 0, 0, 1250),
    ("gpt-5-mini", 1000, 400, 1000, 600 * 0.25 + 400 * 0.025 + 1000 * 2),
    ("gpt-5-nano", 100_000, 50_000, 10_000, 50_000 * 0.05 + 50_000 * 0.005 + 10_000 * 0.4),
    ("gpt-4o-transcribe", 1000, 0, 100, 1000 * 6 + 100 * 10),  # token usage: input at the audio rate
    ("gpt-4o-mini-transcribe", 1000, 0, 100, 1000 * 3 + 100 * 5),
    ("davinci-002", 1000, 0, 1000, 2000 + 2000),
    ("babbage-002", 1000, 0, 1000, 400 + 400),
    ("omni-moderation-latest", 1000, 0, 0, 0),
    ("text-moderation-007", 1000, 0, 0, 0),
    ("GPT-4o", 1000, 0, 0, 2500),  # names are case-insensitive
]


@pytest.mark.parametrize(("model", "prompt", "cached", "completion", "expected"), CHAT_COSTS)
def test_chat_cost_golden(
    table: PriceTable, model: str, prompt: int, cached: int, completion: int, expected: float
) -> None:
    usage = Usage(prompt_tokens=prompt, completion_tokens=completion, cached_prompt_tokens=cached)
    price, known = table.price(model)
    assert known, model
    assert cost_micros(price, usage) == round(expected)
    assert table.cost(model, usage) == (round(expected), True)


def test_brief_example_is_7505_micros(table: PriceTable) -> None:
    usage = Usage(prompt_tokens=1234, completion_tokens=567, cached_prompt_tokens=1000)
    assert table.cost("gpt-4o", usage) == (7505, True)


@pytest.mark.parametrize(
    ("model", "tokens", "expected"),
    [
        ("text-embedding-3-small", 1_000_000, 20_000),
        ("text-embedding-3-small", 1234, 25),  # 24.68
        ("text-embedding-3-large", 1000, 130),
        ("text-embedding-ada-002", 1000, 100),
    ],
)
def test_embedding_cost(table: PriceTable, model: str, tokens: int, expected: int) -> None:
    price, known = table.price(model)
    assert known
    assert embedding_cost_micros(price, tokens) == expected


@pytest.mark.parametrize(
    ("model", "family"),
    [
        ("gpt-4o", "gpt-4o"),
        ("gpt-4o-mini", "gpt-4o-mini"),  # not gpt-4o
        ("gpt-4o-mini-2024-07-18", "gpt-4o-mini"),
        ("gpt-4o-2024-05-13", "gpt-4o-2024-05-13"),  # a dated name with its own entry keeps it
        ("gpt-4o-2024-08-06", "gpt-4o"),
        ("gpt-3.5-turbo-0125", "gpt-3.5-turbo"),
        ("gpt-3.5-turbo-1106", "gpt-3.5-turbo-1106"),
        ("gpt-4", "gpt-4"),
        ("gpt-4-0314", "gpt-4"),
        ("gpt-4.1-mini-2025-04-14", "gpt-4.1-mini"),
        ("gpt-4-vision-preview", "gpt-4-turbo"),
        ("o1-preview-2024-09-12", "o1"),
        ("ft:gpt-4o-mini-2024-07-18:my-org::abc123", "gpt-4o-mini"),
        ("ft:gpt-3.5-turbo-0613:org:suffix:id", "gpt-3.5-turbo"),
        ("ft:davinci-002:org::id", "davinci-002"),
        # no loose prefixes: none of these is a known model
        ("gpt-4o-mini-something", None),
        ("gpt-4-new", None),
        ("gpt-4oo", None),
        ("gpt-5-turbo", None),
        ("o3-mini-high", None),
        ("gpt-4o-2024", None),  # not a date suffix
        ("gpt-4-1399", None),  # month 13: not a date
        ("", None),
        ("ft:", None),
        ("ft:unknown-base:org::id", None),
    ],
)
def test_resolve(table: PriceTable, model: str, family: str | None) -> None:
    assert table.resolve(model) == family
    assert resolve(model) == family


def test_gpt4_never_catches_gpt4o(table: PriceTable) -> None:
    assert table.price("gpt-4o")[0] != table.price("gpt-4")[0]
    assert table.price("gpt-4o-mini")[0] != table.price("gpt-4o")[0]


@pytest.mark.parametrize(
    ("model", "expected"),
    [
        ("ft:gpt-4o-mini-2024-07-18:org::id", ModelPrice(0.3, 1.2, 0.15)),
        ("ft:gpt-4o-2024-08-06:org:name:id", ModelPrice(3.75, 15.0, 1.875)),
        ("ft:gpt-4.1-2025-04-14:org::id", ModelPrice(3.0, 12.0, 0.75)),
        ("ft:gpt-4.1-nano-2025-04-14:org::id", ModelPrice(0.2, 0.8, 0.05)),
        ("ft:gpt-3.5-turbo-1106:org::id", ModelPrice(3.0, 6.0)),
        ("ft:o4-mini-2025-04-16:org::id", ModelPrice(4.0, 16.0, 1.0)),
        ("ft:babbage-002:org::id", ModelPrice(1.6, 1.6)),
        # a base without a fine-tuned price is billed as the base
        ("ft:gpt-5-mini-2025-08-07:org::id", ModelPrice(0.25, 2.0, 0.025)),
    ],
)
def test_fine_tuned_prices(table: PriceTable, model: str, expected: ModelPrice) -> None:
    assert table.price(model) == (expected, True)


def test_fine_tuned_cost(table: PriceTable) -> None:
    usage = Usage(prompt_tokens=1000, completion_tokens=1000, cached_prompt_tokens=500)
    assert table.cost("ft:gpt-4o-mini-2024-07-18:org::id", usage) == (500 * 0.3 + 500 * 0.15 + 1200, True)


def test_unknown_model_gets_conservative_default_and_flag(table: PriceTable) -> None:
    price, known = table.price("my-local-llama")
    assert not known
    assert price == table.default == ModelPrice(30.0, 60.0)
    # fail safe: the default is at least as dear as every common chat model
    for model in ("gpt-4o", "gpt-4.1", "gpt-5", "o1", "o3", "gpt-4-turbo", "gpt-4"):
        p = table.price(model)[0]
        assert price.input >= p.input and price.output >= p.output, model
    usage = Usage(prompt_tokens=100, completion_tokens=10)
    assert table.cost("my-local-llama", usage) == (3000 + 600, False)


def test_overrides_win_by_exact_model_then_family(table: PriceTable) -> None:
    cheap = ModelPrice(1.0, 2.0)
    free = ModelPrice(0.0, 0.0)
    assert table.price("gpt-4o", {"gpt-4o": cheap}) == (cheap, True)
    assert table.price("gpt-4o-2024-08-06", {"gpt-4o": cheap}) == (cheap, True)  # by family
    assert table.price("gpt-4o-2024-08-06", {"gpt-4o-2024-08-06": free, "gpt-4o": cheap}) == (free, True)
    assert table.price("my-vllm-model", {"my-vllm-model": free}) == (free, True)  # zero is honoured
    assert table.price("gpt-4o-mini", {"gpt-4o": cheap})[0] == ModelPrice(0.15, 0.6, 0.075)
    # fine-tuned models: the exact name or ft:<family>, not the plain base's override
    ft = "ft:gpt-4o-mini-2024-07-18:org::id"
    assert table.price(ft, {"gpt-4o-mini": free})[0] == ModelPrice(0.3, 1.2, 0.15)
    assert table.price(ft, {"ft:gpt-4o-mini": cheap}) == (cheap, True)
    assert table.price(ft, {ft: free}) == (free, True)
    assert table.price("gpt-4o", {}) == (ModelPrice(2.5, 10.0, 1.25), True)


@pytest.mark.parametrize(
    ("price", "usage", "expected"),
    [
        (ModelPrice(0.15, 0.6), Usage(prompt_tokens=3), 0),  # 0.45
        (ModelPrice(0.15, 0.6), Usage(prompt_tokens=4), 1),  # 0.6
        (ModelPrice(0.15, 0.6), Usage(prompt_tokens=10), 2),  # 1.5: ties round half up
        (ModelPrice(0.1, 0.4, 0.025), Usage(prompt_tokens=20, cached_prompt_tokens=20), 1),  # exactly 0.5
        (ModelPrice(0.15, 0.6, 0.075), Usage(prompt_tokens=2, cached_prompt_tokens=2), 0),  # 0.15, not 0.1499
        (ModelPrice(1.1, 4.4), Usage(prompt_tokens=1, completion_tokens=1), 6),  # 5.5
        (ModelPrice(2.5, 10.0), Usage(prompt_tokens=0, completion_tokens=0), 0),
        # malformed usage never becomes a credit
        (ModelPrice(2.5, 10.0, 1.25), Usage(prompt_tokens=100, cached_prompt_tokens=500), 125),
        (ModelPrice(2.5, 10.0), Usage(prompt_tokens=-5, completion_tokens=-5), 0),
        (ModelPrice(2.5, 10.0), Usage(prompt_tokens=400, completion_tokens=300, reasoning_tokens=200), 4000),
    ],
)
def test_rounding_and_clamping(price: ModelPrice, usage: Usage, expected: int) -> None:
    assert cost_micros(price, usage) == expected


@pytest.mark.parametrize(
    ("model", "size", "quality", "n", "expected", "known"),
    [
        ("dall-e-2", "256x256", None, 1, 16_000, True),
        ("dall-e-2", "512x512", "standard", 2, 36_000, True),
        ("dall-e-2", None, None, 1, 20_000, True),  # default 1024x1024
        ("dall-e-3", "1024x1024", "standard", 1, 40_000, True),
        ("dall-e-3", "1792x1024", "standard", 1, 80_000, True),
        ("dall-e-3", "1024x1792", "hd", 3, 360_000, True),
        ("dall-e-3", None, "hd", 1, 80_000, True),
        ("DALL-E-3", "1024x1024", "HD", 1, 80_000, True),
        ("gpt-image-1", "1024x1024", "low", 1, 11_000, True),
        ("gpt-image-1", "1536x1024", "medium", 1, 63_000, True),
        ("gpt-image-1", "1024x1024", "high", 1, 167_000, True),
        ("gpt-image-1", "auto", "auto", 1, 250_000, True),  # auto: the dearest option
        ("gpt-image-1", None, "low", 2, 32_000, True),
        ("dall-e-3", "4096x4096", "standard", 1, 80_000, False),  # unknown size: dearest size
        ("dall-e-2", "1024x1024", "hd", 1, 20_000, False),  # unknown quality
        ("some-image-model", "1024x1024", None, 2, 500_000, False),  # unknown model: images default
        ("dall-e-3", "1024x1024", None, 0, 0, True),
    ],
)
def test_image_cost(
    table: PriceTable, model: str, size: str | None, quality: str | None, n: int, expected: int, known: bool
) -> None:
    assert table.image_cost_micros(model, size, quality, n) == (expected, known)


def test_image_token_cost(table: PriceTable) -> None:
    # 40 uncached text * 5 + 10 cached * 1.25 + 200 image * 10 + 4160 output * 40 = 168612.5 -> half up
    got = table.image_token_cost_micros(
        "gpt-image-1", text_tokens=50, image_tokens=200, output_tokens=4160, cached_text_tokens=10
    )
    assert got == (168_613, True)
    got = table.image_token_cost_micros("gpt-image-1", image_tokens=100, cached_image_tokens=100)
    assert got == (250, True)
    assert table.image_token_cost_micros("future-image", output_tokens=1000) == (40_000, False)


@pytest.mark.parametrize(
    ("model", "seconds", "expected", "known"),
    [
        ("whisper-1", 60, 6000, True),
        ("whisper-1", 90, 9000, True),  # pro rata, not truncated to 1 minute
        ("whisper-1", 1, 100, True),
        ("whisper-1", 30.4, 3000, True),  # nearest second
        ("whisper-1", 30.5, 3100, True),
        ("whisper-1", 0, 0, True),
        ("whisper-1", -3, 0, True),
        ("whisper-1", float("nan"), 0, True),
        ("gpt-4o-transcribe", 120, 12_000, True),
        ("gpt-4o-mini-transcribe", 60, 3000, True),
        ("gpt-4o-mini-transcribe", 7, 350, True),
        ("gpt-4o-mini-transcribe-2025-03-20", 60, 3000, True),
        ("local-whisper", 60, 6000, False),
    ],
)
def test_transcription_cost(
    table: PriceTable, model: str, seconds: float, expected: int, known: bool
) -> None:
    assert table.audio_transcription_cost_micros(model, seconds) == (expected, known)


@pytest.mark.parametrize(
    ("model", "characters", "expected", "known"),
    [
        ("tts-1", 1_000_000, 15_000_000, True),
        ("tts-1", 1000, 15_000, True),
        ("tts-1-hd", 1000, 30_000, True),
        ("tts-1-1106", 1000, 15_000, True),
        ("tts-1-hd-1106", 3, 90, True),
        ("gpt-4o-mini-tts", 1000, 15_000, True),
        ("new-voice", 1000, 30_000, False),
    ],
)
def test_speech_cost(table: PriceTable, model: str, characters: int, expected: int, known: bool) -> None:
    assert table.speech_cost_micros(model, characters) == (expected, known)


def _minimal(**extra: Any) -> dict[str, Any]:
    return {"default": {"input": 10, "output": 20}, "models": {"m": {"input": 1, "output": 2}}} | extra


def test_from_mapping_builds_a_small_table() -> None:
    t = PriceTable.from_mapping(
        _minimal(aliases={"m-latest": "m"}, fine_tuned={"m": {"input": 3, "output": 4, "cached_input": 1}})
    )
    assert t.price("m-latest") == (ModelPrice(1, 2), True)
    assert t.price("m-2025-01-01") == (ModelPrice(1, 2), True)
    assert t.price("ft:m-2025-01-01:o::x") == (ModelPrice(3, 4, 1), True)
    assert t.price("other") == (ModelPrice(10, 20), False)
    # sections it lacks price by their own rule, not by crashing
    assert t.speech_cost_micros("tts-1", 10) == (0, False)


def test_from_mapping_without_default_uses_the_dearest_model() -> None:
    t = PriceTable.from_mapping({"models": {"a": {"input": 1, "output": 2}, "b": {"input": 5, "output": 9}}})
    assert t.price("zzz") == (ModelPrice(5, 9), False)


@pytest.mark.parametrize(
    "bad",
    [
        _minimal(models={"m": {"input": -1}}),
        _minimal(models={"m": {"input": "1"}}),
        _minimal(models={"m": {"input": True}}),
        _minimal(models={"m": {"output": 1}}),  # input is required
        _minimal(models={"m": {"input": 1, "cache_input": 1}}),  # typo caught
        _minimal(models={"m": 1}),
        _minimal(aliases={"x": "missing"}),
        _minimal(images={"d": {"prices": {}}}),
        _minimal(images={"d": {"default_size": "9x9", "prices": {"s": {"1x1": 1}}}}),
        _minimal(image_tokens={"g": {"output": 1}}),
        _minimal(transcription={"w": float("inf")}),
        {"models": {}},
    ],
)
def test_from_mapping_rejects_bad_data(bad: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        PriceTable.from_mapping(bad)


def test_table_is_immutable(table: PriceTable) -> None:
    with pytest.raises(TypeError):
        table.models["gpt-4o"] = ModelPrice()  # type: ignore[index]
