"""Policies: admin-document validation, precedence and composition of rules, engine gaps."""

from __future__ import annotations

from typing import Any

import pytest

from bricksllm.domain.pii import (
    BUILTIN_ONLY,
    Action,
    Capabilities,
    CompiledPolicy,
    Policy,
    PolicyProblems,
    RegexRule,
    RequestKind,
    Span,
    Verdict,
    parse_policy,
    policy_document,
)

PRESIDIO = Capabilities(engine="presidio", engine_entities=frozenset({"name", "address"}))


def problems(doc: dict[str, Any], caps: Capabilities = BUILTIN_ONLY) -> dict[str, str]:
    with pytest.raises(PolicyProblems) as caught:
        parse_policy(doc, caps)
    return dict(caught.value.problems)


def chat(*texts: str) -> dict[str, Any]:
    return {"model": "m", "messages": [{"role": "user", "content": t} for t in texts]}


def screen(policy: Policy, *texts: str) -> Any:
    return CompiledPolicy(policy).screen_request(RequestKind.CHAT, chat(*texts))


# --- validation ---------------------------------------------------------------------------------


def test_a_valid_document_round_trips() -> None:
    doc = {
        "config": {"rules": {"email": "allow_but_redact", "iban": "block", "all": "allow_but_warn"}},
        "regexConfig": {"rules": [{"definition": r"(?i)project\s+\w+", "action": "allow_but_redact"}]},
        "customConfig": {"rules": []},
        "failOpen": True,
        "scanResponses": False,
    }
    policy = parse_policy(doc)
    assert policy.entities == {"email": Action.REDACT, "iban": Action.BLOCK, "all": Action.WARN}
    assert policy.regexes == (RegexRule(r"(?i)project\s+\w+", Action.REDACT),)
    assert policy.fail_open is True
    assert policy_document(policy) == doc


def test_missing_and_null_sections_are_empty() -> None:
    assert parse_policy({}) == Policy()
    assert parse_policy({"config": None, "regexConfig": {"rules": None}, "customConfig": None}) == Policy()


@pytest.mark.parametrize(
    ("doc", "field", "words"),
    [
        ({"config": {"rules": {"nope": "block"}}}, "config.rules.nope", "unknown entity"),
        ({"config": {"rules": {"email": "redact"}}}, "config.rules.email", "unknown action"),
        ({"config": {"rules": {"email": 1}}}, "config.rules.email", "unknown action"),
        ({"config": {"rules": ["email"]}}, "config.rules", "must be an object"),
        ({"config": "email"}, "config", "must be an object"),
        ({"regexConfig": {"rules": [{"definition": "(a", "action": "block"}]}},
         "regexConfig.rules[0].definition", "invalid regular expression"),
        ({"regexConfig": {"rules": [{"definition": r"(a)\1", "action": "block"}]}},
         "regexConfig.rules[0].definition", "RE2"),  # back-references: not linear, refused
        ({"regexConfig": {"rules": [{"definition": "(?=x)", "action": "block"}]}},
         "regexConfig.rules[0].definition", "invalid regular expression"),
        ({"regexConfig": {"rules": [{"definition": "a*", "action": "block"}]}},
         "regexConfig.rules[0].definition", "empty string"),
        ({"regexConfig": {"rules": [{"definition": "", "action": "block"}]}},
         "regexConfig.rules[0].definition", "non-empty"),
        ({"regexConfig": {"rules": [{"definition": "x" * 3000, "action": "block"}]}},
         "regexConfig.rules[0].definition", "at most"),
        ({"regexConfig": {"rules": [{"definition": "x", "action": "nope"}]}},
         "regexConfig.rules[0].action", "unknown action"),
        ({"regexConfig": {"rules": "x"}}, "regexConfig.rules", "must be a list"),
        ({"customConfig": {"rules": [{"definition": "medical terms", "action": "block"}]}},
         "customConfig.rules", "custom rules need an engine"),
        ({"failOpen": "yes"}, "failOpen", "true or false"),
    ],
)  # fmt: skip
def test_each_problem_names_its_field(doc: dict[str, Any], field: str, words: str) -> None:
    found = problems(doc)
    assert field in found, found
    assert words in found[field]


def test_every_problem_is_reported_at_once() -> None:
    found = problems({
        "config": {"rules": {"nope": "block", "email": "x"}},
        "regexConfig": {"rules": [{"definition": "(", "action": "block"}]},
    })  # fmt: skip
    assert set(found) == {"config.rules.nope", "config.rules.email", "regexConfig.rules[0].definition"}


def test_nlp_entities_need_an_engine_and_say_what_to_install() -> None:
    found = problems({"config": {"rules": {"name": "block", "address": "allow_but_redact"}}})
    assert set(found) == {"config.rules.name", "config.rules.address"}
    assert "bricksllm[presidio]" in found["config.rules.name"]
    assert "spaCy" in found["config.rules.name"]
    # accepted once an engine that finds them is configured; `allow` never needs one
    assert parse_policy({"config": {"rules": {"name": "block"}}}, PRESIDIO).entities == {"name": Action.BLOCK}
    assert parse_policy({"config": {"rules": {"age": "allow"}}}).entities == {"age": Action.ALLOW}


def test_custom_rules_accepted_when_an_engine_classifies_text() -> None:
    caps = Capabilities(engine="x", custom_rules=True)
    policy = parse_policy(
        {"customConfig": {"rules": [{"definition": "medical terms", "action": "block"}]}}, caps
    )
    assert policy.custom[0].action is Action.BLOCK


# --- precedence and composition -----------------------------------------------------------------


def test_two_redact_rules_are_both_applied() -> None:
    """The original gateway kept only the last regex rule's redaction; every one applies here."""
    policy = Policy(
        entities={"email": Action.REDACT},
        regexes=(RegexRule(r"Project \w+", Action.REDACT), RegexRule(r"EMP-\d+", Action.REDACT)),
    )
    outcome = screen(policy, "a@b.com leads Project Zeus with EMP-42")
    assert outcome.verdict is Verdict.REDACTED
    assert outcome.body["messages"][0]["content"] == "[EMAIL] leads [REDACTED] with [REDACTED]"
    assert outcome.entities == ("email", "regex[0]", "regex[1]")


def test_block_wins_over_everything() -> None:
    policy = Policy(
        entities={"email": Action.REDACT, "ssn": Action.BLOCK, "phone": Action.WARN},
        regexes=(RegexRule("secret", Action.ALLOW),),
    )
    outcome = screen(policy, "a@b.com 415-555-0132", "ssn 536-90-4399 secret")
    assert outcome.verdict is Verdict.BLOCKED
    assert outcome.body is None  # never forwarded
    assert outcome.entities == ("email", "phone", "ssn")  # types only; `allow` rules are not scanned


def test_warn_beats_redact_and_redactions_still_apply() -> None:
    policy = Policy(entities={"email": Action.REDACT, "phone": Action.WARN})
    outcome = screen(policy, "a@b.com 415-555-0132")
    assert outcome.verdict is Verdict.WARNED
    assert outcome.body["messages"][0]["content"] == "[EMAIL] 415-555-0132"


def test_nothing_found_is_allowed_and_unchanged() -> None:
    outcome = screen(Policy(entities={"email": Action.BLOCK}), "no personal data here")
    assert outcome.verdict is Verdict.ALLOWED
    assert outcome.body is None and outcome.entities == ()


def test_all_is_the_default_and_specific_rules_override_it() -> None:
    policy = Policy(entities={"all": Action.REDACT, "url": Action.ALLOW, "ssn": Action.BLOCK})
    text = "a@b.com see https://example.com/x"
    outcome = screen(policy, text)
    assert outcome.body["messages"][0]["content"] == "[EMAIL] see https://example.com/x"
    assert screen(policy, "ssn 536-90-4399").verdict is Verdict.BLOCKED


def test_alias_iban_finds_and_names_the_canonical_entity() -> None:
    outcome = screen(Policy(entities={"iban": Action.REDACT}), "pay GB82 WEST 1234 5698 7654 32 now")
    assert outcome.body["messages"][0]["content"] == "pay [INTERNATIONAL_BANK_ACCOUNT_NUMBER] now"


def test_overlapping_hits_become_one_placeholder_named_after_the_longest() -> None:
    policy = Policy(entities={"url": Action.REDACT, "email": Action.REDACT})
    outcome = screen(policy, "go to https://x.org/?to=a@b.com now")
    assert outcome.body["messages"][0]["content"] == "go to [URL] now"


def test_only_allow_rules_is_a_noop() -> None:
    compiled = CompiledPolicy(
        Policy(entities={"email": Action.ALLOW}, regexes=(RegexRule("x", Action.ALLOW),))
    )
    assert compiled.noop


# --- engines the policy needs ------------------------------------------------------------------


def test_engine_entities_are_routed_to_the_engine() -> None:
    compiled = CompiledPolicy(Policy(entities={"name": Action.REDACT, "email": Action.REDACT}), PRESIDIO)
    assert compiled.needs_engine and compiled.engine_entities == {"name"}
    prepared = compiled.prepare_request(RequestKind.CHAT, chat("Jane Doe wrote a@b.com"))
    outcome = compiled.finish(prepared, [[Span(0, 8, "name")]])
    assert outcome.verdict is Verdict.REDACTED
    assert outcome.body["messages"][0]["content"] == "[NAME] wrote [EMAIL]"


@pytest.mark.parametrize("fail_open", [False, True])
def test_engine_error_fails_closed_or_open(fail_open: bool) -> None:
    policy = Policy(entities={"name": Action.BLOCK, "email": Action.REDACT}, fail_open=fail_open)
    compiled = CompiledPolicy(policy, PRESIDIO)
    outcome = compiled.finish(compiled.prepare_request(RequestKind.CHAT, chat("Jane a@b.com")), None, "boom")
    assert outcome.engine_error == "boom"
    if fail_open:
        assert outcome.verdict is Verdict.REDACTED
        assert outcome.body["messages"][0]["content"] == "Jane [EMAIL]"
    else:
        assert outcome.verdict is Verdict.UNAVAILABLE and outcome.body is None


def test_a_block_found_without_the_engine_still_blocks() -> None:
    compiled = CompiledPolicy(Policy(entities={"name": Action.BLOCK, "ssn": Action.BLOCK}), PRESIDIO)
    prepared = compiled.prepare_request(RequestKind.CHAT, chat("ssn 536-90-4399"))
    assert compiled.finish(prepared, None, "timeout").verdict is Verdict.BLOCKED


def test_a_saved_policy_whose_engine_is_gone_is_treated_as_an_engine_failure() -> None:
    """A policy accepted while Presidio ran, loaded by a gateway without it: never silently allowed."""
    policy = parse_policy({"config": {"rules": {"name": "block"}}}, PRESIDIO)
    compiled = CompiledPolicy(policy)  # built-in only
    outcome = compiled.screen_request(RequestKind.CHAT, chat("Jane Doe"))
    assert outcome.verdict is Verdict.UNAVAILABLE
    assert outcome.engine_error is not None and "name" in outcome.engine_error
