"""What a request cost: the price table (data, in `data/prices.json`) and the arithmetic on it.

The original gateway kept prices in exact-match Go maps, so a dated snapshot or a new model was
silently free. Here the table is data, names are resolved by a fixed rule (exact name or alias,
then the same with a date suffix stripped; never a loose prefix, so `gpt-4o-mini` is never priced
as `gpt-4o`), fine-tuned models are priced from their base, and an unknown model
gets the table's conservative `default` price together with a flag the caller counts in a metric.

Money is integer micro-dollars. Token prices are USD per 1M tokens, so tokens x price is already
micro-dollars; sums are taken in Decimal from the prices' shortest decimal form and rounded once,
half up, to the nearest micro-dollar (`0.075 * 2` is exactly 0.15, not 0.1499999...).
"""

from __future__ import annotations

import functools
import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from importlib import resources
from types import MappingProxyType
from typing import Any

from bricksllm.domain.models import ModelPrice, Usage

# A snapshot date at the end of a name: -YYYY-MM-DD or -MMDD (gpt-4o-2024-08-06, gpt-4-0613).
# Also -YYYYMMDD (claude-sonnet-4-5-20250929).
_DATE_SUFFIX = re.compile(r"-(?:\d{4}-\d{2}-\d{2}|20\d{6}|(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01]))$")
_FT_PREFIX = "ft:"
_AUTO = "auto"
_PRICE_FIELDS = frozenset({"input", "output", "cached_input", "cache_write"})
_IMAGE_TOKEN_FIELDS = ("text_input", "cached_text_input", "image_input", "cached_image_input", "output")
_MILLION = Decimal(1_000_000)


def _dec(value: float) -> Decimal:
    # repr gives the shortest decimal that round-trips, i.e. the number as written in the table.
    return Decimal(repr(value))


def _round(amount: Decimal) -> int:
    return int(amount.quantize(Decimal(1), rounding=ROUND_HALF_UP))


def _count(n: int) -> int:
    return n if n > 0 else 0


def cost_micros(price: ModelPrice, usage: Usage) -> int:
    """`fresh * input + cached * cached_input + written * cache_write + completion * output`,
    in micro-dollars, where fresh = prompt - cached - written.

    Cached (read from a prompt cache) and written (to it) tokens are parts of `prompt_tokens`;
    each is billed at its own price when the model has one, else at `input`. Reasoning tokens are
    already inside `completion_tokens`. Counts are clamped (negative -> 0, parts <= prompt) so a
    malformed upstream usage cannot yield a credit.
    """
    prompt = _count(usage.prompt_tokens)
    cached = min(_count(usage.cached_prompt_tokens), prompt)
    written = min(_count(usage.cache_write_tokens), prompt - cached)
    cached_rate = price.input if price.cached_input is None else price.cached_input
    write_rate = price.input if price.cache_write is None else price.cache_write
    total = (
        (prompt - cached - written) * _dec(price.input)
        + cached * _dec(cached_rate)
        + written * _dec(write_rate)
        + _count(usage.completion_tokens) * _dec(price.output)
    )
    return _round(total)


def embedding_cost_micros(price: ModelPrice, tokens: int) -> int:
    """Embeddings bill input tokens only (OpenAI reports them as `usage.total_tokens`)."""
    return _round(_count(tokens) * _dec(price.input))


def _strip_date(name: str) -> str:
    return _DATE_SUFFIX.sub("", name)


def _normalise(model: str) -> str:
    return model.strip().lower()


def _find(name: str, entries: Mapping[str, Any], aliases: Mapping[str, str]) -> str | None:
    """The entry for `name`: exact, then an alias, then both again with the date suffix stripped."""
    stripped = _strip_date(name)
    for candidate in (name, stripped) if stripped != name else (name,):
        if candidate in entries:
            return candidate
        target = aliases.get(candidate)
        if target is not None and target in entries:
            return target
    return None


def _fine_tuned_base(name: str) -> str | None:
    """`ft:gpt-4o-mini-2024-07-18:org::id` -> `gpt-4o-mini-2024-07-18`; None if not fine-tuned."""
    if not name.startswith(_FT_PREFIX):
        return None
    return name[len(_FT_PREFIX) :].split(":", 1)[0]


@dataclass(frozen=True, slots=True)
class ImagePrices:
    """USD per image, by quality then size; `default_*` stand in for a missing or "auto" choice."""

    prices: Mapping[str, Mapping[str, float]]
    default_quality: str | None = None
    default_size: str | None = None


@dataclass(frozen=True, slots=True)
class ImageTokenPrice:
    """USD per 1M tokens for token-billed image models (gpt-image-1)."""

    text_input: float
    cached_text_input: float
    image_input: float
    cached_image_input: float
    output: float


def _pick(options: Mapping[str, Any], wanted: str | None, default: str | None) -> tuple[list[Any], bool]:
    """The options that `wanted` selects, and whether it was understood.

    Missing or "auto" means the default; with no default every option stays in play (the caller
    takes the most expensive). An explicit value the table lacks also keeps every option in play,
    but is reported as not understood.
    """
    explicit = wanted is not None and wanted.lower() != _AUTO
    choice = wanted.lower() if explicit and wanted is not None else default
    if choice is not None and choice in options:
        return [options[choice]], True
    return list(options.values()), not explicit


@dataclass(frozen=True, slots=True)
class PriceTable:
    """An immutable price table. Build with `load_default()` or `from_mapping()`."""

    models: Mapping[str, ModelPrice]
    aliases: Mapping[str, str]
    fine_tuned: Mapping[str, ModelPrice]
    default: ModelPrice
    images: Mapping[str, ImagePrices]
    image_default: float
    image_tokens: Mapping[str, ImageTokenPrice]
    transcription: Mapping[str, float]  # USD per minute
    transcription_default: float
    speech: Mapping[str, float]  # USD per 1M characters
    speech_default: float
    source: str = ""

    @classmethod
    def load_default(cls) -> PriceTable:
        """OpenAI's table (also Azure OpenAI's), shipped as package data, parsed once per process."""
        return _shipped_table("prices.json")

    @classmethod
    def load(cls, name: str) -> PriceTable:
        """A shipped table by provider: openai, anthropic, deepinfra; `none` prices every model
        at 0 (self-hosted and custom models, priced only by a setting's `prices`)."""
        return _shipped_table("prices.json" if name == "openai" else f"prices_{name}.json")

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> PriceTable:
        """Build and validate a table from the `prices.json` shape; raises ValueError on bad data."""
        return _parse_table(data)

    # --- chat, completions, embeddings ------------------------------------------------------------

    def _lookup(self, name: str) -> tuple[str | None, ModelPrice | None, bool]:
        """(table key, its price, fine-tuned?) for a normalised name; key None when unknown."""
        base = _fine_tuned_base(name)
        if base is None:
            key = _find(name, self.models, self.aliases)
            return key, (self.models[key] if key is not None else None), False
        key = _find(base, self.fine_tuned, self.aliases)
        if key is not None:
            return key, self.fine_tuned[key], True
        key = _find(base, self.models, self.aliases)
        return key, (self.models[key] if key is not None else None), True

    def resolve(self, model: str) -> str | None:
        """The table entry a model name is priced by, or None when it is unknown.

        Exact name first, then aliases, then the same with a `-YYYY-MM-DD` / `-MMDD` suffix
        stripped (so a dated name with its own entry, like `gpt-4o-2024-05-13`, keeps it). A
        fine-tuned `ft:<base>:...` resolves to its base family.
        """
        return self._lookup(_normalise(model))[0]

    def price(self, model: str, overrides: Mapping[str, ModelPrice] | None = None) -> tuple[ModelPrice, bool]:
        """The price for `model` and whether it was known (False: the table's default was used).

        A per-setting override wins over the table, even a zero one (a self-hosted model may be
        free). It is looked up by the exact request model, then by the resolved family (for
        fine-tuned models `ft:<family>`, e.g. `ft:gpt-4o-mini`, since they cost more than the base).
        """
        name = _normalise(model)
        if overrides:
            for exact in (model, name):
                hit = overrides.get(exact)
                if hit is not None:
                    return hit, True
        key, price, fine_tuned = self._lookup(name)
        if overrides and key is not None:
            hit = overrides.get(_FT_PREFIX + key if fine_tuned else key)
            if hit is not None:
                return hit, True
        if price is None:
            return self.default, False
        return price, True

    def cost(
        self, model: str, usage: Usage, overrides: Mapping[str, ModelPrice] | None = None
    ) -> tuple[int, bool]:
        """`price()` then `cost_micros()`: micro-dollars and whether the model was known."""
        price, known = self.price(model, overrides)
        return cost_micros(price, usage), known

    # --- images -----------------------------------------------------------------------------------

    def image_cost_micros(
        self, model: str, size: str | None = None, quality: str | None = None, n: int = 1
    ) -> tuple[int, bool]:
        """Per-image price times `n`, and whether model, size and quality were all in the table.

        Unknown model: the images `default`. Unknown size or quality of a known model: its most
        expensive option. For token-billed models prefer `image_token_cost_micros` with the
        response's usage; this is the estimate when there is none.
        """
        key = _find(_normalise(model), self.images, {})
        if key is None:
            return _round(_count(n) * _dec(self.image_default) * _MILLION), False
        spec = self.images[key]
        by_quality, known = _pick(spec.prices, quality, spec.default_quality)
        usd = 0.0
        for sizes in by_quality:
            options, size_known = _pick(sizes, size, spec.default_size)
            known = known and size_known
            usd = max(usd, *options)
        return _round(_count(n) * _dec(usd) * _MILLION), known

    def image_token_cost_micros(
        self,
        model: str,
        *,
        text_tokens: int = 0,
        image_tokens: int = 0,
        output_tokens: int = 0,
        cached_text_tokens: int = 0,
        cached_image_tokens: int = 0,
    ) -> tuple[int, bool]:
        """Token-billed image generation (gpt-image-1) from the response usage.

        `cached_*` are the parts of `text_tokens` / `image_tokens` served from cache. An unknown
        model is priced as the most expensive token-billed image model and flagged.
        """
        key = _find(_normalise(model), self.image_tokens, {})
        known = key is not None
        if key is not None:
            p = self.image_tokens[key]
        else:
            p = max(self.image_tokens.values(), key=lambda t: (t.output, t.image_input, t.text_input))
        text, image = _count(text_tokens), _count(image_tokens)
        cached_text, cached_image = (
            min(_count(cached_text_tokens), text),
            min(_count(cached_image_tokens), image),
        )
        total = (
            (text - cached_text) * _dec(p.text_input)
            + cached_text * _dec(p.cached_text_input)
            + (image - cached_image) * _dec(p.image_input)
            + cached_image * _dec(p.cached_image_input)
            + _count(output_tokens) * _dec(p.output)
        )
        return _round(total), known

    # --- audio ------------------------------------------------------------------------------------

    def audio_transcription_cost_micros(self, model: str, seconds: float) -> tuple[int, bool]:
        """Per-minute price, billed pro rata per second (duration rounded to the nearest second,
        as OpenAI bills Whisper), never truncated to whole minutes as the original gateway did."""
        key = _find(_normalise(model), self.transcription, {})
        per_minute = self.transcription[key] if key is not None else self.transcription_default
        whole = math.floor(seconds + 0.5) if math.isfinite(seconds) and seconds > 0 else 0
        return _round(whole * _dec(per_minute) * _MILLION / 60), key is not None

    def speech_cost_micros(self, model: str, characters: int) -> tuple[int, bool]:
        """Text-to-speech billed per input character (USD per 1M characters)."""
        key = _find(_normalise(model), self.speech, {})
        per_million = self.speech[key] if key is not None else self.speech_default
        return _round(_count(characters) * _dec(per_million)), key is not None


# --- parsing and validation of the table data --------------------------------------------------------


def _number(where: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
        raise ValueError(f"{where}: expected a non-negative number, got {value!r}")
    return float(value)


def _mapping(where: str, value: Any) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise ValueError(f"{where}: expected an object, got {type(value).__name__}")
    return {k: v for k, v in value.items() if not str(k).startswith("_")}  # "_..." keys are notes


def _model_price(where: str, value: Any) -> ModelPrice:
    entry = _mapping(where, value)
    unknown = set(entry) - _PRICE_FIELDS
    if unknown or "input" not in entry:
        raise ValueError(f"{where}: needs `input`, may have `output`, `cached_input`; got {sorted(entry)}")
    cached, write = entry.get("cached_input"), entry.get("cache_write")
    return ModelPrice(
        input=_number(f"{where}.input", entry["input"]),
        output=_number(f"{where}.output", entry.get("output", 0.0)),
        cached_input=None if cached is None else _number(f"{where}.cached_input", cached),
        cache_write=None if write is None else _number(f"{where}.cache_write", write),
    )


def _prices(section: str, data: Mapping[str, Any]) -> dict[str, ModelPrice]:
    return {_normalise(k): _model_price(f"{section}.{k}", v) for k, v in _mapping(section, data).items()}


def _per_unit(section: str, data: Mapping[str, Any]) -> tuple[dict[str, float], float]:
    """A name -> number section; its `default` entry, or else its most expensive entry."""
    entries = {_normalise(k): _number(f"{section}.{k}", v) for k, v in _mapping(section, data).items()}
    default = entries.pop("default", None)
    if default is None:
        default = max(entries.values(), default=0.0)
    return entries, default


def _image_prices(where: str, value: Any) -> ImagePrices:
    entry = _mapping(where, value)
    by_quality: dict[str, Mapping[str, float]] = {}
    for quality, sizes in _mapping(f"{where}.prices", entry.get("prices")).items():
        qwhere = f"{where}.prices.{quality}"
        size_map = {s.lower(): _number(f"{qwhere}.{s}", usd) for s, usd in _mapping(qwhere, sizes).items()}
        if not size_map:
            raise ValueError(f"{qwhere}: no sizes")
        by_quality[quality.lower()] = MappingProxyType(size_map)
    if not by_quality:
        raise ValueError(f"{where}.prices: no qualities")
    spec = ImagePrices(MappingProxyType(by_quality), entry.get("default_quality"), entry.get("default_size"))
    if spec.default_quality is not None and spec.default_quality not in by_quality:
        raise ValueError(f"{where}.default_quality {spec.default_quality!r} has no prices")
    if spec.default_size is not None and not any(spec.default_size in s for s in by_quality.values()):
        raise ValueError(f"{where}.default_size {spec.default_size!r} has no prices")
    return spec


def _parse_table(data: Mapping[str, Any]) -> PriceTable:
    models = _prices("models", data.get("models", {}))
    fine_tuned = _prices("fine_tuned", data.get("fine_tuned", {}))
    aliases = {
        _normalise(k): _normalise(str(v)) for k, v in _mapping("aliases", data.get("aliases", {})).items()
    }
    for alias, target in aliases.items():
        if target not in models:
            raise ValueError(f"aliases.{alias}: target {target!r} is not in models")
    if "default" in data:
        default = _model_price("default", data["default"])
    elif models:
        default = max(models.values(), key=lambda p: (p.output, p.input))
    else:
        raise ValueError("a price table needs `models` or a `default` price")
    images_data = dict(_mapping("images", data.get("images", {})))
    image_default = images_data.pop("default", None)
    images = {_normalise(k): _image_prices(f"images.{k}", v) for k, v in images_data.items()}
    if image_default is None:
        image_default = max(
            (max(s.values()) for i in images.values() for s in i.prices.values()), default=0.0
        )
    image_tokens = {}
    for name, value in _mapping("image_tokens", data.get("image_tokens", {})).items():
        entry = _mapping(f"image_tokens.{name}", value)
        if set(entry) != set(_IMAGE_TOKEN_FIELDS):
            raise ValueError(f"image_tokens.{name}: needs exactly {list(_IMAGE_TOKEN_FIELDS)}")
        fields = {f: _number(f"image_tokens.{name}.{f}", entry[f]) for f in _IMAGE_TOKEN_FIELDS}
        image_tokens[_normalise(name)] = ImageTokenPrice(**fields)
    if not image_tokens:
        image_tokens["default"] = ImageTokenPrice(0.0, 0.0, 0.0, 0.0, 0.0)
    transcription, transcription_default = _per_unit("transcription", data.get("transcription", {}))
    speech, speech_default = _per_unit("speech", data.get("speech", {}))
    return PriceTable(
        models=MappingProxyType(models),
        aliases=MappingProxyType(aliases),
        fine_tuned=MappingProxyType(fine_tuned),
        default=default,
        images=MappingProxyType(images),
        image_default=_number("images.default", image_default),
        image_tokens=MappingProxyType(image_tokens),
        transcription=MappingProxyType(transcription),
        transcription_default=transcription_default,
        speech=MappingProxyType(speech),
        speech_default=speech_default,
        source=str(data.get("_source", "")),
    )


@functools.cache
def _shipped_table(filename: str) -> PriceTable:
    text = resources.files("bricksllm.domain").joinpath("data", filename).read_text("utf-8")
    return PriceTable.from_mapping(json.loads(text))


def resolve(model: str) -> str | None:
    """`PriceTable.resolve` on the shipped OpenAI table."""
    return PriceTable.load_default().resolve(model)
