"""The dependency rule of the layout: http -> services -> (providers, ports) -> domain.

The domain stays pure (no asyncio, sockets, drivers, web framework, clock or environment), and no
inner layer imports an outer one. Only app.py knows the concrete storage classes."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src" / "bricksllm"

FORBIDDEN = {
    "domain": {"asyncio", "aiohttp", "sqlalchemy", "alembic", "redis", "asyncpg", "aiosqlite", "os",
               "time", "socket", "bricksllm.http", "bricksllm.services", "bricksllm.storage",
               "bricksllm.providers", "bricksllm.ports", "bricksllm.settings"},
    "providers": {"aiohttp", "sqlalchemy", "redis", "bricksllm.http", "bricksllm.services",
                  "bricksllm.storage"},
    "services": {"aiohttp", "sqlalchemy", "redis", "bricksllm.http", "bricksllm.storage", "bricksllm.app"},
    "storage": {"aiohttp", "bricksllm.http", "bricksllm.services", "bricksllm.app"},
    "pii_engines": {"aiohttp", "sqlalchemy", "redis", "bricksllm.http", "bricksllm.services",
                    "bricksllm.storage", "bricksllm.app"},
}  # fmt: skip


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


@pytest.mark.parametrize("layer", sorted(FORBIDDEN))
def test_layer_imports_point_inwards(layer: str) -> None:
    files = sorted((SRC / layer).rglob("*.py"))
    assert files
    for path in files:
        for name in _imports(path):
            bad = {f for f in FORBIDDEN[layer] if name == f or name.startswith(f + ".")}
            assert not bad, f"{path.relative_to(SRC)} imports {name}"


def test_only_the_composition_root_imports_concrete_storage() -> None:
    for path in SRC.rglob("*.py"):
        if path.name in {"app.py"} or "storage" in path.parts:
            continue
        assert not any(n.startswith("bricksllm.storage") for n in _imports(path)), path


def test_the_embedded_default_loads_no_server_drivers_nor_migrations() -> None:
    """Start-up time and memory: redis-py, asyncpg, the PostgreSQL dialect and Alembic (about
    15 MB and a quarter of a second together) are imported only when they are used."""
    code = (
        "import sys, bricksllm.app, bricksllm.cli; "
        "print(sorted({m.split('.')[0] for m in sys.modules if m.startswith(("
        "'redis', 'asyncpg', 'alembic', 'sqlalchemy.dialects.postgresql'))}))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout
