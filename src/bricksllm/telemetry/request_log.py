"""The request log: one line per proxied request, admitted or refused (an `Observer` of
`services.proxy_record`), on the `bricksllm.requests` logger.

Fields: correlation_id, key_id, provider, model, method, route (the endpoint pattern), path,
status, reason, latency_ms, upstream_ms, ttfb_ms (streams), overhead_ms, prompt_tokens,
completion_tokens, cost_micros. Never a key secret, a credential or a header; a prompt or a
completion only with LOG_BODIES=true, and then only the bodies a key captures
(shouldLogRequest / shouldLogResponse) as `request_body` / `response_body`.

Refusals of callers without a valid key beyond the rate at which their events are recorded
(`proxy_record.ANONYMOUS_EVENTS_PER_SECOND`) are not logged one by one either: a flood of them
must not fill the operator's disk. The next line logged is preceded by one that counts them.
"""

from __future__ import annotations

import logging
from typing import Any

from bricksllm.services.proxy_record import Outcome

log = logging.getLogger("bricksllm.requests")


def _ms(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


class RequestLogger:
    def __init__(self, *, bodies: bool = False, logger: logging.Logger = log) -> None:
        self._bodies = bodies
        self._log = logger
        self._unlogged = 0  # anonymous refusals skipped since the last line

    def observe(self, outcome: Outcome) -> None:
        if not self._log.isEnabledFor(logging.INFO):
            return
        if not outcome.stored:
            self._unlogged += 1
            return
        if self._unlogged:
            self._log.warning(
                "%d refused requests without a valid key were not logged (a flood)",
                self._unlogged,
                extra={"unlogged": self._unlogged},
            )
            self._unlogged = 0
        e = outcome.event
        fields: dict[str, Any] = {
            "correlation_id": e.correlation_id,
            "key_id": e.key_id,
            "provider": e.provider,
            "model": e.model,
            "method": e.method,
            "route": outcome.route,
            "path": e.path,
            "status": e.status,
            "reason": outcome.reason,
            "latency_ms": e.latency_in_ms,
            "upstream_ms": _ms(outcome.upstream_ms),
            "ttfb_ms": _ms(outcome.ttfb_ms),
            "overhead_ms": _ms(outcome.overhead_ms),
            "prompt_tokens": e.prompt_token_count,
            "completion_tokens": e.completion_token_count,
            "cost_micros": e.cost_micros,
        }
        if self._bodies:
            fields["request_body"], fields["response_body"] = e.request_body, e.response_body
        level = logging.WARNING if e.status >= 500 else logging.INFO
        self._log.log(level, "%s %s %d", e.method, outcome.route or e.path, e.status, extra=fields)
