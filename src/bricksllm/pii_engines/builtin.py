"""The built-in pattern engine behind the engine port.

The proxy does not need this adapter - `CompiledPolicy` runs the same detectors inline, without a
thread hop - but it lets the built-in engine stand wherever an engine is expected (response
scanning with an engine-only policy, tests of the port, benchmarks that compare engines).
"""

from __future__ import annotations

from collections.abc import Sequence

from bricksllm.domain.pii import BUILTIN_ENTITIES, Span
from bricksllm.domain.pii.detectors import DETECTORS


class BuiltinEngine:
    name = "builtin"
    entities = BUILTIN_ENTITIES

    async def detect(self, texts: Sequence[str], entities: frozenset[str]) -> list[list[Span]]:
        detectors = [d for d in DETECTORS if d.entity in entities]
        return [
            sorted({Span(start, end, d.entity) for d in detectors for start, end in d.find(text)})
            for text in texts
        ]

    async def close(self) -> None:
        return None
