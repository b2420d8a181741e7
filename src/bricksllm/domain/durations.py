"""The one duration syntax of the gateway: key TTLs, timeouts in settings and headers, route
retry intervals and cache lifetimes all read durations here.

A duration is a bare number of seconds ("1.5") or one or more number-unit parts with units
ms, s, m, h, d ("500ms", "2d", "1h30m"). Anything else, a non-finite or negative value, or one
longer than `MAX_SECONDS` (about a century: beyond it a duration is a mistake, and timestamps
would overflow) raises ValueError with a message that names the accepted forms.
"""

from __future__ import annotations

import math
import re

MAX_SECONDS = 100 * 365 * 86_400
_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")
_UNIT = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86_400.0}
_HELP = "use seconds or a number with a unit ms, s, m, h or d (e.g. 500ms, 30s, 2d, 1h30m)"


def parse_duration(text: str) -> float:
    """Seconds, >= 0."""
    s = text.strip()
    if not s:
        raise ValueError(f"empty duration: {_HELP}")
    if re.fullmatch(r"\d+(?:\.\d+)?", s):
        total = float(s)
    else:
        pos, total = 0, 0.0
        for m in _PART.finditer(s):
            if m.start() != pos:
                break
            total += float(m.group(1)) * _UNIT[m.group(2)]
            pos = m.end()
        if pos != len(s) or pos == 0:
            raise ValueError(f"invalid duration {text!r}: {_HELP}")
    if not math.isfinite(total) or total > MAX_SECONDS:
        raise ValueError(f"duration {text!r} is longer than 100 years")
    return total


def parse_ttl(text: str) -> int:
    """A key's time to live in whole seconds (at least one)."""
    seconds = parse_duration(text)
    if seconds < 1:
        raise ValueError(f"invalid duration {text!r}: a time to live is at least 1s")
    return int(seconds)
