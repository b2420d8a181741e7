"""`bricksllm serve`: start the admin API and the proxy in one process."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import logging
import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path

from bricksllm import __version__
from bricksllm.errors import BricksError
from bricksllm.settings import Settings, SettingsError

log = logging.getLogger("bricksllm")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="bricksllm", description="OpenAI-compatible AI gateway")
    parser.add_argument("--version", action="version", version=f"bricksllm {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="start the admin API and the proxy")
    serve.add_argument("--host", help="address to listen on (env BRICKSLLM_HOST, default 0.0.0.0)")
    serve.add_argument(
        "--admin-port", type=int, help="admin API port (env BRICKSLLM_ADMIN_PORT, default 8001)"
    )
    serve.add_argument("--proxy-port", type=int, help="proxy port (env BRICKSLLM_PROXY_PORT, default 8002)")
    serve.add_argument(
        "--data-dir", type=Path, help="embedded storage folder (env BRICKSLLM_DATA_DIR, default ./data)"
    )
    return parser


async def _serve(settings: Settings) -> int:
    """Serve until SIGTERM/SIGINT; returns the exit status (1 when events were lost)."""
    from bricksllm.app import Gateway

    gateway = Gateway(settings)
    await gateway.start()
    gc.freeze()  # start-up objects (libraries, configuration) are never garbage: keep GC passes short
    storage = "PostgreSQL" if settings.postgres else f"SQLite at {settings.sqlite_path}"
    counters = "Redis" if settings.redis else "in-process counters"
    log.info("bricksllm %s: storage %s, %s", __version__, storage, counters)
    log.info("admin API on http://%s:%d", settings.admin_host, gateway.admin_port)
    if not settings.admin_pass:
        log.warning("ADMIN_PASS is not set: the admin API listens on 127.0.0.1 only")
    log.info("proxy on http://%s:%d", settings.host, gateway.proxy_port)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    log.info("shutting down: finishing requests in flight and flushing events")
    lost = await gateway.stop()
    if lost:
        log.error("%d events were lost (not written to the database)", lost)
        return 1
    log.info("stopped cleanly: every event was written")
    return 0


def _loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop when available (faster I/O), without changing the process-wide loop policy."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is optional on platforms without it
        return None
    return uvloop.new_event_loop


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        settings = Settings.from_env(os.environ).with_overrides(
            host=args.host, admin_port=args.admin_port, proxy_port=args.proxy_port, data_dir=args.data_dir
        )
    except SettingsError as exc:
        print(f"bricksllm: configuration error: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # the drivers' DEBUG records carry SQL parameters (provider credentials): keep them quiet
    for noisy in ("aiosqlite", "sqlalchemy", "asyncpg", "alembic"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLogger().level))
    try:
        with asyncio.Runner(loop_factory=_loop_factory()) as runner:
            return runner.run(_serve(settings))
    except (OSError, BricksError) as exc:  # a port in use, a database or Redis that does not answer
        print(f"bricksllm: cannot start: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
