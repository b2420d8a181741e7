"""OpenAI's `x-ratelimit-*` headers, computed from an admission.

Answers carry, for requests and for tokens, the key's tightest limit (the least left): OpenAI's
`x-ratelimit-limit-requests`, `-remaining-requests`, `-reset-requests`, `-limit-tokens`,
`-remaining-tokens` and `-reset-tokens`. A 429 carries the headers of the limit that refused
(for a spend limit, BricksLLM's `x-ratelimit-limit-cost-usd`, `-remaining-cost-usd`,
`-reset-cost` likewise) besides `Retry-After`. Resets are durations as OpenAI writes them
("1s", "6m0s", "1h2m3s"); an all-time limit has none.
"""

from __future__ import annotations

from collections.abc import Sequence

from bricksllm.domain.limits import Quota

_SUFFIX = {"requests": "requests", "tokens": "tokens", "cost": "cost"}


def reset(seconds: int) -> str:
    h, rest = divmod(max(seconds, 0), 3600)
    m, s = divmod(rest, 60)
    if h:
        return f"{h}h{m}m{s}s"
    return f"{m}m{s}s" if m else f"{s}s"


def quota_headers(quota: Quota, remaining: int, now: float) -> list[tuple[str, str]]:
    name = _SUFFIX[quota.metric]
    remaining = max(remaining, 0)
    if quota.metric == "cost":
        out = [("x-ratelimit-limit-cost-usd", f"{quota.limit / 1e6:g}"),
               ("x-ratelimit-remaining-cost-usd", f"{remaining / 1e6:g}")]  # fmt: skip
    else:
        out = [
            (f"x-ratelimit-limit-{name}", str(quota.limit)),
            (f"x-ratelimit-remaining-{name}", str(remaining)),
        ]
    if quota.window is not None:
        out.append((f"x-ratelimit-reset-{name}", reset(int(quota.window.end - now) or 1)))
    return out


def tightest_headers(
    quotas: Sequence[Quota],
    remaining: Sequence[int],
    now: float,
    metrics: Sequence[str] = ("requests", "tokens"),
) -> list[tuple[str, str]]:
    """For each metric, the headers of the quota with the least left."""
    out: list[tuple[str, str]] = []
    for metric in metrics:
        candidates = [
            (left, q) for q, left in zip(quotas, remaining, strict=True) if q.metric == metric and q.limit > 0
        ]
        if candidates:
            left, quota = min(candidates, key=lambda c: c[0])
            out += quota_headers(quota, left, now)
    return out
