"""The optional PII engines through the screener: Presidio with a real spaCy pipeline, AWS
Comprehend through boto3 against a loopback server speaking DetectPiiEntities' JSON protocol,
and engine failures (errors, timeouts) in both fail-closed and fail-open policies.

No spaCy model is installed here (none is on PyPI, and nothing is downloaded), so the Presidio
test saves a rule-based English pipeline (an entity ruler standing where a trained NER model
would) and hands its directory to the adapter: Presidio, its recognizers and the adapter's
mapping all run for real; only the source of PERSON/GPE labels is rules instead of weights.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from bricksllm.domain.pii import (
    Action,
    Capabilities,
    CompiledPolicy,
    Policy,
    RequestKind,
    Span,
    Verdict,
)
from bricksllm.pii_engines import EngineUnavailable
from bricksllm.pii_engines.builtin import BuiltinEngine
from bricksllm.services.pii import PIIScreener


class RecordingMetrics:
    def __init__(self) -> None:
        self.counts: list[tuple[str, dict[str, str]]] = []

    def incr(self, name: str, value: int = 1, tags: Mapping[str, str] | None = None) -> None:
        self.counts.append((name, dict(tags or {})))

    def timing(self, name: str, ms: float, tags: Mapping[str, str] | None = None) -> None:
        return None


def chat(text: str) -> dict[str, Any]:
    return {"model": "gpt-4o", "messages": [{"role": "user", "content": text}], "temperature": 0}


def content(body: Any) -> str:
    return str(body["messages"][0]["content"])


# --- Presidio -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def presidio(tmp_path_factory: pytest.TempPathFactory) -> Any:
    spacy = pytest.importorskip("spacy")
    from bricksllm.pii_engines.presidio import PresidioEngine

    nlp = spacy.blank("en")
    ruler = nlp.add_pipe("entity_ruler")
    ruler.add_patterns([
        {"label": "PERSON", "pattern": [{"LOWER": "jane"}, {"LOWER": "doe"}]},
        {"label": "GPE", "pattern": "Springfield"},
    ])  # fmt: skip
    path = tmp_path_factory.mktemp("spacy") / "en_rules"
    nlp.to_disk(path)
    return PresidioEngine(str(path))


async def test_presidio_finds_names_and_addresses_through_a_spacy_pipeline(presidio: Any) -> None:
    assert {"name", "address", "passport_number", "driver_id", "bank_account_number"} <= presidio.entities
    caps = Capabilities(engine="presidio", engine_entities=presidio.entities)
    policy = CompiledPolicy(Policy(entities={"name": Action.REDACT, "address": Action.WARN,
                                             "email": Action.REDACT}), caps)  # fmt: skip
    assert policy.engine_entities == {"name", "address"}  # email stays with the built-in engine
    screener = PIIScreener(presidio, engine_timeout=30)
    outcome = await screener.request(policy, RequestKind.CHAT, chat("Jane Doe of Springfield wrote a@b.com"))
    assert outcome.verdict is Verdict.WARNED
    assert outcome.entities == ("address", "email", "name")
    assert content(outcome.body) == "[NAME] of Springfield wrote [EMAIL]"


async def test_presidio_refuses_a_model_that_is_not_installed() -> None:
    pytest.importorskip("presidio_analyzer")
    from bricksllm.pii_engines.presidio import PresidioEngine

    with pytest.raises(EngineUnavailable, match="never downloaded"):
        PresidioEngine("en_core_web_lg_not_installed")


# --- AWS Comprehend -----------------------------------------------------------------------------


class FakeComprehend:
    """DetectPiiEntities over JSON 1.1 on loopback: names from a list, emails by pattern."""

    def __init__(self) -> None:
        self.mode = "ok"
        self.release = asyncio.Event()  # set at teardown: a "slow" answer never outlives the test
        self.requests: list[tuple[str, dict[str, Any]]] = []

    async def handle(self, request: web.Request) -> web.Response:
        target = request.headers.get("X-Amz-Target", "")
        payload = json.loads(await request.read())
        self.requests.append((target, payload))
        if self.mode == "slow":
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.release.wait(), 5)
        if self.mode == "error":
            error = {"__type": "InternalServerException", "message": "try later"}
            return web.json_response(error, status=500, content_type="application/x-amz-json-1.1")
        text = payload["Text"]
        entities = [{"Type": "NAME", "Score": 0.99, "BeginOffset": m.start(), "EndOffset": m.end()}
                    for m in re.finditer(r"Jane Doe", text)]  # fmt: skip
        entities += [{"Type": "EMAIL", "Score": 0.99, "BeginOffset": m.start(), "EndOffset": m.end()}
                     for m in re.finditer(r"\S+@\S+\.com", text)]  # fmt: skip
        entities += [
            {"Type": "ADDRESS", "Score": 0.2, "BeginOffset": 0, "EndOffset": 1}
        ]  # below the threshold
        return web.json_response({"Entities": entities}, content_type="application/x-amz-json-1.1")


@pytest.fixture
async def comprehend() -> AsyncIterator[tuple[FakeComprehend, Any]]:
    pytest.importorskip("boto3")
    from bricksllm.pii_engines.comprehend import ComprehendEngine

    fake = FakeComprehend()
    app = web.Application()
    app.router.add_post("/", fake.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    engine = ComprehendEngine(
        region="us-east-1",
        endpoint_url=f"http://127.0.0.1:{port}",
        access_key_id="AKIDTEST",
        secret_access_key="test-secret",
        timeout=1.0,
    )
    yield fake, engine
    fake.release.set()
    await engine.close()
    await runner.cleanup()


def comprehend_policy(engine: Any, *, fail_open: bool = False, prefer: bool = False) -> CompiledPolicy:
    caps = Capabilities(engine="comprehend", engine_entities=engine.entities, prefer_engine=prefer)
    return CompiledPolicy(
        Policy(entities={"name": Action.REDACT, "email": Action.REDACT}, fail_open=fail_open), caps
    )


async def test_comprehend_is_called_with_its_wire_protocol(comprehend: tuple[FakeComprehend, Any]) -> None:
    fake, engine = comprehend
    screener = PIIScreener(engine, engine_timeout=5)
    outcome = await screener.request(
        comprehend_policy(engine), RequestKind.CHAT, chat("Jane Doe wrote x@y.com")
    )
    assert outcome.verdict is Verdict.REDACTED
    assert content(outcome.body) == "[NAME] wrote [EMAIL]"
    [(target, payload)] = fake.requests
    assert target == "Comprehend_20171127.DetectPiiEntities"
    assert payload == {"Text": "Jane Doe wrote x@y.com", "LanguageCode": "en"}


async def test_comprehend_parity_mode_sends_every_entity_to_it(
    comprehend: tuple[FakeComprehend, Any],
) -> None:
    fake, engine = comprehend
    policy = comprehend_policy(engine, prefer=True)
    assert policy.engine_entities == {"name", "email"}
    outcome = await PIIScreener(engine, engine_timeout=5).request(
        policy, RequestKind.CHAT, chat("to a@b.com")
    )
    assert content(outcome.body) == "to [EMAIL]"
    assert [payload["Text"] for _, payload in fake.requests] == ["to a@b.com"]


@pytest.mark.parametrize("mode", ["error", "slow"])
@pytest.mark.parametrize("fail_open", [False, True])
async def test_comprehend_failure_fails_closed_or_open(
    comprehend: tuple[FakeComprehend, Any], mode: str, fail_open: bool
) -> None:
    fake, engine = comprehend
    fake.mode = mode
    metrics = RecordingMetrics()
    screener = PIIScreener(engine, metrics, engine_timeout=0.5)
    started = time.monotonic()
    outcome = await screener.request(comprehend_policy(engine, fail_open=fail_open), RequestKind.CHAT,
                                     chat("Jane Doe wrote x@y.com"))  # fmt: skip
    assert time.monotonic() - started < 4  # never waits for the stuck upstream (it sleeps 5 s)
    assert outcome.engine_error is not None and "comprehend" in outcome.engine_error
    assert "Jane" not in outcome.engine_error
    assert metrics.counts == [
        ("pii.engine_failures", {"engine": "comprehend", "mode": "open" if fail_open else "closed"})
    ]
    if fail_open:
        assert outcome.verdict is Verdict.REDACTED  # the built-in rules still applied
        assert content(outcome.body) == "Jane Doe wrote [EMAIL]"
    else:
        assert outcome.verdict is Verdict.UNAVAILABLE and outcome.body is None


def test_comprehend_pieces_respect_the_size_limit() -> None:
    from bricksllm.pii_engines.comprehend import pieces

    text = ("é" * 30 + " ") * 5000
    cut = pieces(text, limit=1000)
    assert "".join(p for _, p in cut) == text
    assert all(len(p.encode()) <= 1000 for _, p in cut)
    assert all(text[offset : offset + len(p)] == p for offset, p in cut)


# --- any engine ---------------------------------------------------------------------------------


class BrokenEngine:
    name = "broken"
    entities = frozenset({"name"})

    def __init__(self, how: str) -> None:
        self.how = how

    async def detect(self, texts: Sequence[str], entities: frozenset[str]) -> list[list[Span]]:
        if self.how == "raise":
            raise RuntimeError("secret text Jane Doe in the message")
        if self.how == "hang":
            await asyncio.Event().wait()
        return []  # wrong length

    async def close(self) -> None:
        return None


@pytest.mark.parametrize("how", ["raise", "hang", "short"])
async def test_engine_failures_never_escape(how: str) -> None:
    engine = BrokenEngine(how)
    caps = Capabilities(engine="broken", engine_entities=engine.entities)
    policy = CompiledPolicy(Policy(entities={"name": Action.BLOCK}), caps)
    outcome = await PIIScreener(engine, engine_timeout=0.2).request(
        policy, RequestKind.CHAT, chat("Jane Doe")
    )
    assert outcome.verdict is Verdict.UNAVAILABLE
    assert outcome.engine_error is not None and "Jane" not in outcome.engine_error


async def test_no_engine_configured_for_an_engine_policy() -> None:
    caps = Capabilities(engine="presidio", engine_entities=frozenset({"name"}))
    policy = CompiledPolicy(Policy(entities={"name": Action.REDACT}, fail_open=True), caps)
    outcome = await PIIScreener(None).request(policy, RequestKind.CHAT, chat("Jane"))
    assert outcome.verdict is Verdict.ALLOWED and outcome.engine_error == "no PII engine is configured"


async def test_builtin_engine_behind_the_port() -> None:
    spans = await BuiltinEngine().detect(["mail a@b.com", "none"], frozenset({"email"}))
    assert spans == [[Span(5, 12, "email")], []]


async def test_response_screening_through_the_screener() -> None:
    policy = CompiledPolicy(Policy(entities={"email": Action.REDACT}, scan_responses=True))
    from bricksllm.domain.pii import ResponseKind

    body = {"choices": [{"message": {"role": "assistant", "content": "write to a@b.com"}}]}
    outcome = await PIIScreener().response(policy, ResponseKind.CHAT, body)
    assert outcome.body == {"choices": [{"message": {"role": "assistant", "content": "write to [EMAIL]"}}]}


def test_tmp_model_dir_is_not_a_package(tmp_path: Path) -> None:
    """The adapter accepts a saved pipeline's directory, and refuses a path that does not exist."""
    pytest.importorskip("presidio_analyzer")
    from bricksllm.pii_engines.presidio import PresidioEngine

    with pytest.raises(EngineUnavailable):
        PresidioEngine(str(tmp_path / "missing"))
