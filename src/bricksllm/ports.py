"""The small interfaces the services need; storage and telemetry implement them.

Concrete classes are chosen only in `bricksllm.app` (the composition root). Every storage
backend passes the same contract suite in tests/contract/.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from multidict import CIMultiDict, CIMultiDictProxy

from bricksllm.domain.limits import Admission, Reservation
from bricksllm.domain.models import CustomProvider, Event, Key, Limit, PolicyRecord, ProviderSetting
from bricksllm.domain.routes import Route

if TYPE_CHECKING:  # the PII package loads phonenumbers and RE2: only its users pay for that
    from bricksllm.domain.pii import Span


@dataclass(frozen=True, slots=True)
class ConfigSnapshot:
    """Everything the proxy needs to decide on a request, loaded at once."""

    version: int
    keys: Sequence[Key]
    settings: Sequence[ProviderSetting]
    custom_providers: Sequence[CustomProvider]
    policies: Sequence[PolicyRecord] = ()
    routes: Sequence[Route] = ()
    budgets: Mapping[str, tuple[Limit, ...]] = field(default_factory=dict)  # tag -> its budget


class ConfigStore(Protocol):
    """Keys, provider settings, custom providers and policies. Every write bumps `version()`."""

    async def create_key(self, key: Key) -> None: ...  # Conflict if key_hash exists
    async def update_key(self, key: Key) -> None: ...  # NotFound if absent
    async def delete_key(self, key_id: str) -> bool: ...
    async def get_key(self, key_id: str) -> Key | None: ...
    async def list_keys(self) -> list[Key]: ...

    async def create_setting(self, setting: ProviderSetting) -> None: ...
    async def update_setting(self, setting: ProviderSetting) -> None: ...  # NotFound if absent
    async def get_setting(self, setting_id: str) -> ProviderSetting | None: ...
    async def list_settings(self) -> list[ProviderSetting]: ...

    async def create_custom_provider(self, provider: CustomProvider) -> None: ...  # Conflict on name
    async def update_custom_provider(self, provider: CustomProvider) -> None: ...
    async def get_custom_provider(self, provider_id: str) -> CustomProvider | None: ...
    async def list_custom_providers(self) -> list[CustomProvider]: ...

    async def create_policy(self, policy: PolicyRecord) -> None: ...
    async def update_policy(self, policy: PolicyRecord) -> None: ...  # NotFound if absent
    async def delete_policy(self, policy_id: str) -> bool: ...
    async def get_policy(self, policy_id: str) -> PolicyRecord | None: ...
    async def list_policies(self) -> list[PolicyRecord]: ...

    async def create_route(self, route: Route) -> None: ...  # Conflict if the path is taken
    async def update_route(self, route: Route) -> None: ...  # NotFound if absent, Conflict on path
    async def delete_route(self, route_id: str) -> bool: ...
    async def get_route(self, route_id: str) -> Route | None: ...
    async def list_routes(self) -> list[Route]: ...
    async def put_budget(self, tag: str, limits: tuple[Limit, ...], now: int) -> None: ...  # create/replace
    async def delete_budget(self, tag: str) -> bool: ...
    async def list_budgets(self) -> dict[str, tuple[Limit, ...]]: ...

    async def version(self) -> int: ...
    async def snapshot(self) -> ConfigSnapshot: ...
    async def listen(self, on_change: Callable[[], None]) -> None:
        """Call `on_change` when another process writes (best effort; polling `version` backs it)."""
        ...

    async def close(self) -> None: ...


@dataclass(frozen=True, slots=True)
class EventQuery:
    key_ids: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()  # an event matches when it carries all of them
    custom_id: str = ""
    start: int | None = None  # inclusive, unix seconds
    end: int | None = None  # exclusive
    models: tuple[str, ...] = ()  # any of them
    statuses: tuple[tuple[int, int], ...] = ()  # half-open [low, high) ranges; any of them
    limit: int = 100
    offset: int = 0
    correlation_id: str = ""  # the x-bricksllm-request-id of the request
    include_bodies: bool = False  # also read the captured request and response bodies


@dataclass(frozen=True, slots=True)
class ReportQuery:
    start: int
    end: int
    increment: int
    key_ids: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    custom_ids: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class DataPoint:
    time_stamp: int
    number_of_requests: int = 0
    cost_micros: int = 0
    latency_sum_ms: int = 0
    prompt_token_count: int = 0
    completion_token_count: int = 0
    success_count: int = 0
    latency_p50_ms: float = 0.0  # percentiles of the bucket's latencies; 0 when empty
    latency_p99_ms: float = 0.0


@dataclass(frozen=True, slots=True)
class Report:
    data_points: list[DataPoint] = field(default_factory=list)
    latency_median_ms: float = 0.0
    latency_p99_ms: float = 0.0


class EventStore(Protocol):
    async def insert_events(self, events: Sequence[Event]) -> None: ...
    async def query_events(self, query: EventQuery) -> list[Event]: ...
    async def count_events(self, query: EventQuery) -> int:
        """How many events match the query's filters (its limit and offset ignored)."""
        ...

    async def report(self, query: ReportQuery) -> Report: ...
    async def key_usage(self, key_id: str, since: int) -> tuple[int, int]:
        """(admitted requests, cost in micro-dollars) of a key's events since `since`."""
        ...

    async def usage(self, query: EventQuery) -> tuple[int, int, int]:
        """(admitted requests, micro-dollars, input + output tokens) of the events matching the
        query's key ids, tags (all of them), models and start."""
        ...

    async def close(self) -> None: ...


class Counters(Protocol):
    """Live request, spend and token counters, shared by every instance that uses the same backend."""

    async def admit(self, reservation: Reservation) -> Admission:
        """Atomically: drop expired reservations, apply `domain.limits.decide` to the plan, and if
        admitted count the request on each request quota and reserve the estimates on each spend
        and token quota."""
        ...

    async def settle(self, reservation: Reservation, cost: int, tokens: int) -> None:
        """Atomically replace the reservation by the actual cost and tokens on every spend and
        token quota of its plan (and count the request if it was not counted). Settling the same
        reservation again changes nothing, so a settlement whose answer was lost may be retried."""
        ...

    async def spend(self, key_id: str) -> int:
        """The key's all-time spend in micro-dollars."""
        ...

    async def seed(self, counter_id: str, value: int, expires_at: int | None) -> None:
        """Set a counter that does not exist yet (start-up rebuild from recorded events)."""
        ...

    async def close(self) -> None: ...


class Metrics(Protocol):
    """Names and tags are declared in `telemetry.catalogue`; implementations never raise."""

    def incr(self, name: str, value: int = 1, tags: Mapping[str, str] | None = None) -> None: ...
    def timing(self, name: str, ms: float, tags: Mapping[str, str] | None = None) -> None: ...
    def gauge(self, name: str, value: float, tags: Mapping[str, str] | None = None) -> None: ...
    def histogram(self, name: str, value: float, tags: Mapping[str, str] | None = None) -> None: ...


class RequestPolicy(Protocol):
    """A hook in the proxy pipeline (PII screening comes here). Raise Forbidden to block;
    return the body to forward (the same bytes when nothing changed)."""

    async def inspect(self, key: Key, model: str, body: bytes, parsed: Any) -> bytes: ...


# --- the upstream seam -------------------------------------------------------------------------

Headers = CIMultiDict[str] | CIMultiDictProxy[str]  # case-insensitive, several values per name


@dataclass(frozen=True, slots=True)
class UpstreamRequest:
    """One request to a provider, fully built: nothing in it is decided by the adapter."""

    method: str
    url: str  # absolute and already percent-encoded; sent as is
    headers: tuple[tuple[str, str], ...]
    body: bytes | AsyncIterable[bytes] = b""  # an iterable is streamed (uploads), never buffered
    timeout: float = 600.0  # seconds for the whole exchange, answer body included


class UpstreamResponse(Protocol):
    """An answer whose body has not been read yet. Transport failures while reading raise
    `errors.UpstreamError` (or `UpstreamTimeout`), like `Upstream.send` does."""

    @property
    def status(self) -> int: ...
    @property
    def headers(self) -> Headers: ...

    def chunks(self) -> AsyncIterator[bytes]:
        """The body as it arrives (transfer encoding removed, content left as sent)."""
        ...

    async def read(self, limit: int) -> bytes:
        """The whole body; `errors.UpstreamError` beyond `limit` bytes."""
        ...

    async def aclose(self) -> None:
        """Release the connection (closing it when the body was not read to the end)."""
        ...


class Upstream(Protocol):
    """How the proxy reaches providers: one method, like httpx's transport. Adapters translate
    their own exceptions into `errors.UpstreamError` (502) and `errors.UpstreamTimeout` (504)."""

    async def send(self, request: UpstreamRequest) -> UpstreamResponse: ...
    async def close(self) -> None: ...


# --- optional PII engines ----------------------------------------------------------------------


class PIIEngine(Protocol):
    """An engine that finds entities the built-in patterns cannot (names, addresses...), such as
    Presidio or AWS Comprehend. Adapters live in `bricksllm.pii_engines`; `services.pii` calls
    them with a time bound and turns any exception into the policy's fail-open/closed outcome,
    so an adapter may simply raise."""

    name: str
    entities: frozenset[str]  # the gateway's entity names this engine finds

    async def detect(self, texts: Sequence[str], entities: frozenset[str]) -> list[list[Span]]:
        """For each text, the spans of the requested entities (character offsets)."""
        ...

    async def close(self) -> None: ...


# --- routes: circuit breaker and response cache ------------------------------------------------


class Breaker(Protocol):
    """Per-upstream circuit breaker state: an upstream that failed `failures` times in a row is
    skipped for a cool-down (then tried again; one more failure opens it again). Shared by every
    instance on Redis. Raises `errors.Unavailable` when its store cannot be reached."""

    async def allow(self, upstream: str) -> bool: ...
    async def record(self, upstream: str, ok: bool) -> None: ...
    async def close(self) -> None: ...


class ResponseCache(Protocol):
    """Exact-match answers of routes, by cache key (`domain.routes.cache_key`). Raises
    `errors.Unavailable` when its store cannot be reached."""

    async def get(self, key: str) -> bytes | None: ...
    async def put(self, key: str, value: bytes, ttl: float) -> None:
        """Keep `value` for `ttl` seconds (or until evicted)."""
        ...

    async def close(self) -> None: ...
