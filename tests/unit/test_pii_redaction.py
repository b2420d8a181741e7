"""In-place redaction: which texts each kind of request exposes, and that nothing else changes."""

# ruff: noqa: E501  (tables of cases read best one case a line)
from __future__ import annotations

import copy
import json
import re
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bricksllm.domain.pii import (
    Action,
    CompiledPolicy,
    Policy,
    RegexRule,
    RequestKind,
    ResponseKind,
    Verdict,
    parse_path,
    rebuild,
    redact,
    request_texts,
    response_texts,
)
from bricksllm.domain.pii.locations import EVERY, Path

EMAIL = "jane@example.com"
POLICY = Policy(entities={"email": Action.REDACT, "credit_debit_number": Action.REDACT},
                regexes=(RegexRule(r"Project \w+", Action.REDACT),))  # fmt: skip
TOOLS = [{"type": "function", "function": {"name": "lookup", "description": f"mail {EMAIL}",
                                           "parameters": {"type": "object", "properties": {}}}}]  # fmt: skip

# kind, body, the paths that hold client text
CASES: list[tuple[RequestKind, dict[str, Any], list[Path]]] = [
    (RequestKind.CHAT, {
        "model": "gpt-4o", "temperature": 0.25, "seed": 12345678901234567, "tools": TOOLS,
        "response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": {"description": EMAIL}}},
        "messages": [
            {"role": "system", "content": f"You help {EMAIL}"},
            {"role": "developer", "content": "Project Zeus rules"},
            {"role": "user", "content": [
                {"type": "text", "text": f"card 4111 1111 1111 1111 for {EMAIL}"},
                {"type": "image_url", "image_url": {"url": f"https://img.example/{EMAIL}"}},
            ]},
            {"role": "assistant", "content": None, "tool_calls": [
                {"id": "c1", "type": "function", "function": {"name": "lookup", "arguments": f'{{"e": "{EMAIL}"}}'}}]},
            {"role": "tool", "tool_call_id": "c1", "content": f"found {EMAIL}"},
        ],
        "a_field_from_next_year": {"nested": [1, 2.5, True, None, EMAIL]},
    }, [("messages", 0, "content"), ("messages", 1, "content"), ("messages", 2, "content", 0, "text"),
        ("messages", 4, "content")]),
    (RequestKind.RESPONSES, {
        "model": "gpt-4.1", "instructions": f"Reply to {EMAIL}", "tools": TOOLS, "store": False,
        "input": [
            {"role": "user", "content": [{"type": "input_text", "text": f"from {EMAIL}"},
                                         {"type": "input_image", "image_url": "data:..."}]},
            {"type": "function_call", "call_id": "c", "name": "lookup", "arguments": EMAIL},
            {"type": "function_call_output", "call_id": "c", "output": f"is {EMAIL}"},
            {"role": "assistant", "content": f"ok {EMAIL}"},
        ],
    }, [("instructions",), ("input", 0, "content", 0, "text"), ("input", 2, "output"), ("input", 3, "content")]),
    (RequestKind.RESPONSES, {"model": "gpt-4.1", "input": f"hi {EMAIL}"}, [("input",)]),
    (RequestKind.COMPLETIONS, {"model": "davinci-002", "prompt": [f"a {EMAIL}", "b", [1, 2]], "max_tokens": 5},
     [("prompt", 0), ("prompt", 1)]),
    (RequestKind.COMPLETIONS, {"model": "claude-2", "prompt": f"\n\nHuman: {EMAIL}\n\nAssistant:"}, [("prompt",)]),
    (RequestKind.EMBEDDINGS, {"model": "text-embedding-3-small", "input": f"embed {EMAIL}",
                              "encoding_format": "base64"}, [("input",)]),
    (RequestKind.EMBEDDINGS, {"model": "e", "input": [f"x {EMAIL}", "y", [3, 4]], "dimensions": 256},
     [("input", 0), ("input", 1)]),
    (RequestKind.ANTHROPIC_MESSAGES, {
        "model": "claude-sonnet-4", "max_tokens": 1024, "tools": TOOLS,
        "system": [{"type": "text", "text": f"owner {EMAIL}", "cache_control": {"type": "ephemeral"}}],
        "messages": [
            {"role": "user", "content": f"I am {EMAIL}"},
            {"role": "assistant", "content": [{"type": "tool_use", "id": "t", "name": "lookup", "input": {"e": EMAIL}}]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "t", "content": [{"type": "text", "text": f"row {EMAIL}"}]},
                {"type": "text", "text": "Project Apollo?"},
            ]},
        ],
    }, [("system", 0, "text"), ("messages", 0, "content"), ("messages", 2, "content", 0, "content", 0, "text"),
        ("messages", 2, "content", 1, "text")]),
    (RequestKind.ANTHROPIC_MESSAGES, {"model": "c", "system": f"sys {EMAIL}", "messages": []}, [("system",)]),
    (RequestKind.ASSISTANT, {"model": "gpt-4o", "name": "helper", "instructions": f"serve {EMAIL}", "tools": []},
     [("instructions",)]),
    (RequestKind.THREAD, {"messages": [{"role": "user", "content": f"hi {EMAIL}", "metadata": {"k": EMAIL}}]},
     [("messages", 0, "content")]),
    (RequestKind.THREAD_AND_RUN, {"assistant_id": "a", "instructions": f"i {EMAIL}",
                                  "thread": {"messages": [{"role": "user", "content": [
                                      {"type": "text", "text": f"t {EMAIL}"}]}]}},
     [("instructions",), ("thread", "messages", 0, "content", 0, "text")]),
    (RequestKind.MESSAGE, {"role": "user", "content": f"m {EMAIL}", "attachments": []}, [("content",)]),
    (RequestKind.RUN, {"assistant_id": "a", "instructions": f"r {EMAIL}", "additional_instructions": "Project X",
                       "additional_messages": [{"role": "user", "content": f"a {EMAIL}"}]},
     [("instructions",), ("additional_instructions",), ("additional_messages", 0, "content")]),
]  # fmt: skip


def at(body: Any, path: Path) -> Any:
    for step in path:
        body = body[step]
    return body


def with_texts_masked(body: Any, paths: list[Path]) -> str:
    """The body as JSON text (key order included) with the text slots blanked out."""
    return json.dumps(rebuild(body, dict.fromkeys(paths, "<text>")))


@pytest.mark.parametrize(("kind", "body", "paths"), CASES, ids=lambda x: x if isinstance(x, str) else "")
def test_texts_are_found_and_only_they_change(
    kind: RequestKind, body: dict[str, Any], paths: list[Path]
) -> None:
    assert [slot.path for slot in request_texts(kind, body)] == paths
    before = copy.deepcopy(body)
    outcome = CompiledPolicy(POLICY).screen_request(kind, body)
    assert outcome.verdict is Verdict.REDACTED
    assert body == before  # the parsed original is not mutated
    new = outcome.body
    assert with_texts_masked(new, paths) == with_texts_masked(body, paths)  # all else equal, same key order
    for path in paths:
        assert EMAIL not in at(new, path)
        assert "[EMAIL]" in at(new, path) or EMAIL not in at(body, path)
    assert json.dumps(new).count(EMAIL) == json.dumps(body).count(EMAIL) - sum(
        at(body, p).count(EMAIL) for p in paths
    )  # emails outside the client's texts (tools, schemas, metadata, URLs of images) are untouched


def test_untouched_subtrees_are_shared_not_copied() -> None:
    kind, body, _ = CASES[0]
    new = CompiledPolicy(POLICY).screen_request(kind, body).body
    assert new["tools"] is body["tools"]
    assert new["response_format"] is body["response_format"]
    assert new["messages"][3] is body["messages"][3]


def test_unknown_shapes_are_skipped() -> None:
    odd = {
        "messages": [None, "x", {"content": 5}, {"content": [None, {"type": "text", "text": 3}]}],
        "input": {},
    }
    assert request_texts(RequestKind.CHAT, odd) == []
    assert request_texts(RequestKind.EMBEDDINGS, [1, 2]) == []
    assert request_texts(RequestKind.RESPONSES, odd) == []


def test_custom_provider_paths() -> None:
    body = {
        "msgs": [{"text": f"a {EMAIL}"}, {"text": "b"}],
        "sys": {"a.b": f"c {EMAIL}"},
        "parts": ["x", 1, "y"],
    }
    assert parse_path("msgs.#.text") == ("msgs", EVERY, "text")
    paths = ["msgs.#.text", r"sys.a\.b", "parts", "msgs.1.text", "missing.#.x"]
    slots = request_texts(RequestKind.CUSTOM, body, paths)
    assert [s.path for s in slots] == [("msgs", 0, "text"), ("msgs", 1, "text"), ("sys", "a.b"), ("parts", 0),
                                       ("parts", 2)]  # fmt: skip
    outcome = CompiledPolicy(POLICY).screen_request(RequestKind.CUSTOM, body, paths)
    assert outcome.body == {"msgs": [{"text": "a [EMAIL]"}, {"text": "b"}], "sys": {"a.b": "c [EMAIL]"},
                            "parts": ["x", 1, "y"]}  # fmt: skip


@pytest.mark.parametrize("path", ["", "a..b", "a.*", "a.#(b=1)", "a|b", "@this", "a\\"])
def test_unsupported_paths_are_refused(path: str) -> None:
    with pytest.raises(ValueError):
        parse_path(path)


def test_response_texts() -> None:
    chat = {"id": "x", "choices": [{"index": 0, "message": {"role": "assistant", "content": f"to {EMAIL}"}}],
            "usage": {"prompt_tokens": 3}}  # fmt: skip
    assert [s.text for s in response_texts(ResponseKind.CHAT, chat)] == [f"to {EMAIL}"]
    responses = {
        "output": [{"type": "message", "content": [{"type": "output_text", "text": "a", "annotations": []}]}]
    }
    assert [s.path for s in response_texts(ResponseKind.RESPONSES, responses)] == [
        ("output", 0, "content", 0, "text")
    ]
    assert [s.text for s in response_texts(ResponseKind.ANTHROPIC_MESSAGES, {"content": [
        {"type": "text", "text": "hi"}, {"type": "tool_use", "input": {}}]})] == ["hi"]  # fmt: skip
    assert [s.text for s in response_texts(ResponseKind.COMPLETIONS, {"choices": [{"text": "t"}]})] == ["t"]
    scanning = CompiledPolicy(Policy(entities={"email": Action.REDACT}, scan_responses=True))
    out = scanning.screen_response(ResponseKind.CHAT, chat)
    assert out.body["choices"][0]["message"]["content"] == "to [EMAIL]" and out.body["usage"] is chat["usage"]
    not_scanning = CompiledPolicy(Policy(entities={"email": Action.REDACT}))
    assert not_scanning.screen_response(ResponseKind.CHAT, chat).verdict is Verdict.ALLOWED


# --- properties --------------------------------------------------------------------------------

PIECES = ["jane@example.com", "4111 1111 1111 1111", "Project Zeus", "(415) 555-0132", "ssn 536-90-4399",
          "GB82 WEST 1234 5698 7654 32", "https://x.org/a?m=jane@example.com", "hello", "é", "日本", "[EMAIL]",
          "-", ".", " ", "\n", "0", "@", "Project"]  # fmt: skip
EVERYTHING = Policy(entities={"all": Action.REDACT}, regexes=(RegexRule(r"Project \w+", Action.REDACT),))
COMPILED = CompiledPolicy(EVERYTHING)
PLACEHOLDER = re.compile(r"\[[A-Z_]+\]")

texts = st.lists(st.one_of(st.sampled_from(PIECES), st.text(max_size=8)), max_size=10).map("".join)


@settings(max_examples=300, deadline=None)
@given(texts)
def test_redaction_changes_nothing_outside_the_detected_spans(text: str) -> None:
    hits = COMPILED.scan(text)
    out = redact(text, hits)
    merged: list[list[int]] = []
    for hit in sorted(hits):
        if merged and hit.start < merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], hit.end)
        else:
            merged.append([hit.start, hit.end])
    cursor, previous = 0, 0
    for start, end in merged:
        kept = text[previous:start]
        assert out[cursor : cursor + len(kept)] == kept
        cursor += len(kept)
        placeholder = PLACEHOLDER.match(out, cursor)
        assert placeholder is not None
        cursor, previous = placeholder.end(), end
    assert out[cursor:] == text[previous:]


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | texts,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
    max_leaves=12,
)
contents = st.one_of(
    texts, st.lists(st.fixed_dictionaries({"type": st.just("text"), "text": texts}), max_size=3)
)
messages = st.lists(
    st.fixed_dictionaries(
        {"role": st.sampled_from(["system", "developer", "user", "assistant"]), "content": contents},
        optional={"name": st.text(max_size=5), "extra": json_values},
    ),
    max_size=4,
)


@settings(max_examples=200, deadline=None)
@given(
    messages, st.dictionaries(st.text(max_size=8).filter(lambda k: k != "messages"), json_values, max_size=4)
)
def test_a_redacted_body_equals_the_original_outside_its_text_slots(
    msgs: list[Any], extra: dict[str, Any]
) -> None:
    body = {**extra, "messages": msgs}
    before = json.dumps(body)
    paths = [slot.path for slot in request_texts(RequestKind.CHAT, body)]
    outcome = COMPILED.screen_request(RequestKind.CHAT, body)
    assert json.dumps(body) == before
    if outcome.body is None:
        assert outcome.verdict is Verdict.ALLOWED
        return
    assert with_texts_masked(outcome.body, paths) == with_texts_masked(body, paths)
    for path in paths:
        assert at(outcome.body, path) == redact(at(body, path), COMPILED.scan(at(body, path)))
