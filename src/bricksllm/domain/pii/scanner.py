"""A policy compiled once, applied to every request of the keys that carry it.

`CompiledPolicy(policy, caps)` decides up front which built-in detectors run (only those of
entities with an action other than `allow`), compiles the regex rules with RE2, and sets aside
the entities an optional engine must find. Per request, `screen_request(kind, body)` finds the
client's texts, scans them, and returns an `Outcome`: the verdict (the strongest action hit:
block > warn > redact > allow), the entity types found (names and `regex[i]`, never values) and the
rebuilt body with every redacted span replaced by a typed placeholder, or None when nothing
changed. Every redaction is applied, whichever rules produced it, and even when another rule
warns; overlapping spans are merged and named after the longest.

When entities need an engine (see `needs_engine`), the caller runs it on `prepare(...).texts`
and hands its spans - or the error - to `finish`. An engine error, or an entity the running
engines cannot find (a policy saved while another engine was configured), never raises: with
`fail_open` the other rules still apply and `engine_error` says what was skipped; otherwise the
verdict is `unavailable` (the caller answers 503), unless a block was found anyway.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, NamedTuple

import re2

from bricksllm.domain.pii.detectors import DETECTORS, Detector
from bricksllm.domain.pii.entities import ALL, BUILTIN_ENTITIES, canonical, placeholder
from bricksllm.domain.pii.locations import (
    Path,
    RequestKind,
    ResponseKind,
    Slot,
    rebuild,
    request_texts,
    response_texts,
)
from bricksllm.domain.pii.policy import BUILTIN_ONLY, Action, Capabilities, Policy, compile_regex


class Span(NamedTuple):
    """Where an engine found an entity in one text (offsets in characters, end exclusive)."""

    start: int
    end: int
    entity: str


class Hit(NamedTuple):
    start: int
    end: int
    label: str  # entity name, or regex[i]
    action: Action
    rank: int  # priority of the finder (lower wins a tie on the same span)


class Verdict(StrEnum):
    ALLOWED = "allowed"
    REDACTED = "redacted"
    WARNED = "warned"
    BLOCKED = "blocked"
    UNAVAILABLE = "unavailable"  # an engine the policy needs failed and the policy fails closed


_VERDICT = {Action.ALLOW: Verdict.ALLOWED, Action.REDACT: Verdict.REDACTED, Action.WARN: Verdict.WARNED,
            Action.BLOCK: Verdict.BLOCKED}  # fmt: skip


@dataclass(frozen=True, slots=True)
class Outcome:
    verdict: Verdict
    entities: tuple[str, ...] = ()  # sorted labels of the hits (never the values)
    body: Any = None  # the rebuilt body when something was redacted and it may be forwarded
    engine_error: str | None = None  # what failed or was missing (no text of the request in it)

    @property
    def changed(self) -> bool:
        return self.body is not None


ALLOWED = Outcome(Verdict.ALLOWED)


@dataclass(frozen=True, slots=True)
class Prepared:
    slots: list[Slot]
    body: Any

    @property
    def texts(self) -> list[str]:
        return [slot.text for slot in self.slots]


class CompiledPolicy:
    """Build once per policy change; `screen_request` is then safe to call from any request."""

    __slots__ = (
        "_actions",
        "_detectors",
        "_prefilter",
        "_regexes",
        "engine_actions",
        "missing",
        "noop",
        "policy",
    )

    def __init__(self, policy: Policy, caps: Capabilities = BUILTIN_ONLY) -> None:
        self.policy = policy
        actions: dict[str, Action] = {}
        default = policy.entities.get(ALL)
        if default is not None:
            actions.update(dict.fromkeys(caps.detectable, default))
        for name, action in policy.entities.items():
            if name != ALL:
                actions[canonical(name)] = action
        actions = {e: a for e, a in actions.items() if a is not Action.ALLOW}
        self._actions = actions
        routed = caps.engine_entities if caps.prefer_engine else caps.engine_entities - BUILTIN_ENTITIES
        self.engine_actions: dict[str, Action] = {e: a for e, a in actions.items() if e in routed}
        missing = sorted(e for e in actions if e not in caps.detectable)
        if any(rule.action is not Action.ALLOW for rule in policy.custom) and not caps.custom_rules:
            missing.append("custom rules")
        self.missing: tuple[str, ...] = tuple(missing)
        self._detectors: tuple[tuple[Detector, Action, int], ...] = tuple(
            (d, actions[d.entity], rank)
            for rank, d in enumerate(DETECTORS)
            if d.entity in actions and d.entity not in self.engine_actions
        )
        base = len(DETECTORS)
        self._regexes: tuple[tuple[Any, str, Action, int], ...] = tuple(
            (compile_regex(rule.definition), f"regex[{i}]", rule.action, base + i)
            for i, rule in enumerate(policy.regexes)
            if rule.action is not Action.ALLOW
        )
        self.noop = not (self._detectors or self._regexes or self.engine_actions or self.missing)
        self._prefilter = _prefilter([d.gate.pattern for d, _, _ in self._detectors] + [
            rule.definition for rule in policy.regexes if rule.action is not Action.ALLOW
        ])  # fmt: skip

    @property
    def needs_engine(self) -> bool:
        return bool(self.engine_actions)

    @property
    def engine_entities(self) -> frozenset[str]:
        return frozenset(self.engine_actions)

    # --- one text -------------------------------------------------------------------------------

    def scan(self, text: str, engine_spans: Iterable[Span] = ()) -> list[Hit]:
        """Every hit in one text, in no particular order (duplicates possible)."""
        hits: list[Hit] = []
        detectors, regexes = self._detectors, self._regexes
        if self._prefilter is not None:  # one RE2 pass says which gates and regexes match at all
            matched = self._prefilter.Match(text) or ()
            first_regex = len(detectors)
            detectors = tuple(detectors[i] for i in matched if i < first_regex)
            regexes = tuple(regexes[i - first_regex] for i in matched if i >= first_regex)
        for detector, action, rank in detectors:
            for start, end in detector.find(text):
                hits.append(Hit(start, end, detector.entity, action, rank))
        for pattern, label, action, rank in regexes:
            for match in pattern.finditer(text):
                start, end = match.span()
                if end > start:
                    hits.append(Hit(start, end, label, action, rank))
        size = len(text)
        for span in engine_spans:
            found = self.engine_actions.get(span.entity)
            start, end = max(0, span.start), min(size, span.end)
            if found is not None and end > start:
                hits.append(Hit(start, end, span.entity, found, -1))
        return hits

    # --- a whole request ------------------------------------------------------------------------

    def prepare_request(self, kind: RequestKind, body: Any, custom_paths: Sequence[str] = ()) -> Prepared:
        return Prepared(request_texts(kind, body, custom_paths), body)

    def prepare_response(self, kind: ResponseKind, body: Any, custom_paths: Sequence[str] = ()) -> Prepared:
        return Prepared(response_texts(kind, body, custom_paths), body)

    def finish(
        self,
        prepared: Prepared,
        engine_spans: Sequence[Sequence[Span]] | None = None,
        engine_error: str | None = None,
    ) -> Outcome:
        """The outcome from the built-in scan plus the engine's spans (one list per text of
        `prepared.texts`, or None) or the engine's error."""
        if self.needs_engine and engine_spans is None and engine_error is None:
            engine_error = "the PII engine was not called"
        if self.missing:
            gap = f"no engine configured for {', '.join(self.missing)}"
            engine_error = f"{engine_error}; {gap}" if engine_error else gap
        strongest = Action.ALLOW
        labels: set[str] = set()
        replacements: dict[Path, str] = {}
        for index, slot in enumerate(prepared.slots):
            spans = engine_spans[index] if engine_spans is not None and index < len(engine_spans) else ()
            hits = self.scan(slot.text, spans)
            if not hits:
                continue
            for hit in hits:
                labels.add(hit.label)
                if hit.action.strength > strongest.strength:
                    strongest = hit.action
            redacted = redact(slot.text, hits)
            if redacted != slot.text:
                replacements[slot.path] = redacted
        verdict = _VERDICT[strongest]
        if engine_error is not None and not self.policy.fail_open and verdict is not Verdict.BLOCKED:
            verdict = Verdict.UNAVAILABLE
        forward = verdict not in (Verdict.BLOCKED, Verdict.UNAVAILABLE)
        body = rebuild(prepared.body, replacements) if forward and replacements else None
        return Outcome(verdict, tuple(sorted(labels)), body, engine_error)

    def screen_request(self, kind: RequestKind, body: Any, custom_paths: Sequence[str] = ()) -> Outcome:
        """Built-in detectors and regexes only (call `finish` yourself when `needs_engine`)."""
        if self.noop:
            return ALLOWED
        return self.finish(self.prepare_request(kind, body, custom_paths))

    def screen_response(self, kind: ResponseKind, body: Any, custom_paths: Sequence[str] = ()) -> Outcome:
        if self.noop or not self.policy.scan_responses:
            return ALLOWED
        return self.finish(self.prepare_response(kind, body, custom_paths))


def _prefilter(patterns: list[str]) -> Any:
    """An RE2 set of the gates and regexes: one scan of a text tells which can match in it.
    None (scan everything) if the set cannot be built."""
    if not patterns:
        return None
    options = re2.Options()
    options.log_errors = False
    options.max_mem = 64 << 20
    try:
        found = re2.Set.SearchSet(options)
        for pattern in patterns:
            found.Add(pattern)
        found.Compile()
    except re2.error:
        return None
    return found


def redact(text: str, hits: Iterable[Hit]) -> str:
    """`text` with each group of overlapping redact hits replaced by one placeholder, named after
    the group's longest hit (the finder's rank breaks ties). Characters outside the hits are kept."""
    spans = sorted(
        (h for h in hits if h.action is Action.REDACT), key=lambda h: (h.start, -(h.end - h.start), h.rank)
    )
    if not spans:
        return text
    out: list[str] = []
    position = 0
    group_start, group_end, best = spans[0].start, spans[0].end, spans[0]
    for hit in spans[1:]:
        if hit.start < group_end:
            group_end = max(group_end, hit.end)
            if _longer(hit, best):
                best = hit
            continue
        out.append(text[position:group_start])
        out.append(placeholder(best.label))
        position = group_end
        group_start, group_end, best = hit.start, hit.end, hit
    out.append(text[position:group_start])
    out.append(placeholder(best.label))
    out.append(text[group_end:])
    return "".join(out)


def _longer(a: Hit, b: Hit) -> bool:
    la, lb = a.end - a.start, b.end - b.start
    return la > lb or (la == lb and a.rank < b.rank)


def compile_all(
    policies: Mapping[str, Policy], caps: Capabilities = BUILTIN_ONLY
) -> dict[str, CompiledPolicy]:
    """Policy id -> compiled policy, for a configuration snapshot."""
    return {pid: CompiledPolicy(policy, caps) for pid, policy in policies.items()}
