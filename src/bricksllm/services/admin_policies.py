"""The admin use cases of PII policies: create, change, find, delete.

A policy's rules are validated by the domain (`domain.pii.parse_policy`) against what the
running gateway can detect (`Capabilities`: the built-in engine plus any optional engine), and
stored in their normalised form. A key refers to a policy by id; a policy that keys still use
cannot be deleted (the keys would silently lose their screening).
"""

from __future__ import annotations

import dataclasses
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

from bricksllm.domain.models import PolicyRecord
from bricksllm.domain.pii import Capabilities, PolicyProblems, parse_policy, policy_document
from bricksllm.errors import Conflict, NotFound
from bricksllm.ports import ConfigStore
from bricksllm.services.admin_rules import raise_if
from bricksllm.services.config_admin import ConfigAdmin

RULE_FIELDS = ("config", "regexConfig", "customConfig", "failOpen", "scanResponses")


class PolicyAdmin(ConfigAdmin):
    def __init__(
        self,
        config: ConfigStore,
        capabilities: Capabilities,
        on_change: Callable[[], Awaitable[None]],
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(config, on_change, clock)
        self._caps = capabilities

    def _document(self, rules: Mapping[str, Any]) -> dict[str, Any]:
        try:
            return policy_document(parse_policy(rules, self._caps))
        except PolicyProblems as exc:
            raise_if(list(exc.problems))
            raise  # not reached: problems are never empty

    async def create(self, name: str, tags: Sequence[str], rules: Mapping[str, Any]) -> PolicyRecord:
        now = int(self._clock())
        policy = PolicyRecord(
            id=str(uuid.uuid4()), name=name, created_at=now, updated_at=now, tags=tuple(tags),
            document=self._document(rules),
        )  # fmt: skip
        await self._config.create_policy(policy)
        await self._on_change()
        return policy

    async def update(
        self, policy_id: str, *, name: str | None, tags: Sequence[str] | None, rules: Mapping[str, Any]
    ) -> PolicyRecord:
        """`rules` holds the rule sections present in the request; each replaces its section."""
        current = await self.get(policy_id)
        document = self._document({**current.document, **rules}) if rules else current.document
        updated = dataclasses.replace(
            current,
            name=current.name if name is None else name,
            tags=current.tags if tags is None else tuple(tags),
            document=document,
            updated_at=max(int(self._clock()), current.updated_at),
        )
        await self._config.update_policy(updated)
        await self._on_change()
        return updated

    async def get(self, policy_id: str) -> PolicyRecord:
        policy = await self._config.get_policy(policy_id)
        if policy is None:
            raise NotFound(f"policy {policy_id} not found")
        return policy

    async def list(self, *, tags: Sequence[str] = (), ids: Sequence[str] = ()) -> list[PolicyRecord]:
        """All policies, narrowed by every filter given: all `tags`, any of `ids`."""
        policies = await self._config.list_policies()
        if tags:
            policies = [p for p in policies if set(tags).issubset(p.tags)]
        if ids:
            policies = [p for p in policies if p.id in set(ids)]
        return policies

    async def delete(self, policy_id: str) -> None:
        users = [k.key_id for k in await self._config.list_keys() if k.policy_id == policy_id]
        if users:
            raise Conflict(f"policy {policy_id} is used by keys {', '.join(users)}: detach it first")
        if not await self._config.delete_policy(policy_id):
            raise NotFound(f"policy {policy_id} not found")
        await self._on_change()
