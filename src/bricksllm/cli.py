"""`bricksllm serve`: start the admin API and the proxy in one process, or `--workers N` of them
under a supervisor (`bricksllm.supervisor`)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import logging
import os
import resource
import signal
import socket
import sys
from collections.abc import Callable
from pathlib import Path

from bricksllm import __version__
from bricksllm.errors import BricksError
from bricksllm.settings import Settings, SettingsError
from bricksllm.telemetry.logs import configure as configure_logging

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
    serve.add_argument(
        "--workers",
        help="processes sharing the ports, a number or 'auto' for one per core; more than 1 needs "
        "REDIS_HOSTS (env BRICKSLLM_WORKERS, default 1)",
    )
    serve.add_argument("--reuse-port", action="store_true", help=argparse.SUPPRESS)  # set for workers
    return parser


def _workers(value: str | None) -> int | None:
    if value is None:
        return None
    if value.strip().lower() == "auto":
        return 0
    if not value.strip().isdigit() or int(value) < 1:
        raise SettingsError(f"--workers {value!r} is not a positive number or 'auto'")
    return int(value)


def _supervise(settings: Settings, workers: int, argv: list[str]) -> int:
    """Refuse what cannot work with several processes, then run the supervisor."""
    from bricksllm.supervisor import Supervisor, worker_command

    if settings.redis is None:
        print(
            f"bricksllm: --workers {workers} needs shared counters: on the embedded default the rate "
            "and spend counters live inside each process (in-process counters), so every worker "
            "would allow the whole limit again. Set REDIS_HOSTS (and POSTGRESQL_HOSTS to share the "
            "store across machines too), or run one worker.",
            file=sys.stderr,
        )
        return 2
    if 0 in (settings.admin_port, settings.proxy_port):
        print("bricksllm: --workers needs fixed ports (not 0)", file=sys.stderr)
        return 2
    for host, port in ((settings.admin_host, settings.admin_port), (settings.host, settings.proxy_port)):
        try:  # without SO_REUSEPORT: also fails when another gateway shares the port with its workers
            with socket.create_server((host, port)):
                pass
        except OSError as exc:
            print(f"bricksllm: cannot start: {host}:{port}: {exc.strerror or exc}", file=sys.stderr)
            return 1
    return Supervisor(worker_command(argv), workers, settings.shutdown_grace).run()


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


def raise_file_limit() -> tuple[int, int]:
    """Every connection is a file descriptor, and distributions' default soft limit (often 1024)
    is far below what a gateway serves: take the hard limit the operator allows."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = _parser().parse_args(argv)
    try:
        settings = Settings.from_env(os.environ).with_overrides(
            host=args.host,
            admin_port=args.admin_port,
            proxy_port=args.proxy_port,
            data_dir=args.data_dir,
            workers=_workers(args.workers),
            reuse_port=args.reuse_port or None,
        )
    except SettingsError as exc:
        print(f"bricksllm: configuration error: {exc}", file=sys.stderr)
        return 2
    # JSON lines (or console lines on a terminal), written by a thread off the event loop; the
    # drivers' DEBUG records carry SQL parameters (provider credentials) and are kept quiet
    logs = configure_logging(settings.log_level, settings.log_format)
    try:
        raise_file_limit()
        workers = settings.workers or os.cpu_count() or 1
        if workers > 1:
            return _supervise(settings, workers, argv)
        try:
            with asyncio.Runner(loop_factory=_loop_factory()) as runner:
                return runner.run(_serve(settings))
        except (OSError, BricksError) as exc:  # a port in use, a database or Redis that does not answer
            log.error("cannot start: %s", exc)
            return 1
    finally:
        logs.close()  # writes every record still queued


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
