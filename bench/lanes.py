"""The systems under test ("lanes") and how each is started, configured and torn down.

- direct: the mock upstream itself, the ceiling and the baseline for "added latency".
- passthrough: bench/passthrough.py, a bare aiohttp proxy, the reference of the throughput target.
- raw: bench/passthrough_raw.py, the same bare proxy on the fast path (FastServer + FastUpstream).
- embedded: `bricksllm serve` on its default SQLite store in a temporary data directory.
- postgres: `bricksllm serve` on PostgreSQL + Redis, in a private schema and key prefix that are
  removed afterwards.
- litellm: LiteLLM's proxy (one worker, master key, no database) in its own virtual environment.

Each lane yields a `Target`: where to send chat completions, with which Authorization, and the
process whose CPU and memory are measured. Servers under test run on core 0; everything else on
core 1 (see run.py).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from loadgen import CHAT_BODY
from procs import Child, Children, free_port, reachable, request_json, wait_healthy

BENCH_DIR = Path(__file__).resolve().parent
LITELLM_VENV = BENCH_DIR / ".litellm-venv"
PROXY_CHAT = "/api/providers/openai/v1/chat/completions"
PG_HOST, PG_PORT, PG_DB, PG_USER = "127.0.0.1", 5432, "test", "postgres"
REDIS_HOST, REDIS_PORT = "127.0.0.1", 6379
LITELLM_MASTER_KEY = "sk-bench-litellm-master"  # LiteLLM refuses sk-1234 without a database


@dataclass
class Upstreams:
    fast: str  # base URL of the mock (no delay)
    slow: str | None  # the mock with 100 ms to first byte and 10 ms between SSE chunks


@dataclass
class Target:
    lane: str
    process: Child  # whose CPU and memory are reported
    chat_url: str
    auth: str  # the governed key (gateway), the master key (LiteLLM), or nothing (direct)
    plain_auth: str | None = None  # a key with no limits (gateway only)
    slow_url: str | None = None
    slow_auth: str | None = None
    cold_start_s: float | None = None
    served: int = 0  # responses the process has served so far (warm-ups included), set by run.py
    admin_url: str | None = None  # the gateway's admin API (bricksllm lanes only)


def start_mock(
    children: Children, name: str, port: int, core: int | None, delay_ms: float = 0, chunk_delay_ms: float = 0
) -> Child:
    cmd = [sys.executable, str(BENCH_DIR / "mock_upstream.py"), "--port", str(port)]
    if delay_ms:
        cmd += ["--delay-ms", str(delay_ms)]
    if chunk_delay_ms:
        cmd += ["--chunk-delay-ms", str(chunk_delay_ms)]
    child = children.start(name, cmd, core=core)
    wait_healthy(child, [f"http://127.0.0.1:{port}/health"], timeout=15)
    return child


def direct_target(mock: Child, upstreams: Upstreams) -> Target:
    return Target(
        lane="direct",
        process=mock,
        chat_url=upstreams.fast + "/v1/chat/completions",
        auth="",
        slow_url=(upstreams.slow + "/v1/chat/completions") if upstreams.slow else None,
        slow_auth="",
    )


def start_passthrough(
    children: Children, upstreams: Upstreams, core: int | None, lane: str = "passthrough"
) -> Target:
    script = "passthrough_raw.py" if lane == "raw" else "passthrough.py"
    port = free_port()
    cmd = [
        sys.executable,
        str(BENCH_DIR / script),
        "--port",
        str(port),
        "--upstream",
        upstreams.fast,
    ]
    cmd += ["--key", "bench-key"]
    child = children.start(lane, cmd, core=core)
    cold = wait_healthy(child, [f"http://127.0.0.1:{port}/api/health"], timeout=20)
    slow_child_url = None
    if upstreams.slow:
        # the same prototype cannot route one key to two upstreams: a second instance for the slow one
        sport = free_port()
        scmd = [sys.executable, str(BENCH_DIR / script), "--port", str(sport)]
        scmd += ["--upstream", upstreams.slow, "--key", "bench-key"]
        schild = children.start(f"{lane}-slow", scmd, core=core)
        wait_healthy(schild, [f"http://127.0.0.1:{sport}/api/health"], timeout=20)
        slow_child_url = f"http://127.0.0.1:{sport}{PROXY_CHAT}"
    return Target(
        lane=lane,
        process=child,
        chat_url=f"http://127.0.0.1:{port}{PROXY_CHAT}",
        auth="Bearer bench-key",
        slow_url=slow_child_url,
        slow_auth="Bearer bench-key" if slow_child_url else None,
        cold_start_s=cold,
    )


# --------------------------------------------------------------------------- bricksllm


def gateway_bin(explicit: str | None) -> str:
    if explicit:
        return explicit
    beside = Path(sys.executable).with_name("bricksllm")
    if beside.exists():
        return str(beside)
    found = shutil.which("bricksllm")
    if not found:
        raise RuntimeError("no `bricksllm` executable (pip install -e . in the venv, or pass --gateway-bin)")
    return found


def _clean_env() -> dict[str, str]:
    """The environment minus anything that would switch the gateway's backends or admin auth."""
    return {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("POSTGRESQL_", "REDIS_", "ADMIN_PASS", "STATS_", "BRICKSLLM_"))
    }


def start_gateway(
    children: Children,
    lane: str,
    binary: str,
    upstreams: Upstreams,
    data_dir: Path,
    core: int | None,
    extra_env: dict[str, str] | None = None,
    extra_args: tuple[str, ...] = (),
) -> Target:
    admin, proxy = free_port(), free_port()
    cmd = [binary, "serve", "--host", "127.0.0.1", "--admin-port", str(admin), "--proxy-port", str(proxy)]
    cmd += ["--data-dir", str(data_dir), *extra_args]
    env = {**_clean_env(), **(extra_env or {})}
    child = children.start(f"gateway-{lane}", cmd, core=core, env=env)
    admin_url, proxy_url = f"http://127.0.0.1:{admin}", f"http://127.0.0.1:{proxy}"
    cold = wait_healthy(child, [f"{admin_url}/api/health", f"{proxy_url}/api/health"], timeout=30)

    fast_id = _create_setting(admin_url, upstreams.fast)
    _create_key(admin_url, fast_id, "bench", "bench-key", governed=True)
    _create_key(admin_url, fast_id, "bench-plain", "bench-plain-key", governed=False)
    slow_url = slow_auth = None
    if upstreams.slow:
        slow_id = _create_setting(admin_url, upstreams.slow)
        _create_key(admin_url, slow_id, "bench-slow", "bench-slow-key", governed=True)
        slow_url, slow_auth = proxy_url + PROXY_CHAT, "Bearer bench-slow-key"
    for auth in ("Bearer bench-key", "Bearer bench-plain-key", slow_auth):
        if auth:
            _wait_proxy_serves(child, proxy_url + PROXY_CHAT, auth)
    return Target(
        lane=lane,
        process=child,
        chat_url=proxy_url + PROXY_CHAT,
        auth="Bearer bench-key",
        plain_auth="Bearer bench-plain-key",
        slow_url=slow_url,
        slow_auth=slow_auth,
        cold_start_s=cold,
        admin_url=admin_url,
    )


def _create_setting(admin_url: str, upstream: str) -> str:
    body = {"provider": "openai", "setting": {"apikey": "sk-bench", "url": upstream}}
    status, resp = request_json("PUT", f"{admin_url}/api/provider-settings", body)
    if status not in (200, 201) or not isinstance(resp, dict) or "id" not in resp:
        raise RuntimeError(f"PUT /api/provider-settings answered {status}: {resp}")
    return str(resp["id"])


def _create_key(admin_url: str, setting_id: str, name: str, key: str, *, governed: bool) -> None:
    body: dict[str, object] = {"name": name, "key": key, "settingId": setting_id}
    if governed:
        # a real key on the normal path: a request rate limit, a total and a daily spend limit
        body |= {
            "rateLimitOverTime": 100_000_000,
            "rateLimitUnit": "m",
            "costLimitInUsd": 1_000_000,
            "costLimitInUsdOverTime": 1_000_000,
            "costLimitInUsdUnit": "d",
        }
    status, resp = request_json("PUT", f"{admin_url}/api/key-management/keys", body)
    if status not in (200, 201):
        raise RuntimeError(f"PUT /api/key-management/keys ({name}) answered {status}: {resp}")


def _wait_proxy_serves(child: Child, url: str, auth: str, timeout: float = 15) -> None:
    """The proxy may see new keys only after its config snapshot refreshes: poll until a 200."""
    deadline = time.monotonic() + timeout
    status, resp = 0, None
    while time.monotonic() < deadline:
        if child.proc.poll() is not None:
            raise RuntimeError(f"{child.name} exited with {child.proc.returncode}:\n{child.log_tail()}")
        try:
            status, resp = request_json("POST", url, CHAT_BODY, {"Authorization": auth}, timeout=5)
        except OSError as exc:
            status, resp = 0, str(exc)
        if status == 200:
            return
        time.sleep(0.1)
    raise RuntimeError(f"the proxy never served {auth.split()[-1]!r}: last answer {status}: {resp}")


# --------------------------------------------------------------------------- PostgreSQL + Redis


def production_unreachable() -> str | None:
    missing = [
        what
        for what, host, port in (("PostgreSQL", PG_HOST, PG_PORT), ("Redis", REDIS_HOST, REDIS_PORT))
        if not reachable(host, port)
    ]
    return f"{' and '.join(missing)} not reachable on 127.0.0.1" if missing else None


@contextlib.contextmanager
def production_backends() -> Iterator[dict[str, str]]:
    """A private PostgreSQL schema and Redis prefix, as gateway env vars; both removed afterwards."""
    import asyncio

    import asyncpg
    import redis

    tag = uuid.uuid4().hex[:10]
    schema, prefix = f"bench_{tag}", f"bricksllm-bench-{tag}"

    async def pg(sql: str) -> None:
        conn = await asyncpg.connect(host=PG_HOST, port=PG_PORT, user=PG_USER, database=PG_DB, timeout=5)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(pg(f'CREATE SCHEMA "{schema}"'))
    try:
        yield {
            "POSTGRESQL_HOSTS": PG_HOST,
            "POSTGRESQL_PORT": str(PG_PORT),
            "POSTGRESQL_DB_NAME": PG_DB,
            "POSTGRESQL_USERNAME": PG_USER,
            "POSTGRESQL_SCHEMA": schema,
            "REDIS_HOSTS": REDIS_HOST,
            "REDIS_PORT": str(REDIS_PORT),
            "REDIS_KEY_PREFIX": prefix,
        }
    finally:
        with contextlib.suppress(Exception):
            asyncio.run(pg(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        with contextlib.suppress(Exception):
            r = redis.Redis(host=REDIS_HOST, port=REDIS_PORT, socket_timeout=5)
            keys = list(r.scan_iter(match=f"{prefix}*", count=1000))
            for i in range(0, len(keys), 1000):
                r.delete(*keys[i : i + 1000])
            r.close()


# --------------------------------------------------------------------------- LiteLLM


def ensure_litellm(log: Path) -> Path:
    """bench/.litellm-venv with `litellm[proxy]`, created on first use (gitignored)."""
    exe = LITELLM_VENV / "bin" / "litellm"
    if exe.exists():
        return exe
    print(f"installing litellm[proxy] into {LITELLM_VENV} (once; log: {log}) ...", flush=True)
    with log.open("wb") as out:
        subprocess.run([sys.executable, "-m", "venv", str(LITELLM_VENV)], check=True, stdout=out, stderr=out)
        pip = [str(LITELLM_VENV / "bin" / "pip"), "install", "-q", "litellm[proxy]"]
        subprocess.run(pip, check=True, stdout=out, stderr=out, timeout=1800)
    if not exe.exists():
        raise RuntimeError(f"litellm[proxy] installed but {exe} is missing; see {log}")
    return exe


def litellm_version() -> str | None:
    py = LITELLM_VENV / "bin" / "python"
    if not py.exists():
        return None
    code = "import importlib.metadata as m; print(m.version('litellm'))"
    r = subprocess.run([str(py), "-c", code], capture_output=True, text=True, timeout=60)
    return r.stdout.strip() or None


def start_litellm(children: Children, upstreams: Upstreams, work: Path, core: int | None) -> Target:
    exe = ensure_litellm(work / "litellm-install.log")
    port = free_port()
    config = work / "litellm.yaml"
    config.write_text(
        "model_list:\n"
        "  - model_name: gpt-4o-mini\n"
        "    litellm_params:\n"
        "      model: openai/gpt-4o-mini\n"
        f"      api_base: {upstreams.fast}/v1\n"
        "      api_key: sk-bench\n"
        "general_settings:\n"
        f"  master_key: {LITELLM_MASTER_KEY}\n"
        "litellm_settings:\n"
        "  telemetry: false\n"
    )
    env = {
        **_clean_env(),
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",  # no download of the price map at start-up
        "LITELLM_TELEMETRY": "False",
        "LITELLM_LOG": "ERROR",
        "DISABLE_ADMIN_UI": "True",
    }
    cmd = [
        str(exe),
        "--config",
        str(config),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--num_workers",
        "1",
    ]
    child = children.start("litellm", cmd, core=core, env=env)
    cold = wait_healthy(child, [f"http://127.0.0.1:{port}/health/liveliness"], timeout=120)
    url = f"http://127.0.0.1:{port}/v1/chat/completions"
    _wait_proxy_serves(child, url, f"Bearer {LITELLM_MASTER_KEY}", timeout=30)
    return Target(
        lane="litellm",
        process=child,
        chat_url=url,
        auth=f"Bearer {LITELLM_MASTER_KEY}",
        cold_start_s=cold,
    )
