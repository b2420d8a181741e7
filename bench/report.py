"""From the results of one run to a markdown report, the issue-5 target checks and a comparison.

A result file is JSON: {"meta": {...}, "lanes": {lane: {"status", "cold_start_s", ...}},
"scenarios": [{"id", "lane", "name", "baseline", "rps", "latency_ms", "ttfb_ms", "cpu_us_per_req",
...}]}. Added latency is computed here, against the `direct` lane's scenario named by `baseline`
in the same run, so two runs are never mixed.
"""

from __future__ import annotations

from typing import Any

Result = dict[str, Any]
DASH = "\u2013"


def add_deltas(results: Result) -> None:
    """Fill added_* fields: this scenario minus the direct-to-mock scenario of the same shape."""
    direct = {s["name"]: s for s in results["scenarios"] if s["lane"] == "direct" and s.get("ok")}
    for s in results["scenarios"]:
        if s["lane"] == "direct" or not s.get("ok"):
            continue
        base = direct.get(s.get("baseline") or s["name"])
        if base is None:
            continue
        for field, src in (("added_latency_ms", "latency_ms"), ("added_ttfb_ms", "ttfb_ms")):
            mine, theirs = s.get(src) or {}, base.get(src) or {}
            if mine and theirs:
                s[field] = {
                    p: round(mine[p] - theirs[p], 3) for p in ("p50", "p99") if p in mine and p in theirs
                }


def _find(results: Result, lane: str, name: str) -> Result | None:
    for s in results["scenarios"]:
        if s["lane"] == lane and s["name"] == name and s.get("ok"):
            return s
    return None


def target_checks(results: Result) -> list[tuple[str, str, bool | None]]:
    """(target, measured, met?) for each issue-5 target that this run can judge."""
    out: list[tuple[str, str, bool | None]] = []
    bare = _find(results, "passthrough", "chat c=32")
    for lane, floor in (("embedded", 0.60), ("postgres", 0.40)):
        gw = _find(results, lane, "chat c=32")
        if gw and bare and bare["rps"]:
            ratio = gw["rps"] / bare["rps"]
            out.append(
                (
                    f"{lane}: governed req/s at c=32 >= {floor:.0%} of the bare pass-through",
                    f"{gw['rps']:,.0f} / {bare['rps']:,.0f} = {ratio:.0%}",
                    ratio >= floor,
                )
            )
    lite = _find(results, "litellm", "chat c=32")
    gw = _find(results, "embedded", "chat c=32")
    if lite and gw and lite["rps"]:
        out.append(("embedded vs LiteLLM req/s at c=32 (info)", f"{gw['rps'] / lite['rps']:.0f}x", None))
    on = _find(results, "observed", "chat c=32")
    if on and gw and gw["rps"]:  # issue 9: statsd + /metrics (+ JSON logs) cost at most 10 %
        ratio = on["rps"] / gw["rps"]
        out.append(("observed: req/s at c=32 >= 90% of embedded", f"{ratio:.1%}", ratio >= 0.90))
    c1 = _find(results, "embedded", "chat c=1")
    if c1 and c1.get("added_latency_ms"):
        a = c1["added_latency_ms"]
        out.append(("embedded: added p50 at c=1 <= 0.5 ms", f"{a['p50']:.3f} ms", a["p50"] <= 0.5))
        out.append(("embedded: added p99 at c=1 <= 2 ms", f"{a['p99']:.3f} ms", a["p99"] <= 2.0))
    for name in ("stream c=1", "paced stream c=32", "stream c=32"):
        st = _find(results, "embedded", name)
        if st and st.get("added_ttfb_ms"):
            v = st["added_ttfb_ms"]["p50"]
            judged = v <= 1.0 if name != "stream c=32" else None  # saturated: includes queueing
            out.append((f"embedded: added TTFB p50 ({name}) <= 1 ms", f"{v:.3f} ms", judged))
    big = _find(results, "embedded", "100k requests c=64")
    if big and big.get("peak_rss_mb") is not None:
        # the scenario is bounded to 20 s; the target counts every request the process served
        total = big.get("served_so_far") or big["requests"]
        out.append(
            (
                "embedded: peak RSS after 100k requests <= 150 MB",
                f"{big['peak_rss_mb']:.0f} MB after {total:,} requests ({big['ok']:,} in the last scenario)",
                big["peak_rss_mb"] <= 150 if total >= 100_000 else None,
            )
        )
    lane = results["lanes"].get("embedded", {})
    if lane.get("cold_start_s") is not None:
        cs = lane["cold_start_s"]
        out.append(("embedded: cold start <= 1.5 s", f"{cs:.2f} s", cs <= 1.5))
    return out


def _f(v: float | None, fmt: str = "{:.2f}") -> str:
    return DASH if v is None else fmt.format(v)


def _pair(d: dict[str, float] | None, fmt: str = "{:.2f}") -> str:
    if not d:
        return DASH
    return f"{_f(d.get('p50'), fmt)} / {_f(d.get('p99'), fmt)}"


def _signed_pair(d: dict[str, float] | None) -> str:
    return _pair(d, "{:+.2f}")


def markdown(results: Result) -> str:
    m = results["meta"]
    lines = [
        f"# bricksllm benchmark, {m['started']} ({m['mode']})",
        "",
        f"{m['machine']}. {m['method']}"
        + (f" LiteLLM {m['litellm']}." if m.get("litellm") else "")
        + f" Commit {m.get('commit', '?')}.",
        "",
        "| lane | scenario | tool | req/s | p50 / p99 ms | added p50 / p99 ms | TTFB p50 / p99 ms "
        "| added TTFB p50 / p99 ms | CPU µs/req | CPU % | peak RSS MB | errors | others % |",
        "|---|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for s in results["scenarios"]:
        if s.get("error"):
            lines.append(f"| {s['lane']} | {s['name']} | \u2013 | failed: {s['error'][:80]} |" + " |" * 9)
            continue
        errs = sum((s.get("errors") or {}).values())
        lines.append(
            "| "
            + " | ".join(
                [
                    s["lane"],
                    s["name"],
                    s["tool"],
                    f"{s['rps']:,.0f}",
                    _pair(s.get("latency_ms")),
                    _signed_pair(s.get("added_latency_ms")),
                    _pair(s.get("ttfb_ms")),
                    _signed_pair(s.get("added_ttfb_ms")),
                    _f(s.get("cpu_us_per_req"), "{:.0f}")
                    + (
                        f" (+{s['backend_cpu_us_per_req']:.0f} db)" if s.get("backend_cpu_us_per_req") else ""
                    ),
                    _f(s.get("cpu_percent"), "{:.0f}"),
                    _f(s.get("peak_rss_mb"), "{:.0f}"),
                    f"{errs}" + (f" ({_errs(s['errors'])})" if errs else ""),
                    _f(s.get("others_percent"), "{:.0f}"),
                ]
            )
            + " |"
        )
    lines += [
        "",
        "| lane | status | cold start s | RSS idle / end MB | requests served | error lines in its log |",
        "|---|---|--:|--:|--:|--:|",
    ]
    for lane, info in results["lanes"].items():
        if lane == "direct":
            continue
        lines.append(
            f"| {lane} | {info['status']} | {_f(info.get('cold_start_s'))} "
            f"| {_f(info.get('rss_mb_idle'), '{:.0f}')} / {_f(info.get('rss_mb_end'), '{:.0f}')} "
            f"| {info.get('requests_served', 0):,} | {info.get('log_error_lines', DASH)} |"
        )
    checks = target_checks(results)
    if checks:
        lines += ["", "## Targets (issue 5)", "", "| target | measured | |", "|---|---|---|"]
        for target, measured, ok in checks:
            mark = "info" if ok is None else ("met" if ok else "**missed**")
            lines.append(f"| {target} | {measured} | {mark} |")
    profiled = [s for s in results["scenarios"] if s.get("profile")]
    if profiled:
        lines += ["", "## Profiles (py-spy, % of samples)"]
    for s in profiled:
        p = s["profile"]
        lines += ["", f"**{s['id']}** (collapsed stacks: `{p['file']}`)", ""]
        lines += ["| self | % | inclusive (the server's own code) | % |", "|---|--:|---|--:|"]
        rows = max(len(p["self"]), len(p["inclusive"]))
        for i in range(rows):
            a = p["self"][i] if i < len(p["self"]) else ("", "")
            b = p["inclusive"][i] if i < len(p["inclusive"]) else ("", "")
            lines.append(f"| `{a[0]}` | {a[1]} | `{b[0]}` | {b[1]} |")
    lines += ["", _legend()]
    return "\n".join(lines) + "\n"


def _errs(errors: dict[str, int]) -> str:
    return ", ".join(f"{k} {v}" for k, v in errors.items() if v)


def _legend() -> str:
    return (
        "Columns: req/s = successful responses per second; p50/p99 = latency of the whole response "
        "(streams: until `[DONE]`); added = this row minus the direct-to-mock row of the same shape in "
        "the same run; TTFB = request written to first body byte (Python client, streams only); "
        "CPU µs/req and CPU % = user+system CPU of the server under test (the mock itself in `direct` "
        "rows) per successful request and per second of load (postgres lane: + the CPU PostgreSQL and "
        "Redis spent per request); peak RSS = VmHWM so far; "
        "others = CPU that processes outside the benchmark took during the run, plus hypervisor steal, "
        "in % of one core: above a few % the row is noisy (a full run re-measures such rows and keeps "
        "the quietest attempt); "
        "cold start = process creation to /api/health answering 200 (on both ports for bricksllm)."
    )


def compare(new: Result, old: Result) -> str:
    """A markdown table of req/s, p50 and CPU per request, new versus old, matched by scenario id."""
    before = {s["id"]: s for s in old.get("scenarios", []) if s.get("ok")}
    rows = [
        f"## Compared with {old['meta'].get('started', '?')} ({old['meta'].get('commit', '?')})",
        "",
        "| scenario | req/s | Δ | p50 ms | Δ | CPU µs/req | Δ |",
        "|---|--:|--:|--:|--:|--:|--:|",
    ]
    for s in new["scenarios"]:
        o = before.get(s["id"])
        if o is None or not s.get("ok"):
            continue

        def delta(a: float | None, b: float | None) -> str:
            if a is None or b is None or b == 0:
                return DASH
            return f"{(a - b) / b:+.0%}"

        p_new, p_old = (s.get("latency_ms") or {}).get("p50"), (o.get("latency_ms") or {}).get("p50")
        c_new, c_old = s.get("cpu_us_per_req"), o.get("cpu_us_per_req")
        rows.append(
            f"| {s['id']} | {o['rps']:,.0f} → {s['rps']:,.0f} | {delta(s['rps'], o['rps'])} "
            f"| {_f(p_old)} → {_f(p_new)} | {delta(p_new, p_old)} "
            f"| {_f(c_old, '{:.0f}')} → {_f(c_new, '{:.0f}')} | {delta(c_new, c_old)} |"
        )
    return "\n".join(rows) + "\n"
