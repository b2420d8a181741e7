"""Tag budgets: limits shared by every key that carries a tag (a team's monthly spend, say).

A budget is a list of limits like a key's (requests, spend, tokens; windowed or in total), kept
per tag. Every call of a key with that tag counts against it and reserves its estimate on it,
exactly like the key's own spend (`domain.limits.plan` adds a tag's quotas after the key's).
"""

from __future__ import annotations

from bricksllm.domain.budgets import budget_problems
from bricksllm.domain.models import Limit
from bricksllm.errors import Invalid, NotFound
from bricksllm.services.admin_rules import raise_if
from bricksllm.services.config_admin import ConfigAdmin


class BudgetAdmin(ConfigAdmin):
    async def put(self, tag: str, limits: tuple[Limit, ...]) -> tuple[Limit, ...]:
        if not tag.strip():
            raise Invalid("tag: must not be empty or blank", fields=["tag"])
        if not limits:
            raise Invalid(
                "a budget needs at least one of rateLimits, costLimits, tokenLimits", fields=["costLimits"]
            )
        raise_if(budget_problems(limits))
        await self._config.put_budget(tag, limits, int(self._clock()))
        await self._on_change()
        return limits

    async def get(self, tag: str) -> tuple[Limit, ...]:
        budget = (await self._config.list_budgets()).get(tag)
        if budget is None:
            raise NotFound(f"tag {tag} has no budget")
        return budget

    async def list(self) -> dict[str, tuple[Limit, ...]]:
        return await self._config.list_budgets()

    async def delete(self, tag: str) -> None:
        if not await self._config.delete_budget(tag):
            raise NotFound(f"tag {tag} has no budget")
        await self._on_change()
