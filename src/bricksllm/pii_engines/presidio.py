"""Microsoft Presidio as the PII engine: names, addresses, dates and the national identifiers
that Presidio's recognizers know, on top of what the built-in engine finds.

Presidio's named-entity recognition needs a spaCy pipeline. spaCy's trained English models are
not published on PyPI, and nothing may be downloaded at run time, so the model must already be
installed (a package name such as `en_core_web_lg`, or a directory made by `nlp.to_disk`); the
adapter refuses to start otherwise instead of letting Presidio fetch one. Presidio's own analysis
is synchronous and CPU-bound: it runs on the adapter's thread pool.

Presidio's entity types are mapped to the gateway's names (PERSON -> name, LOCATION -> address,
US_PASSPORT -> passport_number...); types with no counterpart are ignored.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from bricksllm.domain.pii import Span
from bricksllm.pii_engines import EngineUnavailable

# Presidio entity type -> the gateway's entity name.
PRESIDIO_TO_ENTITY: dict[str, str] = {
    "PERSON": "name",
    "LOCATION": "address",
    "DATE_TIME": "date_time",
    "EMAIL_ADDRESS": "email",
    "PHONE_NUMBER": "phone",
    "CREDIT_CARD": "credit_debit_number",
    "IBAN_CODE": "international_bank_account_number",
    "IP_ADDRESS": "ip_address",
    "MAC_ADDRESS": "mac_address",
    "URL": "url",
    "US_SSN": "ssn",
    "US_ITIN": "us_individual_tax_identification_number",
    "US_PASSPORT": "passport_number",
    "US_DRIVER_LICENSE": "driver_id",
    "US_BANK_NUMBER": "bank_account_number",
    "ABA_ROUTING_NUMBER": "bank_routing",
    "UK_NHS": "uk_national_health_service_number",
    "UK_NINO": "uk_national_insurance_number",
    "IN_AADHAAR": "in_aadhaar",
    "IN_PAN": "in_permanent_account_number",
    "IN_VOTER": "in_voter_number",
    "IN_PASSPORT": "passport_number",
    "IN_VEHICLE_REGISTRATION": "license_plate",
}


class PresidioEngine:
    name = "presidio"

    def __init__(
        self, model: str, *, language: str = "en", score_threshold: float = 0.5, workers: int = 1
    ) -> None:
        try:
            import spacy
            from presidio_analyzer import AnalyzerEngine
            from presidio_analyzer.nlp_engine import SpacyNlpEngine
        except ImportError as exc:
            raise EngineUnavailable("Presidio is not installed: pip install 'bricksllm[presidio]'") from exc
        if not (spacy.util.is_package(model) or Path(model).is_dir()):
            raise EngineUnavailable(
                f"spaCy model {model!r} is not installed (install the model package, or give the "
                "directory of a saved pipeline); it is never downloaded at run time"
            )
        presidio_log = logging.getLogger("presidio-analyzer")
        level = presidio_log.level
        presidio_log.setLevel(logging.ERROR)  # one warning per recognizer of another language
        try:
            nlp = SpacyNlpEngine(models=[{"lang_code": language, "model_name": model}])
            nlp.load()
            self._analyzer: Any = AnalyzerEngine(nlp_engine=nlp, supported_languages=[language])
        finally:
            presidio_log.setLevel(level)
        self._language = language
        self._threshold = score_threshold
        supported = set(self._analyzer.get_supported_entities(language=language))
        self._by_entity: dict[str, list[str]] = {}
        for presidio_type, entity in PRESIDIO_TO_ENTITY.items():
            if presidio_type in supported:
                self._by_entity.setdefault(entity, []).append(presidio_type)
        self.entities = frozenset(self._by_entity)
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="presidio")

    async def detect(self, texts: Sequence[str], entities: frozenset[str]) -> list[list[Span]]:
        wanted = sorted({t for e in entities for t in self._by_entity.get(e, ())})
        if not wanted:
            return [[] for _ in texts]
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, self._detect, list(texts), wanted)

    def _detect(self, texts: list[str], wanted: list[str]) -> list[list[Span]]:
        out: list[list[Span]] = []
        for text in texts:
            results = self._analyzer.analyze(
                text=text, language=self._language, entities=wanted, score_threshold=self._threshold
            )
            out.append(
                sorted(
                    Span(r.start, r.end, PRESIDIO_TO_ENTITY[r.entity_type])
                    for r in results
                    if r.entity_type in PRESIDIO_TO_ENTITY
                )
            )
        return out

    async def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
