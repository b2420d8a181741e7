"""What a call may cost, estimated before it is forwarded, so that it can be reserved.

Input tokens, first bounded by the request body's size: a token is at least one byte, so the
body's length is at or above what the provider will bill, and costs nothing to compute. Only when
that bound is refused by a cost or token limit (`services.limits`) is the body counted exactly
with tiktoken (offline, JSON syntax included, so still at or slightly above the bill) and the
call judged again; bodies over `TOKENIZE_LIMIT` bytes keep their size. The encoding is loaded
then, in a thread, the first time it is needed: a process whose calls never come near a limit
never spends the ~50 MB and half a second an encoding costs.
Output tokens: the request's own cap (`max_tokens`, `max_completion_tokens`, `max_output_tokens`)
or else the model's default allowance (settings `LIMITS_DEFAULT_OUTPUT_TOKENS`,
`LIMITS_OUTPUT_TOKENS_BY_MODEL`). Both are priced by the endpoint's own cost rule, as if the
answer had reported them, so every priced kind (chat, embeddings, images...) is estimated alike.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Mapping
from dataclasses import dataclass, field

from bricksllm.domain.models import Usage, token_count
from bricksllm.domain.tokens import encoding_name_for_model, get_encoding, is_loaded
from bricksllm.providers.base import Kind, Metered, Pricing, RequestView

TOKENIZE_LIMIT = 4 * 1024  # bytes: larger bodies are bounded by their size, never tokenized
OUTPUT_CAPS = ("max_tokens", "max_completion_tokens", "max_output_tokens", "max_tokens_to_sample")


@dataclass(frozen=True, slots=True)
class Estimator:
    default_output_tokens: int = 1024
    output_tokens_by_model: Mapping[str, int] = field(default_factory=dict)

    @staticmethod
    def refinable(view: RequestView) -> bool:
        """Whether counting the body's tokens could lower its estimate (a small JSON body)."""
        return view.json is not None and 0 < len(view.body) <= TOKENIZE_LIMIT

    @staticmethod
    async def load(view: RequestView) -> None:
        """Load the encoding of the call's model, in a thread (once per process, however many
        calls ask at once; the loop never waits for the half second it takes)."""
        name = encoding_name_for_model(view.model)
        if not is_loaded(name):
            await asyncio.to_thread(get_encoding, name)

    def input_tokens(self, view: RequestView, *, exact: bool = False) -> int:
        """The body's size, or with `exact` its tokens (`load` first) when it is `refinable`."""
        body = view.body
        if not exact or not self.refinable(view):
            return len(body)
        encoding = get_encoding(encoding_name_for_model(view.model))
        # encode_ordinary: text that looks like a special token is user data
        return len(encoding.encode_ordinary(body.decode("utf-8", "replace")))

    def output_tokens(self, view: RequestView) -> int:
        body = view.json or {}
        for name in OUTPUT_CAPS:
            cap = body.get(name)
            if type(cap) is int and cap >= 0:
                return token_count(cap)
        return self.output_tokens_by_model.get(view.model, self.default_output_tokens)

    def estimate(
        self, kind: Kind, pricing: Pricing, view: RequestView, *, exact: bool = False
    ) -> tuple[int, int]:
        """(micro-dollars, tokens) a call may use; (0, 0) for calls that are never priced."""
        if not kind.billed:
            return 0, 0
        input_tokens = self.input_tokens(view, exact=exact)
        output_tokens = self.output_tokens(view)
        if kind.estimates:  # billed by tokens: priced here, without the Decimal arithmetic of a bill
            price, _ = pricing.table.price(view.model, pricing.overrides)
            return math.ceil(
                price.input * input_tokens + price.output * output_tokens
            ), input_tokens + output_tokens
        usage = Usage(prompt_tokens=input_tokens, completion_tokens=output_tokens)
        micros, _ = kind.cost(pricing, view, Metered(usage, model=view.model))
        return micros, input_tokens + output_tokens
