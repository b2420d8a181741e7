"""Microbenchmark of a call's spend estimate (the reservation made at admission), without HTTP.

    .venv/bin/python bench/spend_estimate.py [--n 2000]

Lanes, each a gpt-4o chat body with `max_tokens`, timed from the parsed request to the estimate
(`services.spend_estimate.Estimator.estimate`, priced by the chat kind's cost rule), both ways:
the bound every call gets (the body's size) and the exact count (tiktoken, bodies up to 4 KiB)
that a call gets when the bound was refused by a spend or token limit:

    small     a 200-byte question
    4 KB      a 4 KB conversation, about the largest body that is still tokenized
    16 KB     a larger body, bounded by its size (no tokenizing)
    64 KB     the same, larger

Reported: p50 and p99 in microseconds, and what each reserves. The admission's other costs (one
Lua script in Redis, or a dict update in memory) are measured by bench/run.py's limited-key lanes.
"""

from __future__ import annotations

import argparse
import statistics
import time

import orjson

from bricksllm.domain.models import ProviderSetting
from bricksllm.domain.tokens import encoding_name_for_model, get_encoding
from bricksllm.providers.base import RequestView
from bricksllm.providers.registry import ProviderRegistry
from bricksllm.services.proxy import Target
from bricksllm.services.spend_estimate import Estimator

WORDS = "The gateway reserves what a call may cost before it forwards it, and settles after. "


def body(size: int) -> bytes:
    text = (WORDS * (size // len(WORDS) + 1))[:size]
    return orjson.dumps(
        {"model": "gpt-4o", "max_tokens": 500, "messages": [{"role": "user", "content": text}]}
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=2000)
    args = parser.parse_args()
    registry = ProviderRegistry()
    provider, match = registry.resolve("POST", "/api/providers/openai/v1/chat/completions", {})  # type: ignore[misc]
    target = Target(provider, match, ProviderSetting("s", "openai", 0, 0))
    estimator = Estimator()
    get_encoding(encoding_name_for_model("gpt-4o"))  # loaded, as after the first refused bound
    for name, size in (("small", 200), ("4 KB", 4000), ("16 KB", 16_000), ("64 KB", 65_536)):
        raw = body(size)
        view = RequestView(raw, orjson.loads(raw), "gpt-4o")
        for exact in (False, True):
            times = []
            for _ in range(args.n):
                start = time.perf_counter()
                estimator.estimate(target.kind, target.pricing, view, exact=exact)
                times.append((time.perf_counter() - start) * 1e6)
            times.sort()
            cost, tokens = estimator.estimate(target.kind, target.pricing, view, exact=exact)
            p99 = times[int(len(times) * 0.99)]
            print(f"{name:>6} {'exact' if exact else 'bound'}: p50 {statistics.median(times):7.1f} us"
                  f"  p99 {p99:7.1f} us  (reserves {tokens} tokens, ${cost / 1e6:.6f})")  # fmt: skip


if __name__ == "__main__":
    main()
