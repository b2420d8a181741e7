"""bench/pii.py as a smoke check (no figure is asserted): every lane runs and reports, and the
prompts it measures are what its docstring says they are."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

from bricksllm.domain.pii import CompiledPolicy, RequestKind, Verdict

BENCH = Path(__file__).resolve().parents[2] / "bench" / "pii.py"


def test_every_lane_runs_and_the_prompts_are_4_kb(capsys: pytest.CaptureFixture[str]) -> None:
    spec = importlib.util.spec_from_file_location("_bench_pii", BENCH)
    assert spec and spec.loader
    bench = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = bench
    try:
        spec.loader.exec_module(bench)
        compiled = CompiledPolicy(bench.POLICY)
        for name, body in bench.BODIES.items():
            assert len(body["messages"][1]["content"]) == 4096, name
        typical = compiled.screen_request(RequestKind.CHAT, bench.BODIES["typical"])
        assert typical.verdict is Verdict.REDACTED and len(typical.entities) == 8
        assert compiled.screen_request(RequestKind.CHAT, bench.BODIES["clean"]).verdict is Verdict.ALLOWED
        bench.main(n=3, seconds=5)
    finally:
        sys.modules.pop(spec.name, None)
    lanes = [line.split()[0] for line in capsys.readouterr().out.splitlines()]
    assert lanes == ["typical", "dense", "clean", "cold", "hostile", "no"]
