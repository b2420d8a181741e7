"""Microbenchmark of PII screening: what a policy costs per request, without HTTP.

    .venv/bin/python bench/pii.py [--n 2000] [--seconds 60]

Lanes, each a 4 KB chat prompt (system + user message) screened with a policy of every built-in
pattern entity (`allow_but_redact`) plus three regexes (two redact, one warn), timed from the
parsed body to the bytes to forward (screening, redaction, re-serialising with orjson):

    typical    a support conversation with eight PII items (email, phone, card, expiry, CVV,
               IBAN, IP address, URL) among ordinary prose
    dense      the same items repeated in every paragraph (~60 items in 4 KB)
    clean      prose and numbers, no PII
    cold       `typical` with every validator's cache cleared before each request (a first-seen
               conversation; chat clients resend the history, so most texts were seen before)
    hostile    4 KB of digit groups and separators, what the digit detectors like least
    no policy  a key without a policy: the caller's `policy_id` check, and nothing else

The targets (issue 10): <= 2 ms at p50 for the 4 KB prompt, and nothing measurable without a
policy. Each lane stops after --n requests or --seconds, whichever comes first.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from typing import Any

import orjson

from bricksllm.domain.pii import BUILTIN_ENTITIES, CompiledPolicy, RequestKind, parse_policy, validators

POLICY = parse_policy({
    "config": {"rules": dict.fromkeys(sorted(BUILTIN_ENTITIES), "allow_but_redact")},
    "regexConfig": {"rules": [
        {"definition": r"(?i)project\s+[a-z]+", "action": "allow_but_redact"},
        {"definition": r"\bEMP-\d{6}\b", "action": "allow_but_redact"},
        {"definition": r"(?i)\bconfidential\b", "action": "allow_but_warn"},
    ]},
})  # fmt: skip

PROSE = (
    "Thanks for getting back to me so quickly. I went through the onboarding guide again and the "
    "dashboard still shows the old plan after the upgrade, even though the invoice says otherwise. "
    "Our team of 14 people relies on the reporting view every Monday at 9:30, and last week the "
    "export took about 45 seconds before failing with error 502. We are on version 3.2.1 of the "
    "desktop app and the browser extension 1.8. Could you check whether the migration finished? "
)
TYPICAL_PII = (
    "You can reach me at maria.gonzalez@example.org or on (415) 555-0132. The card on file is "
    "4111 1111 1111 1111, exp 08/27, CVV 123, and refunds can go to GB82 WEST 1234 5698 7654 32. "
    "Our office gateway is 203.0.113.42 and the status page is https://status.example.org/incidents/7. "
)
DENSE = (
    "Contact john.smith@example.com or call (415) 555-0132 about Project Apollo. The server at "
    "10.0.0.12 is down, see https://wiki.example.com/ops/runbook. Employee EMP-123456 paid with "
    "4111 1111 1111 1111 exp 12/27 cvv 123. Version 2.3.1 grew 12% to 4,500,000 USD. "
)


def _fill(pieces: list[str], size: int = 4096) -> str:
    text = "".join(pieces)
    while len(text) < size:
        text += PROSE
    return text[:size]


def _body(user: str) -> dict[str, Any]:
    return {
        "model": "gpt-4o-mini",
        "temperature": 0.2,
        "messages": [
            {"role": "system", "content": "You are a helpful support assistant for Example Corp."},
            {"role": "user", "content": user},
        ],
    }


BODIES = {
    "typical": _body(_fill([PROSE, TYPICAL_PII, PROSE])),
    "dense": _body(_fill([DENSE] * 30)),
    "clean": _body(_fill([PROSE])),
    "hostile": _body(_fill(["12 3456-78 90.12 3 4 56 78-9 0 " * 140])),
}


Samples = tuple[list[float], list[float]]  # wall-clock ms, CPU ms of this thread


def _lane(
    run: Callable[[], object], n: int, seconds: float, before: Callable[[], None] | None = None
) -> Samples:
    for _ in range(min(50, n)):
        run()
    wall: list[float] = []
    cpu: list[float] = []
    deadline = time.monotonic() + seconds
    while len(wall) < n and time.monotonic() < deadline:
        if before is not None:
            before()
        start, start_cpu = time.perf_counter_ns(), time.thread_time_ns()
        run()
        cpu.append((time.thread_time_ns() - start_cpu) / 1e6)
        wall.append((time.perf_counter_ns() - start) / 1e6)
    return wall, cpu


def _pct(samples: list[float], q: float) -> float:
    if q == 0.5:
        return statistics.median(samples)
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))]


def _report(name: str, samples: Samples, extra: str = "") -> None:
    """Wall-clock p50/p99, and the thread's CPU time at p50 (what a busy, shared machine does not
    inflate: waiting for a core is not counted)."""
    wall, cpu = samples
    p50, p99, cpu50 = _pct(wall, 0.5), _pct(wall, 0.99), _pct(cpu, 0.5)
    unit, scale = ("ms", 1.0) if p50 >= 0.01 else ("µs", 1000.0)
    print(
        f"{name:10s} p50 {p50 * scale:8.3f} {unit}  p99 {p99 * scale:8.3f} {unit}  "
        f"cpu p50 {cpu50 * scale:8.3f} {unit}  n={len(wall)}{extra}"
    )


def main(n: int, seconds: float) -> None:
    compiled = CompiledPolicy(POLICY)

    def screen(body: dict[str, Any]) -> bytes:
        outcome = compiled.screen_request(RequestKind.CHAT, body)
        return orjson.dumps(outcome.body) if outcome.body is not None else b""

    for name in ("typical", "dense", "clean"):
        body = BODIES[name]
        outcome = compiled.screen_request(RequestKind.CHAT, body)
        _report(name, _lane(lambda b=body: screen(b), n, seconds),  # type: ignore[misc]
                f"  {outcome.verdict.value}, {len(outcome.entities)} types")  # fmt: skip

    _report("cold", _lane(lambda: screen(BODIES["typical"]), n, seconds, validators.clear_caches))
    _report("hostile", _lane(lambda: screen(BODIES["hostile"]), n, seconds))

    # A key without a policy: the caller's check and nothing else. One call is below the
    # clock's resolution, so the lane times batches of 1000 and reports the cost per call.
    policies: dict[str, CompiledPolicy] = {"p1": compiled}
    key_policy_id = ""

    def no_policy_batch() -> object:
        found = None
        for _ in range(1000):
            found = policies.get(key_policy_id) if key_policy_id else None
        return found

    wall, cpu = _lane(no_policy_batch, n, seconds)
    _report("no policy", ([w / 1000 for w in wall], [c / 1000 for c in cpu]), "  (per call)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--seconds", type=float, default=60.0)
    args = parser.parse_args()
    main(args.n, args.seconds)
