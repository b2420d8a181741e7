"""Configuration: the environment is read once, here, into a frozen, validated Settings.

Deeper code receives Settings (or the values it needs) and never reads os.environ itself.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from bricksllm.domain import durations


class SettingsError(ValueError):
    """A configuration value is missing or malformed; the message names the variable."""


def parse_duration(name: str, value: str) -> float:
    """Seconds from a duration setting (`domain.durations` syntax); the error names `name`."""
    try:
        return durations.parse_duration(value)
    except ValueError as exc:
        raise SettingsError(f"{name}={value!r}: {exc}") from None


def split_host_port(entry: str, default_port: int) -> tuple[str, int]:
    """`host`, `host:port`, `[v6]` or `[v6]:port` -> (host, port); ValueError when malformed."""
    host, port = entry.strip(), None
    if host.startswith("["):
        host, sep, rest = host[1:].partition("]")
        if not sep or (rest and not rest.startswith(":")):
            raise ValueError(f"{entry!r} is not host[:port]")
        port = rest[1:] if rest else None
    elif host.count(":") == 1:
        host, port = host.split(":")
    if not host or (port is not None and not (port.isdigit() and 0 < int(port) < 65536)):
        raise ValueError(f"{entry!r} is not host[:port] (port 1-65535)")
    return host, int(port) if port is not None else default_port


@dataclass(frozen=True, slots=True)
class PostgresSettings:
    hosts: tuple[str, ...]  # host[:port] entries (port: `port` when absent), tried in order
    port: int = 5432
    db_name: str = ""
    username: str = ""
    password: str = field(default="", repr=False)
    ssl_mode: str = "disable"
    schema: str = "public"
    read_timeout: float = 2.0
    write_timeout: float = 1.0
    connect_timeout: float = 5.0  # per host: one that does not answer is left for the next

    def addresses(self) -> list[tuple[str, int]]:
        """Every host as (host, port), in order: the gateway connects to the first that accepts
        writes (libpq's `target_session_attrs=read-write`)."""
        return [split_host_port(h, self.port) for h in self.hosts]


@dataclass(frozen=True, slots=True)
class RedisSettings:
    hosts: tuple[str, ...]
    port: int = 6379
    password: str = field(default="", repr=False)
    db: int = 0
    key_prefix: str = "bricksllm"
    read_timeout: float = 1.0
    write_timeout: float = 0.5
    # Redis Sentinel: when set, the master of `master_name` is asked of these (host[:port],
    # default port 26379) and `hosts`/`port` are not used
    sentinels: tuple[str, ...] = ()
    master_name: str = ""
    sentinel_password: str = field(default="", repr=False)

    def sentinel_addresses(self) -> list[tuple[str, int]]:
        return [split_host_port(h, 26379) for h in self.sentinels]


@dataclass(frozen=True, slots=True)
class Settings:
    host: str = "0.0.0.0"
    admin_port: int = 8001
    proxy_port: int = 8002
    data_dir: Path = Path("data")
    admin_pass: str = field(default="", repr=False)
    admin_allowed_hosts: tuple[str, ...] = ()  # Host names the admin API answers to (DNS rebinding)
    admin_allowed_origins: tuple[str, ...] = ()  # browser origins allowed to call the admin API
    proxy_timeout: float = 600.0
    config_refresh_interval: float = 1.0
    postgres: PostgresSettings | None = None
    redis: RedisSettings | None = None
    redis_failure_mode: str = "closed"  # closed: 503 when Redis is down; open: admit without counting
    event_batch_size: int = 500
    event_flush_interval: float = 0.2
    event_buffer_max: int = 100_000
    upstream_connections: int = 512  # per upstream origin (fast client) / in all (aiohttp client)
    # the fast path (issue 15): which implementation serves the proxy port and calls providers
    proxy_server: str = "fast"  # fast | aiohttp
    upstream_client: str = "fast"  # fast | aiohttp
    upstream_connect_timeout: float = 10.0  # TCP + TLS (+ proxy tunnel)
    upstream_first_byte_timeout: float | None = None  # after the request is sent; None: PROXY_TIMEOUT only
    upstream_idle_timeout: float | None = 300.0  # longest silence between body chunks of an answer
    upstream_keepalive_expiry: float = 30.0  # idle pooled connections are closed after this
    http_proxy: str = field(default="", repr=False)  # may carry credentials
    https_proxy: str = field(default="", repr=False)
    no_proxy: str = ""
    proxy_header_timeout: float = 10.0
    proxy_body_timeout: float = 60.0
    proxy_keepalive_timeout: float = 75.0
    proxy_max_header_bytes: int = 64 * 1024
    proxy_max_body_bytes: int = 64 * 1024 * 1024
    proxy_max_connections: int = 0  # client connections at once; 0: from the file limit (see app.py)
    shutdown_grace: float = 10.0  # on SIGTERM: time for requests in flight, then for unwritten events
    startup_timeout: float = 30.0  # how long to wait at start for PostgreSQL and Redis to answer
    workers: int = 1  # 0: one per core
    reuse_port: bool = False  # set for the workers of `serve --workers N` (SO_REUSEPORT)
    stats_enabled: bool = False
    stats_address: str = "127.0.0.1:8125"
    stats_provider: str = ""  # datadog: DogStatsD tags; statsd (or unset): tag values in the name
    stats_key_tags: bool = False  # a key_id tag on per-request metrics (one series per key)
    metrics_enabled: bool = False  # GET /metrics (Prometheus) on the admin port
    metrics_port: int | None = None  # GET /metrics alone on this port, without auth (implies enabled)
    log_level: str = "INFO"
    # Spend and token limits (README "Spend and limits"): what a call reserves until it is settled.
    limits_output_tokens: int = 1024  # output allowance of a call that sets no max_tokens
    limits_output_tokens_by_model: tuple[tuple[str, int], ...] = ()  # per-model allowances
    limits_reservation_grace: float = 60.0  # a reservation lives for the call's timeout plus this
    limits_settle_backlog: int = 100_000  # settlements kept while Redis is unreachable
    pii_engine: str = ""  # an optional PII engine besides the built-in one: presidio | comprehend
    pii_presidio_model: str = "en_core_web_lg"  # an installed spaCy model (never downloaded)
    pii_engine_timeout: float = 2.0  # longest wait for the engine, per request
    pii_engine_prefer: bool = False  # send entities both can find to the engine (Comprehend parity)
    amazon_region: str = "us-west-2"  # Comprehend; credentials from AWS's usual chain
    amazon_endpoint_url: str = ""
    # routes (issue 13): retries, failover, circuit breaker, cache
    route_retry_after_max: float = 30.0  # longest upstream Retry-After a route waits before retrying
    route_breaker_failures: int = 5  # failures in a row that make a route skip an upstream
    route_breaker_cooldown: float = 30.0  # how long it is skipped
    route_cache_max_entries: int = 10_000  # the embedded cache (no Redis): an LRU bounded by these two
    route_cache_max_bytes: int = 256 * 1024 * 1024
    log_format: str = "auto"  # auto (JSON unless stderr is a terminal) | json | console
    log_bodies: bool = False  # put captured request/response bodies in the request log lines too
    log_body_max_bytes: int = 64 * 1024  # bytes of a body kept by shouldLogRequest/shouldLogResponse

    @property
    def admin_host(self) -> str:
        """Without ADMIN_PASS the admin API is reachable from this machine only."""
        return self.host if self.admin_pass else "127.0.0.1"

    @property
    def sqlite_path(self) -> Path:
        return self.data_dir / "bricksllm.sqlite3"

    def with_overrides(self, **changes: Any) -> Settings:
        return replace(self, **{k: v for k, v in changes.items() if v is not None})

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Settings:
        def get(name: str, default: str = "") -> str:
            return env.get(name, default).strip()

        def integer(name: str, default: int, minimum: int = 0) -> int:
            raw = get(name)
            if not raw:
                return default
            try:
                value = int(raw)
            except ValueError:
                raise SettingsError(f"{name}={raw!r} is not a whole number") from None
            if value < minimum:
                raise SettingsError(f"{name} must be at least {minimum}")
            return value

        def duration(name: str, default: float) -> float:
            raw = get(name)
            value = parse_duration(name, raw) if raw else default
            if value <= 0:
                raise SettingsError(f"{name} must be positive")
            return value

        def optional_duration(name: str, default: float | None) -> float | None:
            raw = get(name).lower()
            if raw in {"none", "off", "0"}:
                return None
            if not raw:
                return default
            return duration(name, 0.0)

        def choice(name: str, default: str, allowed: tuple[str, ...]) -> str:
            value = get(name, default).lower() or default
            if value not in allowed:
                raise SettingsError(f"{name} must be one of {', '.join(allowed)}")
            return value

        def either(*names: str) -> str:
            return next((get(n) for n in names if get(n)), "")

        def flag(name: str, default: bool) -> bool:
            raw = get(name).lower()
            if not raw:
                return default
            if raw in {"1", "true", "yes", "on"}:
                return True
            if raw in {"0", "false", "no", "off"}:
                return False
            raise SettingsError(f"{name}={raw!r} is not a boolean (true/false)")

        def hosts(name: str) -> tuple[str, ...]:
            return tuple(h.strip() for h in get(name).split(",") if h.strip())

        postgres = None
        if pg_hosts := hosts("POSTGRESQL_HOSTS"):
            postgres = PostgresSettings(
                hosts=pg_hosts,
                port=integer("POSTGRESQL_PORT", 5432, 1),
                db_name=get("POSTGRESQL_DB_NAME"),
                username=get("POSTGRESQL_USERNAME"),
                password=get("POSTGRESQL_PASSWORD"),
                ssl_mode=get("POSTGRESQL_SSL_MODE", "disable") or "disable",
                schema=get("POSTGRESQL_SCHEMA", "public") or "public",
                read_timeout=duration("POSTGRESQL_READ_TIME_OUT", 2.0),
                write_timeout=duration("POSTGRESQL_WRITE_TIME_OUT", 1.0),
                connect_timeout=duration("POSTGRESQL_CONNECT_TIME_OUT", 5.0),
            )
            if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", postgres.schema):
                raise SettingsError("POSTGRESQL_SCHEMA must be a plain SQL identifier")
            try:
                postgres.addresses()
            except ValueError as exc:
                raise SettingsError(f"POSTGRESQL_HOSTS: {exc}") from None
        redis = None
        redis_hosts, sentinels = hosts("REDIS_HOSTS"), hosts("REDIS_SENTINELS")
        if sentinels and not get("REDIS_MASTER_NAME"):
            raise SettingsError("REDIS_SENTINELS needs REDIS_MASTER_NAME (the monitored master's name)")
        if redis_hosts or sentinels:
            redis = RedisSettings(
                hosts=redis_hosts,
                sentinels=sentinels,
                master_name=get("REDIS_MASTER_NAME") if sentinels else "",
                sentinel_password=get("REDIS_SENTINEL_PASSWORD"),
                port=integer("REDIS_PORT", 6379, 1),
                password=get("REDIS_PASSWORD"),
                db=integer("REDIS_DB", 0),
                key_prefix=get("REDIS_KEY_PREFIX", "bricksllm") or "bricksllm",
                read_timeout=duration("REDIS_READ_TIME_OUT", 1.0),
                write_timeout=duration("REDIS_WRITE_TIME_OUT", 0.5),
            )
            try:
                redis.sentinel_addresses()
            except ValueError as exc:
                raise SettingsError(f"REDIS_SENTINELS: {exc}") from None
        failure_mode = get("REDIS_FAILURE_MODE", "closed").lower() or "closed"
        if failure_mode not in {"closed", "open"}:
            raise SettingsError("REDIS_FAILURE_MODE must be 'closed' or 'open'")
        log_level = get("LOG_LEVEL", "INFO").upper() or "INFO"
        if log_level not in {"DEBUG", "INFO", "WARNING", "ERROR"}:
            raise SettingsError("LOG_LEVEL must be one of DEBUG, INFO, WARNING, ERROR")
        workers_raw = get("BRICKSLLM_WORKERS").lower()
        workers = 0 if workers_raw == "auto" else integer("BRICKSLLM_WORKERS", 1, 1)
        proxies = (either("HTTP_PROXY", "http_proxy"), either("HTTPS_PROXY", "https_proxy"))
        no_proxy = either("NO_PROXY", "no_proxy")
        from bricksllm.upstream.proxies import Proxies, ProxyConfigError

        try:
            Proxies.parse(*proxies, no_proxy)
        except ProxyConfigError as exc:
            raise SettingsError(str(exc)) from None
        stats_provider = get("STATS_PROVIDER").lower()
        if stats_provider not in {"", "datadog", "statsd"}:
            raise SettingsError("STATS_PROVIDER can only be datadog (or statsd)")
        from bricksllm.telemetry.statsd import parse_address

        stats_address = get("STATS_ADDRESS", "127.0.0.1:8125") or "127.0.0.1:8125"
        try:
            parse_address(stats_address)
        except ValueError as exc:
            raise SettingsError(f"STATS_ADDRESS: {exc}") from None
        metrics_port = integer("METRICS_PORT", 0, 1) if get("METRICS_PORT") else None
        return cls(
            host=get("BRICKSLLM_HOST", "0.0.0.0") or "0.0.0.0",
            admin_port=integer("BRICKSLLM_ADMIN_PORT", 8001, 0),
            proxy_port=integer("BRICKSLLM_PROXY_PORT", 8002, 0),
            data_dir=Path(get("BRICKSLLM_DATA_DIR", "data") or "data"),
            admin_pass=env.get("ADMIN_PASS", ""),
            admin_allowed_hosts=hosts("ADMIN_ALLOWED_HOSTS"),
            admin_allowed_origins=hosts("ADMIN_ALLOWED_ORIGINS"),
            proxy_timeout=duration("PROXY_TIMEOUT", 600.0),
            config_refresh_interval=duration("IN_MEMORY_DB_UPDATE_INTERVAL", 1.0),
            postgres=postgres,
            redis=redis,
            redis_failure_mode=failure_mode,
            event_batch_size=integer("EVENT_BATCH_SIZE", 500, 1),
            event_flush_interval=duration("EVENT_FLUSH_INTERVAL", 0.2),
            event_buffer_max=integer("EVENT_BUFFER_MAX", 100_000, 1),
            upstream_connections=integer("UPSTREAM_CONNECTIONS", 512, 1),
            proxy_server=choice("PROXY_SERVER", "fast", ("fast", "aiohttp")),
            upstream_client=choice("UPSTREAM_CLIENT", "fast", ("fast", "aiohttp")),
            upstream_connect_timeout=duration("UPSTREAM_CONNECT_TIMEOUT", 10.0),
            upstream_first_byte_timeout=optional_duration("UPSTREAM_FIRST_BYTE_TIMEOUT", None),
            upstream_idle_timeout=optional_duration("UPSTREAM_IDLE_TIMEOUT", 300.0),
            upstream_keepalive_expiry=duration("UPSTREAM_KEEPALIVE_EXPIRY", 30.0),
            http_proxy=proxies[0],
            https_proxy=proxies[1],
            no_proxy=no_proxy,
            proxy_header_timeout=duration("PROXY_HEADER_TIMEOUT", 10.0),
            proxy_body_timeout=duration("PROXY_BODY_TIMEOUT", 60.0),
            proxy_keepalive_timeout=duration("PROXY_KEEPALIVE_TIMEOUT", 75.0),
            proxy_max_header_bytes=integer("PROXY_MAX_HEADER_BYTES", 64 * 1024, 1024),
            proxy_max_body_bytes=integer("PROXY_MAX_BODY_BYTES", 64 * 1024 * 1024, 1),
            proxy_max_connections=integer("PROXY_MAX_CONNECTIONS", 0, 0),
            shutdown_grace=duration("SHUTDOWN_GRACE", 10.0),
            startup_timeout=duration("STARTUP_TIMEOUT", 30.0),
            workers=workers,
            stats_enabled=flag("STATS_ENABLED", bool(stats_provider)),
            stats_address=stats_address,
            stats_provider=stats_provider,
            stats_key_tags=flag("STATS_KEY_TAGS", False),
            metrics_enabled=flag("METRICS_ENABLED", metrics_port is not None),
            metrics_port=metrics_port,
            pii_engine=choice("PII_ENGINE", "", ("", "presidio", "comprehend")),
            pii_presidio_model=get("PII_PRESIDIO_MODEL", "en_core_web_lg") or "en_core_web_lg",
            pii_engine_timeout=duration("PII_ENGINE_TIMEOUT", 2.0),
            pii_engine_prefer=flag("PII_ENGINE_PREFER", False),
            amazon_region=get("AMAZON_REGION", "us-west-2") or "us-west-2",
            amazon_endpoint_url=get("AMAZON_ENDPOINT_URL"),
            log_level=log_level,
            route_retry_after_max=duration("ROUTE_RETRY_AFTER_MAX", 30.0),
            route_breaker_failures=integer("ROUTE_BREAKER_FAILURES", 5, 1),
            route_breaker_cooldown=duration("ROUTE_BREAKER_COOLDOWN", 30.0),
            route_cache_max_entries=integer("ROUTE_CACHE_MAX_ENTRIES", 10_000, 1),
            route_cache_max_bytes=integer("ROUTE_CACHE_MAX_BYTES", 256 * 1024 * 1024, 1024),
            log_format=choice("LOG_FORMAT", "auto", ("auto", "json", "console")),
            log_bodies=flag("LOG_BODIES", False),
            log_body_max_bytes=integer("LOG_BODY_MAX_BYTES", 64 * 1024, 0),
            limits_output_tokens=integer("LIMITS_DEFAULT_OUTPUT_TOKENS", 1024, 0),
            limits_output_tokens_by_model=_model_allowances(get("LIMITS_OUTPUT_TOKENS_BY_MODEL")),
            limits_reservation_grace=duration("LIMITS_RESERVATION_GRACE", 60.0),
            limits_settle_backlog=integer("LIMITS_SETTLE_BACKLOG", 100_000, 1),
        )


def _model_allowances(raw: str) -> tuple[tuple[str, int], ...]:
    """LIMITS_OUTPUT_TOKENS_BY_MODEL: `model=tokens` pairs separated by commas."""
    out = []
    for item in filter(None, (part.strip() for part in raw.split(","))):
        model, _, tokens = item.partition("=")
        if not model.strip() or not tokens.strip().isdigit():
            raise SettingsError(
                f"LIMITS_OUTPUT_TOKENS_BY_MODEL: {item!r} is not model=tokens (e.g. gpt-4o=4096,o1=32768)"
            )
        out.append((model.strip(), int(tokens)))
    return tuple(out)
