"""Adapters for the optional PII engines behind `ports.PIIEngine`; chosen in `bricksllm.app`.

    builtin.py     the in-process pattern engine (the domain's detectors) behind the same port
    presidio.py    Microsoft Presidio with an installed spaCy model (`bricksllm[presidio]`)
    comprehend.py  AWS Comprehend DetectPiiEntities (`bricksllm[comprehend]`), as the original

Each optional engine imports its library only when constructed, so a gateway without the extra
installed never pays for it. Blocking libraries run on a small thread pool of the adapter's own,
so a stuck call cannot take the default executor's threads; the caller's time bound
(`services.pii`) decides when to stop waiting.
"""

from __future__ import annotations


class EngineUnavailable(RuntimeError):
    """The engine cannot be built here (library or model not installed, bad configuration).
    Raised at start-up, never on a request."""
