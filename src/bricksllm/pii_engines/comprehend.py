"""AWS Comprehend's DetectPiiEntities as the PII engine, for parity with the original gateway.

One call per text (in parallel, bounded by the adapter's pool), `LanguageCode` en, like the
original; texts over Comprehend's 100 KB limit are sent in pieces and the offsets shifted back.
boto3 is synchronous, so calls run on the adapter's own threads, with botocore's connect and read
timeouts set and retries off: the caller's time bound and fail-open/closed decide, not a retry
loop. Credentials come from the arguments or boto3's usual chain; they are never logged.
Comprehend's types are the gateway's entity names in upper case (EMAIL -> email).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from bricksllm.domain.pii import ENTITIES, Span
from bricksllm.pii_engines import EngineUnavailable

MAX_BYTES = 100_000  # DetectPiiEntities' limit on the UTF-8 size of one text


class ComprehendEngine:
    name = "comprehend"
    entities = ENTITIES - {"api_key"}

    def __init__(
        self,
        *,
        region: str,
        endpoint_url: str | None = None,
        access_key_id: str | None = None,
        secret_access_key: str | None = None,
        session_token: str | None = None,
        timeout: float = 5.0,
        concurrency: int = 8,
        language: str = "en",
        score_threshold: float = 0.5,
    ) -> None:
        try:
            import boto3
            from botocore.config import Config
        except ImportError as exc:
            raise EngineUnavailable("boto3 is not installed: pip install 'bricksllm[comprehend]'") from exc
        config = Config(
            connect_timeout=timeout,
            read_timeout=timeout,
            retries={"max_attempts": 1, "mode": "standard"},
            max_pool_connections=concurrency,
        )
        self._client: Any = boto3.client(
            "comprehend",
            region_name=region,
            endpoint_url=endpoint_url,
            aws_access_key_id=access_key_id,
            aws_secret_access_key=secret_access_key,
            aws_session_token=session_token,
            config=config,
        )
        self._language = language
        self._threshold = score_threshold
        self._pool = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="comprehend")

    async def detect(self, texts: Sequence[str], entities: frozenset[str]) -> list[list[Span]]:
        loop = asyncio.get_running_loop()
        calls = [loop.run_in_executor(self._pool, self._detect, text, entities) for text in texts]
        return list(await asyncio.gather(*calls))

    def _detect(self, text: str, entities: frozenset[str]) -> list[Span]:
        spans: list[Span] = []
        for offset, piece in pieces(text):
            if not piece.strip():
                continue
            answer = self._client.detect_pii_entities(Text=piece, LanguageCode=self._language)
            for found in answer.get("Entities", ()):
                entity = str(found.get("Type", "")).lower()
                if entity in entities and float(found.get("Score", 0.0)) >= self._threshold:
                    start, end = int(found["BeginOffset"]), int(found["EndOffset"])
                    spans.append(Span(offset + start, offset + end, entity))
        return sorted(spans)

    async def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._client.close()


def pieces(text: str, limit: int = MAX_BYTES) -> list[tuple[int, str]]:
    """`text` cut into (offset, piece) with each piece at most `limit` bytes of UTF-8, cut at
    whitespace when there is some in the last quarter of the piece."""
    out: list[tuple[int, str]] = []
    start = 0
    while start < len(text):
        end = min(len(text), start + limit)
        while len(text[start:end].encode()) > limit:
            end -= max(1, (len(text[start:end].encode()) - limit) // 4)
        if end < len(text):
            cut = max(text.rfind(" ", start, end), text.rfind("\n", start, end))
            if cut > start + (end - start) * 3 // 4:
                end = cut + 1
        out.append((start, text[start:end]))
        start = end
    return out
