"""CPU time and memory of a process tree, read from /proc (Linux only).

CPU is utime + stime of the process and its live descendants (threads are included in their
process's counters); memory is VmHWM (peak resident set) and VmRSS (current), summed over the
tree. Where /proc is missing every reading is None and the report shows a dash.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

_PROC = Path("/proc")
_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def tree_pids(root: int) -> list[int]:
    """`root` and every live descendant of it."""
    children: dict[int, list[int]] = {}
    try:
        entries = [p for p in _PROC.iterdir() if p.name.isdigit()]
    except OSError:
        return [root]
    for p in entries:
        try:
            stat = (p / "stat").read_text()
        except OSError:
            continue
        # the command name is in parentheses and may contain spaces: split after the last ")"
        fields = stat[stat.rindex(")") + 2 :].split()
        children.setdefault(int(fields[1]), []).append(int(p.name))
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(children.get(pid, []))
    return out


def cpu_seconds(root: int) -> float | None:
    """utime + stime of the tree, in seconds (resolution: one clock tick, usually 10 ms)."""
    total, seen = 0, False
    for pid in tree_pids(root):
        try:
            stat = (_PROC / str(pid) / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        total += int(fields[11]) + int(fields[12])  # fields 14 and 15 of proc(5), 0-based after ")"
        seen = True
    return total / _TICK if seen else None


def _status_kb(pid: int, key: str) -> int | None:
    try:
        for line in (_PROC / str(pid) / "status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


@dataclass(frozen=True)
class Memory:
    peak_rss_mb: float | None
    rss_mb: float | None


def memory(root: int) -> Memory:
    peak = [v for pid in tree_pids(root) if (v := _status_kb(pid, "VmHWM")) is not None]
    cur = [v for pid in tree_pids(root) if (v := _status_kb(pid, "VmRSS")) is not None]
    return Memory(
        peak_rss_mb=round(sum(peak) / 1024, 1) if peak else None,
        rss_mb=round(sum(cur) / 1024, 1) if cur else None,
    )


def machine_busy_seconds() -> tuple[float, float] | None:
    """(user + nice + system + irq + softirq, steal) of all CPUs since boot, in CPU-seconds.

    Interrupt time is included because a process's own counters include the softirq work done on
    its behalf (loopback packet delivery) while /proc/stat files it under softirq. Steal is time
    the hypervisor gave our virtual CPUs to someone else.
    """
    try:
        for line in (_PROC / "stat").read_text().splitlines():
            if line.startswith("cpu "):
                f = line.split()
                busy = int(f[1]) + int(f[2]) + int(f[3]) + int(f[6]) + int(f[7])
                return busy / _TICK, int(f[8]) / _TICK
    except (OSError, IndexError):
        return None
    return None


def own_cpu_seconds(pids: list[int]) -> float:
    """CPU of the harness: itself, its reaped children (load generators) and the given live trees."""
    import resource

    total = 0.0
    for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN):
        r = resource.getrusage(who)
        total += r.ru_utime + r.ru_stime
    for pid in pids:
        total += cpu_seconds(pid) or 0.0
    return total


def pids_by_comm(prefixes: tuple[str, ...]) -> list[int]:
    """PIDs whose command name starts with one of `prefixes` (to watch, never to signal)."""
    out: list[int] = []
    try:
        entries = [p for p in _PROC.iterdir() if p.name.isdigit()]
    except OSError:
        return out
    for p in entries:
        try:
            comm = (p / "comm").read_text().strip()
        except OSError:
            continue
        if comm.startswith(prefixes):
            out.append(int(p.name))
    return out


def cpu_of(pids: list[int]) -> dict[int, float]:
    """CPU seconds of each given process alone (not its tree)."""
    out = {}
    for pid in pids:
        try:
            stat = (_PROC / str(pid) / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        out[pid] = (int(fields[11]) + int(fields[12])) / _TICK
    return out
