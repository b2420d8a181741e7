"""What a policy says, and the rules an admin-supplied policy document must follow.

A `Policy` is a value: entity rules (entity -> action, `all` as the default for every entity the
gateway can find), regex rules and custom (free-text) rules, each with one of four actions, plus
what to do when an engine fails (`fail_open`) and whether non-streamed responses are screened
too. It holds the names the operator wrote (`iban` stays `iban`), so it reads back unchanged.

`parse_policy` turns the admin API's JSON document (`config.rules`, `regexConfig.rules`,
`customConfig.rules`, `failOpen`, `scanResponses`) into a Policy or raises `PolicyProblems` with
(field, message) pairs naming the public JSON fields; `policy_document` is the reverse. Whether an
entity is acceptable depends on the engines this gateway runs (`Capabilities`): an entity that
needs a language model is refused, with what to install, when none is configured.

User regexes are compiled with RE2 (`google-re2`): matching is linear in the text, so no pattern
an operator writes can stall the gateway on a hostile prompt. The price is RE2's syntax (no
look-around, no back-references), which is also the original gateway's (Go's regexp is RE2).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import re2

from bricksllm.domain.pii.entities import (
    ALL,
    BUILTIN_ENTITIES,
    ENTITIES,
    NLP_ENGINE_HINT,
    canonical,
)

Problems = list[tuple[str, str]]

MAX_REGEX_LENGTH = 2000
MAX_REGEX_RULES = 100
MAX_CUSTOM_RULES = 100
_REGEX_MEMORY = 8 << 20  # bytes RE2 may use for one compiled pattern


class Action(StrEnum):
    ALLOW = "allow"
    REDACT = "allow_but_redact"
    WARN = "allow_but_warn"
    BLOCK = "block"

    @property
    def strength(self) -> int:
        """block > allow_but_warn > allow_but_redact > allow: the strongest hit decides."""
        return _STRENGTH[self]


_STRENGTH = {Action.ALLOW: 0, Action.REDACT: 1, Action.WARN: 2, Action.BLOCK: 3}
_ACTION_NAMES = ", ".join(a.value for a in Action)


@dataclass(frozen=True, slots=True)
class RegexRule:
    definition: str
    action: Action


@dataclass(frozen=True, slots=True)
class CustomRule:
    definition: str  # a description in plain words, for an engine that classifies free text
    action: Action


@dataclass(frozen=True, slots=True)
class Policy:
    entities: Mapping[str, Action] = field(default_factory=dict)  # names as written (aliases kept)
    regexes: tuple[RegexRule, ...] = ()
    custom: tuple[CustomRule, ...] = ()
    fail_open: bool = False  # engine error or timeout: forward (counted) instead of 503
    scan_responses: bool = False  # also screen non-streamed response text


@dataclass(frozen=True, slots=True)
class Capabilities:
    """What the running gateway can find. The built-in engine is always there; `engine_entities`
    are those an optional engine (Presidio, Comprehend) adds."""

    engine: str = ""  # the optional engine's name, "" when only the built-in engine runs
    engine_entities: frozenset[str] = frozenset()
    custom_rules: bool = False  # an engine that classifies text against free-text definitions
    prefer_engine: bool = False  # send entities both can find to the engine (Comprehend parity)

    @property
    def detectable(self) -> frozenset[str]:
        return BUILTIN_ENTITIES | self.engine_entities


BUILTIN_ONLY = Capabilities()


class PolicyProblems(ValueError):
    """A policy document that cannot be accepted; `problems` names each field and why."""

    def __init__(self, problems: Problems) -> None:
        super().__init__("; ".join(f"{f}: {m}" for f, m in problems))
        self.problems = problems


def compile_regex(definition: str) -> Any:
    """An RE2 pattern, or `ValueError` with RE2's reason. Errors are not logged by RE2 itself."""
    options = re2.Options()
    options.log_errors = False
    options.max_mem = _REGEX_MEMORY
    try:
        return re2.compile(definition, options)
    except re2.error as exc:
        reason = exc.args[0] if exc.args else exc
        raise ValueError(reason.decode() if isinstance(reason, bytes) else str(reason)) from exc


def _action(value: Any, name: str, problems: Problems) -> Action | None:
    if isinstance(value, str):
        try:
            return Action(value)
        except ValueError:
            pass
    problems.append((name, f"unknown action; use one of {_ACTION_NAMES}"))
    return None


def _rules_list(doc: Mapping[str, Any], key: str, limit: int, problems: Problems) -> list[Any]:
    section = doc.get(key)
    if section is None:
        return []
    if not isinstance(section, Mapping):
        problems.append((key, "must be an object"))
        return []
    rules = section.get("rules")
    if rules is None:
        return []
    if not isinstance(rules, list):
        problems.append((f"{key}.rules", "must be a list"))
        return []
    if len(rules) > limit:
        problems.append((f"{key}.rules", f"at most {limit} rules"))
        return []
    return rules


def _entity_rules(doc: Mapping[str, Any], caps: Capabilities, problems: Problems) -> dict[str, Action]:
    config = doc.get("config")
    if config is None:
        return {}
    if not isinstance(config, Mapping):
        problems.append(("config", "must be an object"))
        return {}
    rules = config.get("rules")
    if rules is None:
        return {}
    if not isinstance(rules, Mapping):
        problems.append(("config.rules", "must be an object mapping entity names to actions"))
        return {}
    out: dict[str, Action] = {}
    detectable = caps.detectable
    for name, value in rules.items():
        where = f"config.rules.{name}"
        entity = canonical(name)
        if name != ALL and entity not in ENTITIES:
            problems.append((where, "unknown entity; see the documented list of entity names"))
            continue
        action = _action(value, where, problems)
        if action is None:
            continue
        if name != ALL and entity not in detectable and action is not Action.ALLOW:
            problems.append(
                (where, f"'{name}' needs an NLP engine, and none is configured: {NLP_ENGINE_HINT}")
            )
            continue
        out[name] = action
    return out


def _text_rules(
    doc: Mapping[str, Any], key: str, limit: int, problems: Problems, *, regex: bool
) -> list[tuple[str, Action]]:
    out: list[tuple[str, Action]] = []
    for i, rule in enumerate(_rules_list(doc, key, limit, problems)):
        where = f"{key}.rules[{i}]"
        if not isinstance(rule, Mapping):
            problems.append((where, "must be an object with definition and action"))
            continue
        definition = rule.get("definition")
        action = _action(rule.get("action"), f"{where}.action", problems)
        if not isinstance(definition, str) or not definition.strip():
            problems.append((f"{where}.definition", "must be a non-empty string"))
            continue
        if regex:
            problem = regex_problem(definition)
            if problem:
                problems.append((f"{where}.definition", problem))
                continue
        if action is not None:
            out.append((definition, action))
    return out


def regex_problem(definition: str) -> str:
    """Why a regex rule cannot be used ("" when it can)."""
    if len(definition) > MAX_REGEX_LENGTH:
        return f"at most {MAX_REGEX_LENGTH} characters"
    try:
        pattern = compile_regex(definition)
    except ValueError as exc:
        return f"invalid regular expression (RE2 syntax): {exc}"
    if pattern.search("") is not None:
        return "matches the empty string, so it would match everywhere"
    return ""


def _flag(doc: Mapping[str, Any], key: str, problems: Problems) -> bool:
    value = doc.get(key, False)
    if value is None:
        return False
    if not isinstance(value, bool):
        problems.append((key, "must be true or false"))
        return False
    return value


def parse_policy(doc: Mapping[str, Any], caps: Capabilities = BUILTIN_ONLY) -> Policy:
    """The Policy an admin document describes; `PolicyProblems` naming every bad field otherwise.
    Missing or null sections are empty; fields other than the policy's own are ignored."""
    problems: Problems = []
    entities = _entity_rules(doc, caps, problems)
    regexes = _text_rules(doc, "regexConfig", MAX_REGEX_RULES, problems, regex=True)
    custom = _text_rules(doc, "customConfig", MAX_CUSTOM_RULES, problems, regex=False)
    if custom and not caps.custom_rules:
        problems.append((
            "customConfig.rules",
            "custom rules need an engine that classifies text against plain-word definitions; "
            "none is configured (use regexConfig for patterns)",
        ))  # fmt: skip
    fail_open = _flag(doc, "failOpen", problems)
    scan_responses = _flag(doc, "scanResponses", problems)
    if problems:
        raise PolicyProblems(problems)
    return Policy(
        entities=entities,
        regexes=tuple(RegexRule(d, a) for d, a in regexes),
        custom=tuple(CustomRule(d, a) for d, a in custom),
        fail_open=fail_open,
        scan_responses=scan_responses,
    )


def policy_document(policy: Policy) -> dict[str, Any]:
    """The admin JSON shape of a policy (what `parse_policy` reads)."""
    return {
        "config": {"rules": {name: action.value for name, action in policy.entities.items()}},
        "regexConfig": {
            "rules": [{"definition": r.definition, "action": r.action.value} for r in policy.regexes]
        },
        "customConfig": {
            "rules": [{"definition": r.definition, "action": r.action.value} for r in policy.custom]
        },
        "failOpen": policy.fail_open,
        "scanResponses": policy.scan_responses,
    }
