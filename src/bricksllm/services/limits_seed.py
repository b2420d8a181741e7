"""Start-up rebuild of the live counters from the recorded events.

After a restart of the gateway on the embedded default (in-process counters), or of a Redis
without persistence, every counter a limit reads is set from the events of its window (`seed`
sets only counters that do not exist, so a live Redis is never overwritten): each key's all-time
spend, and the current window of each of its request, spend and token limits, its per-model
limits and the budgets of its tags.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from bricksllm.domain.limits import Quota, plan
from bricksllm.domain.models import Key, Limit
from bricksllm.ports import Counters, EventQuery, EventStore


def _query(quota: Quota, key: Key) -> EventQuery:
    since = quota.window.start if quota.window is not None else 0
    if quota.owner.startswith("tag:"):
        return EventQuery(tags=(quota.owner[4:],), start=since)
    if ":model:" in quota.owner:
        return EventQuery(key_ids=(key.key_id,), models=(quota.owner.split(":model:", 1)[1],), start=since)
    return EventQuery(key_ids=(key.key_id,), start=since)


async def seed_counters(
    counters: Counters,
    keys: Sequence[Key],
    budgets: Mapping[str, Sequence[Limit]],
    events: EventStore,
    now: float,
) -> None:
    seen: set[str] = set()
    for key in keys:
        models = list(key.model_limits)
        for model in models or [""]:
            for quota in plan(key, now, model, budgets).quotas:
                if quota.counter_id in seen or (quota.metric == "requests" and quota.window is None):
                    continue
                seen.add(quota.counter_id)
                requests, cost, tokens = await events.usage(_query(quota, key))
                value = {"requests": requests, "cost": cost, "tokens": tokens}[quota.metric]
                if value:
                    await counters.seed(quota.counter_id, value, quota.expires_at)
