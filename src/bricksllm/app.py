"""The composition root: settings -> concrete stores -> services -> the two servers.

This is the only module that knows which storage, counter and metrics implementations exist.
Tests build a `Gateway` from `Settings` exactly as `bricksllm serve` does.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import resource
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from aiohttp import web

from bricksllm.domain.pii import BUILTIN_ONLY, Capabilities
from bricksllm.errors import BricksError, Unavailable
from bricksllm.http import server_logs
from bricksllm.http.admin_app import create_admin_app
from bricksllm.http.admin_budgets import budget_operations
from bricksllm.http.admin_metrics import create_metrics_app
from bricksllm.http.admin_policies import policy_operations
from bricksllm.http.admin_routes import route_operations
from bricksllm.http.fast_server import FastServer, ServerLimits
from bricksllm.http.proxy_app import create_proxy_app
from bricksllm.outages import OutageLog
from bricksllm.pii_engines import EngineUnavailable
from bricksllm.ports import Breaker, Counters, Metrics, PIIEngine, ResponseCache, Upstream
from bricksllm.providers.registry import ProviderRegistry
from bricksllm.services.admin import AdminService
from bricksllm.services.admin_budgets import BudgetAdmin
from bricksllm.services.admin_policies import PolicyAdmin
from bricksllm.services.admin_routes import RouteAdmin
from bricksllm.services.config_cache import ConfigCache
from bricksllm.services.events import EventWriter
from bricksllm.services.limits import Limits
from bricksllm.services.limits_seed import seed_counters
from bricksllm.services.pii import PIIScreener
from bricksllm.services.pii_guard import PIIGuard
from bricksllm.services.proxy import ProxyService
from bricksllm.services.routes import ProxyFront, RouteService
from bricksllm.services.spend_estimate import Estimator
from bricksllm.settings import Settings
from bricksllm.storage.memory_counters import MemoryCounters
from bricksllm.storage.memory_routes import MemoryBreaker, MemoryCache
from bricksllm.storage.sql import open_stores
from bricksllm.telemetry.metrics import NullMetrics
from bricksllm.telemetry.request_log import RequestLogger
from bricksllm.telemetry.setup import telemetry_from_settings
from bricksllm.upstream.fast import FastUpstream
from bricksllm.upstream.proxies import Proxies

log = logging.getLogger("bricksllm")
T = TypeVar("T")


async def until_available(start: Callable[[], Awaitable[T]], what: str, patience: float) -> T:
    """`start()`, retried with capped exponential backoff while `what` is unavailable (a
    database starting after the gateway, as in a fresh docker compose), for up to `patience`
    seconds; the wait is logged once. Then the last error stands, with its clear message."""
    outage = OutageLog(log, f"{what} is not available yet")
    deadline = time.monotonic() + patience
    delay = 0.2
    while True:
        try:
            result = await start()
        except Unavailable as exc:
            if time.monotonic() + delay > deadline:
                raise Unavailable(f"{exc.message} (still after {patience:g} s; STARTUP_TIMEOUT)") from exc
            outage.failed(exc)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)
            continue
        outage.recovered()
        return result


def max_client_connections(s: Settings) -> int:
    """PROXY_MAX_CONNECTIONS, or half of the file descriptors left after a reserve for the admin
    port, the databases and the logs: the other half is for the upstream connections those
    clients' calls open. A flood beyond it is refused, and never takes the admin port down."""
    if s.proxy_max_connections:
        return s.proxy_max_connections
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return 100_000
    return max(32, (soft - 64) // 2)


def _server_limits(s: Settings) -> ServerLimits:
    return ServerLimits(
        max_header_bytes=s.proxy_max_header_bytes,
        max_body_bytes=s.proxy_max_body_bytes,
        header_timeout=s.proxy_header_timeout,
        body_timeout=s.proxy_body_timeout,
        keepalive_timeout=s.proxy_keepalive_timeout,
        shutdown_grace=s.shutdown_grace,
        max_connections=max_client_connections(s),
    )


class Gateway:
    def __init__(
        self, settings: Settings, *, metrics: Metrics | None = None, clock: Callable[[], float] = time.time
    ) -> None:
        self.settings = settings
        self.metrics: Metrics = metrics or NullMetrics()
        self.clock = clock
        self.admin_port = 0
        self.proxy_port = 0
        self.metrics_port = 0
        self.events_lost = 0

    async def start(self) -> None:
        """Build and start everything; on failure, undo what was started and re-raise."""
        self._exit = contextlib.AsyncExitStack()
        try:
            await self._start(self.settings, self._exit)
        except BaseException:
            await self._exit.aclose()
            raise

    async def _start(self, s: Settings, stack: contextlib.AsyncExitStack) -> None:
        built = telemetry_from_settings(s)
        telemetry, observers = (built[0], [built[1]]) if built else (None, [])
        if telemetry is not None:
            stack.callback(telemetry.close)  # last out: the final events' metrics are sent
            if isinstance(self.metrics, NullMetrics):
                self.metrics = telemetry
        self.stores = await until_available(lambda: open_stores(s), "the database", s.startup_timeout)
        stack.push_async_callback(self.stores.close)
        self.counters: Counters
        if s.redis is not None:  # imported only here: the embedded default never loads redis-py
            from bricksllm.storage.redis_counters import RedisCounters

            redis_counters = RedisCounters(s.redis)
            stack.push_async_callback(redis_counters.close)
            await until_available(redis_counters.connect, "Redis", s.startup_timeout)
            self.counters = redis_counters
        else:
            self.counters = MemoryCounters(now=self.clock)
        await self._seed(self.counters)
        engine = self._pii_engine(s)
        if engine is not None:
            stack.push_async_callback(engine.close)
        caps = (
            Capabilities(engine.name, frozenset(engine.entities), prefer_engine=s.pii_engine_prefer)
            if engine is not None
            else BUILTIN_ONLY
        )
        self.config = ConfigCache(self.stores.config, s.config_refresh_interval, self.metrics, caps)
        await self.config.start()
        stack.push_async_callback(self.config.stop)
        self.events = EventWriter(
            self.stores.events,
            self.metrics,
            batch_size=s.event_batch_size,
            flush_interval=s.event_flush_interval,
            max_buffer=s.event_buffer_max,
        )
        await self.events.start()
        stack.push_async_callback(self._stop_events)  # flushes every event left
        self.upstream = self._upstream(s)
        stack.push_async_callback(self.upstream.close)
        registry = ProviderRegistry()
        admin = AdminService(
            self.stores.config,
            self.stores.events,
            self.counters,
            registry,
            on_change=self.config.refresh,
            clock=self.clock,
        )
        estimator = Estimator(s.limits_output_tokens, dict(s.limits_output_tokens_by_model))
        self.limits = limits = Limits(
            self.counters, self.metrics, fail_open=s.redis_failure_mode == "open", clock=self.clock,
            estimator=estimator,
            lease=s.proxy_timeout + s.limits_reservation_grace, grace=s.limits_reservation_grace,
            backlog=s.limits_settle_backlog, defer_unlimited=s.redis is not None,
            budgets=lambda: self.config.current.budgets,
        )  # fmt: skip
        stack.push_async_callback(limits.close)  # after the servers drained: settles what it can
        pii = PIIGuard(self.config, PIIScreener(engine, self.metrics, s.pii_engine_timeout))
        policies = PolicyAdmin(self.stores.config, caps, on_change=self.config.refresh, clock=self.clock)
        self.proxy = ProxyService(
            self.config,
            limits,
            self.events,
            registry,
            self.upstream,
            self.metrics,
            default_timeout=s.proxy_timeout,
            max_body=s.proxy_max_body_bytes,
            transforms=[pii],
            answer_screen=pii,
            clock=self.clock,
            observers=(*observers, RequestLogger(bodies=s.log_bodies)),
            capture_limit=s.log_body_max_bytes,
        )
        budgets = BudgetAdmin(self.stores.config, on_change=self.config.refresh, clock=self.clock)
        admin_app = create_admin_app(
            admin,
            admin_pass=s.admin_pass,
            allowed_hosts=s.admin_allowed_hosts,
            allowed_origins=s.admin_allowed_origins,
            more=[
                *policy_operations(policies),
                *route_operations(RouteAdmin(self.stores.config, self.config.refresh, self.clock)),
                *budget_operations(budgets),
            ],
            metrics=self.metrics if telemetry else None,
            exposition=telemetry if telemetry and telemetry.prometheus and s.metrics_port is None else None,
        )
        # the admin app logs its requests itself (http/admin_access_log.py)
        self.admin_port = await self._serve(stack, admin_app, s.admin_host, s.admin_port, access_log=False)
        if telemetry is not None and telemetry.prometheus is not None and s.metrics_port is not None:
            scrape = create_metrics_app(telemetry)
            self.metrics_port = await self._serve(stack, scrape, s.host, s.metrics_port, access_log=False)
        front = ProxyFront(self.proxy, self._routes(s, stack, limits, registry, [pii]))
        if s.proxy_server == "fast":
            server = FastServer(front, _server_limits(s), self.metrics)
            self.proxy_port = await server.start(s.host, s.proxy_port, reuse_port=s.reuse_port)
            stack.push_async_callback(server.stop)  # first out: drain before the upstream closes
        else:
            proxy_app = create_proxy_app(front)
            self.proxy_port = await self._serve(stack, proxy_app, s.host, s.proxy_port, access_log=False)

    def _routes(
        self,
        s: Settings,
        stack: contextlib.AsyncExitStack,
        limits: Limits,
        registry: ProviderRegistry,
        transforms: list[PIIGuard],
    ) -> RouteService:
        """Routes' breaker and cache: in Redis when there is one (shared), else in this process."""
        breaker: Breaker
        cache: ResponseCache
        if s.redis is not None:
            from bricksllm.storage.redis_routes import RedisBreaker, RedisCache

            breaker = RedisBreaker(s.redis, s.route_breaker_failures, s.route_breaker_cooldown)
            cache = RedisCache(s.redis)
        else:
            breaker = MemoryBreaker(s.route_breaker_failures, s.route_breaker_cooldown)
            cache = MemoryCache(s.route_cache_max_entries, s.route_cache_max_bytes)
        stack.push_async_callback(breaker.close)
        stack.push_async_callback(cache.close)
        return RouteService(
            self.proxy, self.config, limits, registry, self.upstream, breaker, cache, self.metrics,
            default_timeout=s.proxy_timeout, max_body=s.proxy_max_body_bytes, transforms=transforms,
            retry_after_max=s.route_retry_after_max, clock=self.clock,
        )  # fmt: skip

    @staticmethod
    def _pii_engine(s: Settings) -> PIIEngine | None:
        """The optional PII engine, or None; one that cannot be built stops the start-up."""
        try:
            if s.pii_engine == "presidio":
                from bricksllm.pii_engines.presidio import PresidioEngine

                return PresidioEngine(s.pii_presidio_model)
            if s.pii_engine == "comprehend":
                from bricksllm.pii_engines.comprehend import ComprehendEngine

                return ComprehendEngine(
                    region=s.amazon_region,
                    endpoint_url=s.amazon_endpoint_url or None,
                    timeout=s.pii_engine_timeout,
                )
        except EngineUnavailable as exc:
            raise BricksError(f"PII_ENGINE={s.pii_engine}: {exc}") from exc
        return None

    @staticmethod
    def _upstream(s: Settings) -> Upstream:
        proxies = Proxies.parse(s.http_proxy, s.https_proxy, s.no_proxy)
        if s.upstream_client == "fast":
            return FastUpstream(
                connections=s.upstream_connections,
                connect_timeout=s.upstream_connect_timeout,
                first_byte_timeout=s.upstream_first_byte_timeout,
                idle_timeout=s.upstream_idle_timeout,
                keepalive_expiry=s.upstream_keepalive_expiry,
                proxies=proxies,
            )
        from bricksllm.upstream.aiohttp_client import AiohttpUpstream

        return AiohttpUpstream(
            connections=s.upstream_connections,
            connect_timeout=s.upstream_connect_timeout,
            first_byte_timeout=s.upstream_first_byte_timeout,
            idle_timeout=s.upstream_idle_timeout,
            proxies=proxies,
        )

    async def _serve(
        self,
        stack: contextlib.AsyncExitStack,
        app: web.Application,
        host: str,
        port: int,
        *,
        access_log: bool,
    ) -> int:
        server_logs.install()
        grace = self.settings.shutdown_grace
        runner = web.AppRunner(app, access_log=log if access_log else None, shutdown_timeout=grace)
        await runner.setup()
        stack.push_async_callback(runner.cleanup)  # stops accepting, lets requests in flight finish
        reuse = self.settings.reuse_port or None  # workers of `serve --workers N` share the ports
        await web.TCPSite(runner, host, port, backlog=1024, reuse_port=reuse).start()
        return int(runner.addresses[-1][1])

    async def _seed(self, counters: Counters) -> None:
        """Rebuild missing counters from recorded events, so a restart (of the gateway on the
        embedded default, or of a Redis without persistence) keeps limits and spend."""
        keys, budgets = await self.stores.config.list_keys(), await self.stores.config.list_budgets()
        await seed_counters(counters, keys, budgets, self.stores.events, self.clock())

    async def _stop_events(self) -> None:
        self.events_lost = await self.events.stop(grace=self.settings.shutdown_grace)

    async def stop(self) -> int:
        """Stop accepting, let requests in flight finish (they settle their spend), close the
        upstream session, flush every event, then close the counters and the stores. Returns the
        number of events lost (0 on a clean shutdown)."""
        self.events_lost = 0
        await self._exit.aclose()
        return self.events_lost
