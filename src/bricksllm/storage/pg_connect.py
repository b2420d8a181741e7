"""One asyncpg connection to the first of POSTGRESQL_HOSTS that accepts writes.

asyncpg supports several hosts and libpq's `target_session_attrs` itself, but its `timeout`
bounds the whole attempt: a first host that does not answer (a primary whose machine died,
packets dropped) would use all of it and the next hosts would never be tried. So the hosts are
tried here, in order, each with its own `connect_timeout` (libpq's per-host `connect_timeout`), and each
attempt is asyncpg's own, with `target_session_attrs=read-write` deciding whether the server
accepts writes (a hot standby, or a server with `default_transaction_read_only`, does not).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import asyncpg

# libpq's `target_session_attrs=read-write`: of POSTGRESQL_HOSTS, use the first that accepts writes.
TARGET_SESSION_ATTRS = "read-write"

# what makes libpq move on to the next host: no connection, no answer, not accepting writes,
# starting up or shutting down, out of connection slots
_NEXT_HOST = (
    OSError,
    TimeoutError,
    asyncpg.exceptions.TargetServerAttributeNotMatched,
    asyncpg.exceptions.PostgresConnectionError,
    asyncpg.exceptions.CannotConnectNowError,
    asyncpg.exceptions.TooManyConnectionsError,
)


async def connect_writable(
    addresses: Sequence[tuple[str, int]], connect_timeout: float, **connect_args: Any
) -> asyncpg.Connection:
    """The first connection, in host order, that asyncpg opens and finds accepting writes;
    else the last host's error (a `TargetServerAttributeNotMatched` when all answered but
    none accepts writes, e.g. during a failover before the promotion)."""
    if not addresses:
        raise ValueError("no PostgreSQL host")
    last: BaseException | None = None
    for host, port in addresses:
        try:
            return await asyncpg.connect(
                host=host,
                port=port,
                timeout=connect_timeout,
                target_session_attrs=TARGET_SESSION_ATTRS,
                **connect_args,
            )
        except _NEXT_HOST as exc:
            last = exc
    assert last is not None
    raise last
