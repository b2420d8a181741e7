"""What a call may cost, estimated before it is forwarded, so that it can be reserved.

Input tokens: the request body counted with tiktoken (offline), JSON syntax included, so the
count is at or slightly above what the provider will bill; a body over `TOKENIZE_LIMIT` bytes is
bounded by its size instead (a token is at least one byte), which costs nothing on the hot path,
and so is any body while its model's encoding is still loading (in a thread, never on the loop).
Output tokens: the request's own cap (`max_tokens`, `max_completion_tokens`, `max_output_tokens`)
or else the model's default allowance (settings `LIMITS_DEFAULT_OUTPUT_TOKENS`,
`LIMITS_OUTPUT_TOKENS_BY_MODEL`). Both are priced by the endpoint's own cost rule, as if the
answer had reported them, so every priced kind (chat, embeddings, images...) is estimated alike.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field

from bricksllm.domain.models import Usage, token_count
from bricksllm.domain.tokens import O200K_BASE, encoding_name_for_model, get_encoding
from bricksllm.providers.base import Kind, Metered, Pricing, RequestView

TOKENIZE_LIMIT = 4 * 1024  # bytes: larger bodies are bounded by their size, not tokenized
OUTPUT_CAPS = ("max_tokens", "max_completion_tokens", "max_output_tokens", "max_tokens_to_sample")


@dataclass(frozen=True, slots=True)
class Estimator:
    default_output_tokens: int = 1024
    output_tokens_by_model: Mapping[str, int] = field(default_factory=dict)
    # encoding name -> loaded; False while a thread loads it (building one takes a second or
    # more, which the event loop must not wait for: calls are bounded by their size meanwhile)
    _encodings: dict[str, bool] = field(default_factory=lambda: {O200K_BASE: False})

    def warm_up(self) -> None:
        """Load the encoding of current models (call it in a thread at start-up)."""
        get_encoding(O200K_BASE)
        self._encodings[O200K_BASE] = True

    def input_tokens(self, view: RequestView) -> int:
        """The request body's tokens, or its size when it is large or its encoding not loaded."""
        body = view.body
        if len(body) > TOKENIZE_LIMIT or view.json is None:
            return len(body)
        name = encoding_name_for_model(view.model)
        loaded = self._encodings.get(name)
        if not loaded:
            if loaded is None:
                self._encodings[name] = False
                threading.Thread(
                    target=self._load, args=(name,), name=f"tiktoken {name}", daemon=True
                ).start()
            return len(body)
        # encode_ordinary: text that looks like a special token is user data
        return len(get_encoding(name).encode_ordinary(body.decode("utf-8", "replace")))

    def _load(self, name: str) -> None:
        get_encoding(name)
        self._encodings[name] = True

    def output_tokens(self, view: RequestView) -> int:
        body = view.json or {}
        for name in OUTPUT_CAPS:
            cap = body.get(name)
            if type(cap) is int and cap >= 0:
                return token_count(cap)
        return self.output_tokens_by_model.get(view.model, self.default_output_tokens)

    def estimate(self, kind: Kind, pricing: Pricing, view: RequestView) -> tuple[int, int]:
        """(micro-dollars, tokens) a call may use; (0, 0) for calls that are never priced."""
        if not kind.billed:
            return 0, 0
        input_tokens = self.input_tokens(view)
        output_tokens = self.output_tokens(view)
        if kind.estimates:  # billed by tokens: priced here, without the Decimal arithmetic of a bill
            price, _ = pricing.table.price(view.model, pricing.overrides)
            return math.ceil(
                price.input * input_tokens + price.output * output_tokens
            ), input_tokens + output_tokens
        usage = Usage(prompt_tokens=input_tokens, completion_tokens=output_tokens)
        micros, _ = kind.cost(pricing, view, Metered(usage, model=view.model))
        return micros, input_tokens + output_tokens
