"""PII screening, pure: entity names, the built-in detectors, policies and in-place redaction.

    entities.py   the entity names, which the built-in engine finds, placeholders
    detectors.py  the built-in engine: patterns + checksums/format rules/keywords, one row each
    policy.py     Policy (entity, regex and custom rules; actions), parse/validate admin documents
    locations.py  where the texts are in each kind of request/response; copy-on-write rebuild
    scanner.py    CompiledPolicy: scan texts, merge hits, redact, decide the verdict

No I/O here: optional engines (Presidio, AWS Comprehend) are adapters in `bricksllm.pii_engines`
behind `ports.PIIEngine`; their spans come back into `CompiledPolicy.finish`.
"""

from __future__ import annotations

from bricksllm.domain.pii.entities import (
    ALL,
    BUILTIN_ENTITIES,
    ENTITIES,
    NLP_ENTITIES,
    canonical,
    placeholder,
)
from bricksllm.domain.pii.locations import (
    RequestKind,
    ResponseKind,
    Slot,
    parse_path,
    rebuild,
    request_texts,
    response_texts,
)
from bricksllm.domain.pii.policy import (
    BUILTIN_ONLY,
    Action,
    Capabilities,
    CustomRule,
    Policy,
    PolicyProblems,
    RegexRule,
    parse_policy,
    policy_document,
    regex_problem,
)
from bricksllm.domain.pii.scanner import (
    ALLOWED,
    CompiledPolicy,
    Hit,
    Outcome,
    Prepared,
    Span,
    Verdict,
    compile_all,
    redact,
)

__all__ = [
    "ALL",
    "ALLOWED",
    "BUILTIN_ENTITIES",
    "BUILTIN_ONLY",
    "ENTITIES",
    "NLP_ENTITIES",
    "Action",
    "Capabilities",
    "CompiledPolicy",
    "CustomRule",
    "Hit",
    "Outcome",
    "Policy",
    "PolicyProblems",
    "Prepared",
    "RegexRule",
    "RequestKind",
    "ResponseKind",
    "Slot",
    "Span",
    "Verdict",
    "canonical",
    "compile_all",
    "parse_path",
    "parse_policy",
    "placeholder",
    "policy_document",
    "rebuild",
    "redact",
    "regex_problem",
    "request_texts",
    "response_texts",
]
