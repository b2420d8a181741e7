"""PII screening in the proxy pipeline: the key's policy applied to what the client sends (and,
when the policy asks, to a non-streamed answer), before anything is forwarded.

A key without a policy costs one attribute check. Otherwise the request's texts are found by
route family (chat messages, Responses input, legacy prompts, embeddings input, Anthropic system
and messages, assistants/threads/messages/runs, a custom provider's prompt location), screened,
and the verdict decides: `blocked` -> 403 in the provider's shape naming the entity types (never
the values), never forwarded; `unavailable` (an engine the policy needs failed, fail-closed) ->
503; `redacted` -> the body with each span replaced by a typed placeholder and every other field
untouched; `warned` -> forwarded as is and flagged. The event records the verdict and the types.

Redaction re-serialises the body, so it is parsed with the standard library here: integers beyond
64 bits keep their exact value (orjson would turn them into floats).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from bricksllm.domain.models import Key
from bricksllm.domain.pii import CompiledPolicy, Outcome, RequestKind, ResponseKind, Verdict
from bricksllm.errors import PolicyBlocked, Unavailable
from bricksllm.providers.base import RequestView
from bricksllm.providers.custom import CustomKind
from bricksllm.services.pii import PIIScreener

if TYPE_CHECKING:
    from bricksllm.services.proxy import ConfigSource, Target

# Where a route family keeps the client's text, by route pattern relative to its provider (the
# same shapes are served by OpenAI, Azure, vLLM and DeepInfra).
REQUEST_KINDS: Mapping[str, RequestKind] = {
    "/v1/chat/completions": RequestKind.CHAT,
    "/openai/deployments/:deployment_id/chat/completions": RequestKind.CHAT,
    "/v1/completions": RequestKind.COMPLETIONS,
    "/openai/deployments/:deployment_id/completions": RequestKind.COMPLETIONS,
    "/v1/complete": RequestKind.COMPLETIONS,  # Anthropic's legacy `prompt`
    "/v1/embeddings": RequestKind.EMBEDDINGS,
    "/openai/deployments/:deployment_id/embeddings": RequestKind.EMBEDDINGS,
    "/v1/responses": RequestKind.RESPONSES,
    "/v1/messages": RequestKind.ANTHROPIC_MESSAGES,
    "/v1/messages/count_tokens": RequestKind.ANTHROPIC_MESSAGES,
    "/v1/assistants": RequestKind.ASSISTANT,
    "/v1/assistants/:assistant_id": RequestKind.ASSISTANT,
    "/v1/threads": RequestKind.THREAD,
    "/v1/threads/runs": RequestKind.THREAD_AND_RUN,
    "/v1/threads/:thread_id/messages": RequestKind.MESSAGE,
    "/v1/threads/:thread_id/messages/:message_id": RequestKind.MESSAGE,
    "/v1/threads/:thread_id/runs": RequestKind.RUN,
}
RESPONSE_KINDS: Mapping[RequestKind, ResponseKind] = {
    RequestKind.CHAT: ResponseKind.CHAT,
    RequestKind.COMPLETIONS: ResponseKind.COMPLETIONS,
    RequestKind.RESPONSES: ResponseKind.RESPONSES,
    RequestKind.ANTHROPIC_MESSAGES: ResponseKind.ANTHROPIC_MESSAGES,
    RequestKind.CUSTOM: ResponseKind.CUSTOM,
}


def _kind(target: Target) -> tuple[RequestKind | None, tuple[str, ...]]:
    """The route family's kind and, for a custom provider, where its prompt is."""
    kind = target.kind
    if isinstance(kind, CustomKind):
        return RequestKind.CUSTOM, (kind.config.request_prompt_location,)
    relative = target.match.endpoint.pattern.removeprefix(target.provider.prefix)
    return REQUEST_KINDS.get(relative), ()


def _dumps(body: Any) -> bytes:
    return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()


class PIIGuard:
    """A `RequestTransform` (and the answer screen of the same policies)."""

    def __init__(self, config: ConfigSource, screener: PIIScreener) -> None:
        self._config = config
        self._screener = screener

    def _policy(self, key: Key) -> CompiledPolicy:
        policy = self._config.current.policies.get(key.policy_id)
        if policy is None:  # deleted under a key in flight: never forward unscreened
            raise Unavailable("[BricksLLM] the key's PII policy cannot be applied right now")
        return policy

    async def __call__(self, key: Key, target: Target, view: RequestView) -> RequestView:
        if not key.policy_id:
            return view
        kind, paths = _kind(target)
        if kind is None or view.json is None:
            return view  # a route that carries no client text (GET, files, audio...)
        outcome = await self._screener.request(self._policy(key), kind, json.loads(view.body), paths)
        return self._apply(outcome, view)

    async def answer(
        self, key: Key, target: Target, view: RequestView, body: bytes
    ) -> tuple[bytes, RequestView]:
        """A non-streamed JSON answer screened when the key's policy asks for it: the bytes to send
        and the view with the combined verdict. A blocked answer raises PolicyBlocked."""
        if not key.policy_id:
            return body, view
        policy = self._policy(key)
        kind, paths = _kind(target)
        response_kind = RESPONSE_KINDS.get(kind) if kind is not None else None
        if not policy.policy.scan_responses or response_kind is None:
            return body, view
        if isinstance(target.kind, CustomKind):
            paths = (target.kind.config.response_completion_location,)
        try:
            parsed = json.loads(body)
        except ValueError:
            return body, view
        outcome = await self._screener.response(policy, response_kind, parsed, paths)
        screened = self._apply(outcome, view)
        return (_dumps(outcome.body) if outcome.changed else body), screened

    @staticmethod
    def _apply(outcome: Outcome, view: RequestView) -> RequestView:
        if outcome.verdict is Verdict.BLOCKED:
            raise PolicyBlocked(outcome.entities)
        if outcome.verdict is Verdict.UNAVAILABLE:
            raise Unavailable("[BricksLLM] PII screening is unavailable right now (the policy fails closed)")
        action = _strongest(view.action, outcome.verdict.value)
        findings = tuple(sorted({*view.findings, *outcome.entities}))
        if outcome.changed:
            return replace(
                view, body=_dumps(outcome.body), json=outcome.body, action=action, findings=findings
            )
        return replace(view, action=action, findings=findings)


_RANK = {"": 0, "allowed": 1, "redacted": 2, "warned": 3, "blocked": 4}


def _strongest(a: str, b: str) -> str:
    return a if _RANK.get(a, 0) >= _RANK.get(b, 0) else b
