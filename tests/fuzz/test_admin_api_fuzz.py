"""The admin API fuzzed from its own OpenAPI description (schemathesis), on SQLite and PostgreSQL.

Every operation gets generated requests, valid and invalid, and every answer must be no 5xx,
and every error problem+json. Bounded: a fixed number of examples per operation, no deadline
(the machine is shared), so the whole run takes well under a minute per backend.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error

from bricksllm.settings import PostgresSettings
from tests.served import Served

EXAMPLES_PER_OPERATION = 40


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def served(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    postgres: PostgresSettings | None = None
    if request.param == "postgres":
        postgres = request.getfixturevalue("module_pg_settings")
    gateway = Served(tmp_path_factory.mktemp("fuzz"), postgres=postgres)
    gateway.start()
    yield gateway
    gateway.stop()


@pytest.fixture(scope="module")
def module_pg_settings() -> Iterator[PostgresSettings]:
    """A private schema for the whole module (the shared `pg_settings` is per test)."""
    import asyncpg

    from tests.conftest import PG_DB, PG_HOST, PG_PORT, PG_USER, _require

    _require(PG_HOST, PG_PORT, "PostgreSQL")
    schema = f"t_{uuid.uuid4().hex[:12]}"

    async def run(sql: str) -> None:
        conn = await asyncpg.connect(host=PG_HOST, port=PG_PORT, user=PG_USER, database=PG_DB)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(run(f'CREATE SCHEMA "{schema}"'))
    try:
        yield PostgresSettings(hosts=(PG_HOST,), port=PG_PORT, db_name=PG_DB, username=PG_USER, schema=schema)
    finally:
        asyncio.run(run(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))


@pytest.fixture(scope="module")
def admin_schema(served: Served) -> Any:
    document = requests.get(served.origin + "/openapi.json", timeout=10).json()
    schema = schemathesis.openapi.from_dict(document)
    schema.config.update(base_url=served.origin)
    # valid and invalid requests alike, NUL characters included (they must be refused, not stored)
    schema.config.generation.update(modes=list(schemathesis.GenerationMode), allow_x00=True)
    return schema


def problem_json(ctx: Any, response: Any, case: Any) -> None:
    """Every error the admin API gives is RFC 9457 problem+json with its status in it."""
    if response.status_code >= 400:
        assert response.headers.get("content-type", [""])[0].startswith("application/problem+json"), (
            response.status_code, response.headers,
        )  # fmt: skip
        assert response.json()["status"] == response.status_code


def test_no_5xx_and_every_error_is_problem_json(admin_schema: Any) -> None:
    operations = [result.ok() for result in admin_schema.get_all_operations()]
    assert len(operations) > 20
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(
            max_examples=EXAMPLES_PER_OPERATION,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            database=None,
        )
        def fuzz(case: Any) -> None:
            response = case.call()
            case.validate_response(response, checks=[not_a_server_error, problem_json])

        try:
            fuzz()
        except Exception as exc:
            raise AssertionError(f"{operation.method.upper()} {operation.path}: {exc}") from exc
