"""Screening a request (or a response) against a key's compiled policy, with the optional engine.

The built-in detectors and regexes run inline (`CompiledPolicy`, pure). When the policy names
entities only an engine finds, the engine is awaited under a time bound; an exception or a
timeout never escapes: it becomes the outcome's `engine_error`, and the policy decides - fail
closed (verdict `unavailable`: answer 503, do not forward) or fail open (the built-in rules still
apply; the request goes on and the failure is counted in `pii.engine_failures`).

A key without a policy never reaches this module: the caller checks `key.policy_id` first.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any

from bricksllm.domain.pii import CompiledPolicy, Outcome, Prepared, RequestKind, ResponseKind, Span
from bricksllm.ports import Metrics, PIIEngine

log = logging.getLogger("bricksllm.pii")


class PIIScreener:
    """The gateway's one screener: the configured engine (or None), its time bound, the metrics."""

    def __init__(
        self, engine: PIIEngine | None = None, metrics: Metrics | None = None, engine_timeout: float = 2.0
    ) -> None:
        self.engine = engine
        self.metrics = metrics
        self.engine_timeout = engine_timeout

    async def request(
        self, policy: CompiledPolicy, kind: RequestKind, body: Any, custom_paths: Sequence[str] = ()
    ) -> Outcome:
        """The outcome of a request body (parsed JSON) under `policy`."""
        if policy.noop:
            return policy.screen_request(kind, body, custom_paths)
        return await self._finish(policy, policy.prepare_request(kind, body, custom_paths))

    async def response(
        self, policy: CompiledPolicy, kind: ResponseKind, body: Any, custom_paths: Sequence[str] = ()
    ) -> Outcome:
        """The outcome of a non-streamed response body, when the policy screens responses."""
        if policy.noop or not policy.policy.scan_responses:
            return policy.screen_response(kind, body, custom_paths)
        return await self._finish(policy, policy.prepare_response(kind, body, custom_paths))

    async def _finish(self, policy: CompiledPolicy, prepared: Prepared) -> Outcome:
        if not policy.needs_engine or not prepared.slots:
            return policy.finish(prepared, [[] for _ in prepared.slots] if policy.needs_engine else None)
        spans, error = await run_engine(
            self.engine, prepared.texts, policy.engine_entities, self.engine_timeout
        )
        if error is not None and self.metrics is not None:
            tags = {"engine": self.engine.name if self.engine else "none", "mode": _mode(policy)}
            self.metrics.incr("pii.engine_failures", tags=tags)
        return policy.finish(prepared, spans, error)


def _mode(policy: CompiledPolicy) -> str:
    return "open" if policy.policy.fail_open else "closed"


async def run_engine(
    engine: PIIEngine | None, texts: Sequence[str], entities: frozenset[str], bound: float
) -> tuple[list[list[Span]] | None, str | None]:
    """(spans per text, None) or (None, what went wrong). The message names the engine and the
    kind of failure only: an exception's text may quote the request, so it is not passed on."""
    if engine is None:
        return None, "no PII engine is configured"
    try:
        spans = await asyncio.wait_for(engine.detect(texts, entities), bound)
    except TimeoutError:
        log.warning("PII engine %s did not answer within %.1f s", engine.name, bound)
        return None, f"{engine.name} timed out after {bound:g} s"
    except Exception as exc:  # any adapter failure becomes the policy's fail-open/closed outcome
        log.warning("PII engine %s failed: %s", engine.name, type(exc).__name__)
        return None, f"{engine.name} failed ({type(exc).__name__})"
    if len(spans) != len(texts):
        return None, f"{engine.name} answered {len(spans)} results for {len(texts)} texts"
    return spans, None
