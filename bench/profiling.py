"""Optional sampling profiles of the server under test (`run.py --profile`), with py-spy.

py-spy samples the running process from outside (no code change, little overhead with
--nonblocking) and writes collapsed stacks ("frame;frame;frame count" per line), which
speedscope.app or flamegraph.pl render. The harness also summarises them: the functions where
the samples land (self) and, for the gateway's own package, the functions on the stack (inclusive).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

from loadgen import taskset_prefix

_FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^()]*?)(?::(?P<line>\d+))?\)$")


def find_py_spy(explicit: str | None) -> str | None:
    if explicit:
        return explicit
    beside = Path(sys.executable).with_name("py-spy")
    return str(beside) if beside.exists() else shutil.which("py-spy")


def start(py_spy: str, pid: int, seconds: float, out: Path, core: int | None) -> subprocess.Popen[bytes]:
    cmd = [
        *taskset_prefix(core),
        py_spy,
        "record",
        "--pid",
        str(pid),
        "--duration",
        str(max(1, int(seconds))),
        "--rate",
        "250",
        "--format",
        "raw",
        "--nonblocking",
        "--output",
        str(out),
    ]
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def finish(proc: subprocess.Popen[bytes], timeout: float) -> None:
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _short(frame: str) -> str:
    m = _FRAME.match(frame.strip())
    if not m:
        return frame.strip()
    file = m.group("file")
    for marker in ("site-packages/", "src/", "lib/python3"):
        if marker in file:
            file = file.split(marker, 1)[1]
            break
    return f"{m.group('func')} ({file})"


def summarise(path: Path, package: str = "bricksllm/", top: int = 12) -> dict[str, list[tuple[str, float]]]:
    """Top functions by self and by inclusive share of the samples ({"self": [...], "inclusive": [...]})."""
    self_c: Counter[str] = Counter()
    incl_c: Counter[str] = Counter()
    total = 0
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        total += n
        frames = stack.split(";")
        self_c[_short(frames[-1])] += n
        for f in {_short(f) for f in frames if package in f}:
            incl_c[f] += n
    if not total:
        return {"self": [], "inclusive": []}
    return {
        "self": [(f, round(100 * n / total, 1)) for f, n in self_c.most_common(top)],
        "inclusive": [(f, round(100 * n / total, 1)) for f, n in incl_c.most_common(top)],
        "samples": [("total", float(total))],
    }
