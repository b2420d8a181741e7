"""Admin API schemas of the reports: usage over time and each key's spend."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from bricksllm.domain.models import micros_to_usd
from bricksllm.http.admin_schemas import MAX_COUNT, CamelRequest, CamelResponse, NonEmpty, Timestamp
from bricksllm.ports import DataPoint, Report
from bricksllm.services.admin import KeyUsage


class ReportRequest(CamelRequest):
    key_ids: list[NonEmpty] = []
    tags: list[NonEmpty] = []
    custom_ids: list[NonEmpty] = []
    start: Timestamp
    end: Timestamp
    increment: Annotated[int, Field(gt=0, le=MAX_COUNT, description="bucket width in seconds")]


class DataPointOut(CamelResponse):
    time_stamp: int
    number_of_requests: int
    cost_in_usd: float
    latency_in_ms: float = Field(description="mean latency of the bucket's requests; 0 when empty")
    prompt_token_count: int
    completion_token_count: int
    success_count: int = Field(description="requests answered with a 2xx status")
    latency_in_ms_median: float = Field(description="median latency of the bucket; 0 when empty")
    latency_in_ms_99th: float = Field(
        serialization_alias="latencyInMs99th", description="99th percentile latency of the bucket; 0 if empty"
    )

    @classmethod
    def from_domain(cls, p: DataPoint) -> DataPointOut:
        n = p.number_of_requests
        return cls(
            time_stamp=p.time_stamp,
            number_of_requests=n,
            cost_in_usd=micros_to_usd(p.cost_micros),
            latency_in_ms=p.latency_sum_ms / n if n else 0.0,
            prompt_token_count=p.prompt_token_count,
            completion_token_count=p.completion_token_count,
            success_count=p.success_count,
            latency_in_ms_median=p.latency_p50_ms,
            latency_in_ms_99th=p.latency_p99_ms,
        )


class ReportOut(CamelResponse):
    data_points: list[DataPointOut]
    latency_in_ms_median: float
    latency_in_ms_99th: float = Field(serialization_alias="latencyInMs99th")

    @classmethod
    def from_domain(cls, r: Report) -> ReportOut:
        return cls(
            data_points=[DataPointOut.from_domain(p) for p in r.data_points],
            latency_in_ms_median=r.latency_median_ms,
            latency_in_ms_99th=r.latency_p99_ms,
        )


class KeySpendOut(CamelResponse):
    id: str
    cost_in_micro_dollars: int
    cost_in_usd: float


class KeyUsageOut(KeySpendOut):
    """A key's all-time spend and its spend in the current window of `costLimitInUsdUnit`."""

    cost_in_usd_over_time: float = Field(
        description="spend in the current costLimitInUsdUnit window, from recorded events; 0 without a unit"
    )
    window_start: int | None = Field(description="start of that window (unix seconds); null without a unit")
    window_end: int | None = Field(description="end of that window (exclusive); null without a unit")

    @classmethod
    def from_domain(cls, u: KeyUsage) -> KeyUsageOut:
        return cls(
            id=u.key_id,
            cost_in_micro_dollars=u.spend_micros,
            cost_in_usd=micros_to_usd(u.spend_micros),
            cost_in_usd_over_time=micros_to_usd(u.window_spend_micros),
            window_start=u.window.start if u.window else None,
            window_end=u.window.end if u.window else None,
        )
