"""`FastUpstream`: the `Upstream` port on asyncio Protocols and httptools, with keep-alive pools.

Measured on this machine (bench/upstream_clients.py), the aiohttp client costs about four times
the CPU per request of a protocol-level client, and it was the largest single cost of a request
through the gateway; none of the fast clients on PyPI did everything a gateway needs at 80 % of
this speed. So this adapter does the HTTP/1.1 client work itself, and only that:

- one bounded pool per origin (`pool.Pool`), or per proxy route; idle connections expire;
- TLS with the standard `ssl` module: verification on, SNI, the system trust store (OpenSSL
  honours `SSL_CERT_FILE` / `SSL_CERT_DIR`), ALPN `http/1.1`; the context is built on first use,
  so a gateway that only talks plain HTTP never pays for loading the trust store;
- `HTTP_PROXY` / `HTTPS_PROXY` / `NO_PROXY` (decided in `proxies`), CONNECT tunnels for https;
- request bodies as bytes (Content-Length) or streamed (chunked, or as sent when the caller gives
  a Content-Length), written under the transport's flow control;
- timeouts per phase: connect (TCP + TLS + tunnel), first byte (after the request is written),
  idle between body chunks, all within the request's total deadline;
- a pooled connection that turns out to be closed before any byte of the answer is retried once
  on a fresh connection, when the request is replayable: an idempotent method, or a request that
  carries an `Idempotency-Key` (as Go's transport does), with a body held in memory.

The wire details (parsing, flow control, when a connection may be reused) live in `connection`.
"""

from __future__ import annotations

import asyncio
import base64
import ssl
from collections.abc import AsyncIterable
from dataclasses import dataclass
from urllib.parse import unquote

from bricksllm.errors import UpstreamError, UpstreamTimeout
from bricksllm.ports import UpstreamRequest
from bricksllm.upstream.connection import Connection, FastResponse
from bricksllm.upstream.pool import Pool
from bricksllm.upstream.proxies import Proxies, Proxy

IDEMPOTENT = frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS", "TRACE"})
# hop-by-hop and framing headers: the adapter decides them for its own connection
_SKIPPED = frozenset(
    {"connection", "keep-alive", "proxy-connection", "te", "trailer", "transfer-encoding", "upgrade"}
)
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
_SMALL_BODY = 64 * 1024  # bodies up to this are written in one call with the head


@dataclass(slots=True)
class _Origin:
    scheme: str
    host: str  # without brackets
    port: int
    host_header: str
    authorization: str  # from credentials in the URL, or ""
    proxy: Proxy | None
    absolute_form: bool  # plain HTTP through a proxy: the request line carries the whole URL
    pool: Pool


class FastUpstream:
    def __init__(
        self,
        *,
        connections: int = 512,
        connect_timeout: float = 10.0,
        first_byte_timeout: float | None = None,
        idle_timeout: float | None = None,
        keepalive_expiry: float = 30.0,
        ssl_context: ssl.SSLContext | None = None,
        proxies: Proxies | None = None,
        max_header_bytes: int = 256 * 1024,
    ) -> None:
        self._limit = connections
        self._connect_timeout = connect_timeout
        self._first_byte_timeout = first_byte_timeout
        self._idle_timeout = idle_timeout
        self._expiry = keepalive_expiry
        self._ssl = ssl_context
        self._proxies = proxies or Proxies()
        self._max_header_bytes = max_header_bytes
        self._origins: dict[str, _Origin] = {}  # "scheme://netloc" -> parsed, routed, pooled
        self._pools: dict[tuple[object, ...], Pool] = {}
        self._closed = False

    # --- ports.Upstream ------------------------------------------------------------------------

    async def send(self, request: UpstreamRequest) -> FastResponse:
        if self._closed:
            raise UpstreamError("[BricksLLM] the upstream client is closed")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + request.timeout
        origin, target = self._route(request.url)
        head, length = self._head(request, origin, target)
        body = request.body
        fresh = False
        while True:
            conn = await origin.pool.acquire(deadline, fresh=fresh)
            reused = conn.uses > 1
            response = FastResponse(conn, deadline, self._idle_timeout, head_only=request.method == "HEAD")
            conn.response = response
            try:
                if isinstance(body, bytes):
                    _write_bytes(conn, head, body)
                    response._request_sent = True
                    if self._first_byte_timeout is not None:
                        response._first_byte_at = loop.time() + self._first_byte_timeout
                else:
                    conn.transport.write(head)  # type: ignore[union-attr]
                    response._writer = loop.create_task(
                        _write_stream(conn, response, body, length, self._first_byte_timeout)
                    )
                await response.wait_head()
            except UpstreamTimeout:
                raise
            except UpstreamError:
                if reused and not fresh and not response._received and _replayable(request):
                    fresh = True  # the pooled connection was stale: once more on a new one
                    continue
                raise
            except BaseException:
                response.abort()
                raise
            return response

    async def close(self) -> None:
        self._closed = True
        for pool in self._pools.values():
            pool.close()
        self._pools.clear()
        self._origins.clear()

    # --- routing and the request head ----------------------------------------------------------

    def _route(self, url: str) -> tuple[_Origin, str]:
        scheme, sep, rest = url.partition("://")
        netloc, slash, path = rest.partition("/")
        if "?" in netloc or "#" in netloc:  # http://host?query
            idx = min(i for i in (netloc.find("?"), netloc.find("#")) if i >= 0)
            netloc, path, slash = netloc[:idx], netloc[idx:] + slash + path, ""
        target = "/" + path if slash else ("/" + path if path else "/")
        target = target.partition("#")[0]
        key = scheme + "://" + netloc
        origin = self._origins.get(key)
        if origin is None:
            if not sep or scheme not in ("http", "https") or not netloc:
                raise UpstreamError(f"[BricksLLM] not an http(s) URL: {url[:100]!r}")
            origin = self._origins[key] = self._new_origin(scheme, netloc)
        if origin.absolute_form:
            target = f"{scheme}://{origin.host_header}{target}"
        return origin, target

    def _new_origin(self, scheme: str, netloc: str) -> _Origin:
        authorization = ""
        if "@" in netloc:
            userinfo, _, netloc = netloc.rpartition("@")
            user, _, password = userinfo.partition(":")
            pair = f"{unquote(user)}:{unquote(password)}".encode()
            authorization = "Basic " + base64.b64encode(pair).decode()
        if netloc.startswith("["):
            host, _, rest = netloc[1:].partition("]")
            port_text = rest[1:] if rest.startswith(":") else ""
        else:
            host, _, port_text = netloc.partition(":")
        default = 443 if scheme == "https" else 80
        try:
            port = int(port_text) if port_text else default
        except ValueError:
            raise UpstreamError(f"[BricksLLM] bad port in {netloc!r}") from None
        proxy = self._proxies.for_origin(scheme, host, port) if self._proxies else None
        tls = scheme == "https"
        pool_key: tuple[object, ...] = (scheme, host, port) if proxy is None or tls else ("via", proxy)
        if proxy is not None and tls:
            pool_key = (scheme, host, port, proxy)
        pool = self._pools.get(pool_key)
        if pool is None:
            pool = self._pools[pool_key] = Pool(
                self._dialer(scheme, host, port, proxy), limit=self._limit, expiry=self._expiry
            )
        return _Origin(scheme, host, port, netloc, authorization, proxy, proxy is not None and not tls, pool)

    def _head(self, request: UpstreamRequest, origin: _Origin, target: str) -> tuple[bytes, int | None]:
        """The request head and, for a streamed body, the Content-Length the caller declared."""
        lines = [f"{request.method} {target} HTTP/1.1\r\n"]
        has_host = has_auth = False
        length: int | None = None
        for name, value in request.headers:
            lower = name.lower()
            if lower in _SKIPPED:
                continue
            if "\n" in value or "\r" in value or "\n" in name or "\r" in name:
                raise UpstreamError(f"[BricksLLM] the header {name[:50]!r} has a line break")
            if lower == "content-length":
                if not isinstance(request.body, bytes) and value.strip().isdigit():
                    length = int(value)
                continue
            if lower == "host":
                has_host = True
            elif lower == "authorization":
                has_auth = True
            lines.append(f"{name}: {value}\r\n")
        if not has_host:
            lines.append(f"Host: {origin.host_header}\r\n")
        if origin.authorization and not has_auth:
            lines.append(f"Authorization: {origin.authorization}\r\n")
        if origin.absolute_form and origin.proxy is not None and origin.proxy.authorization:
            lines.append(f"Proxy-Authorization: {origin.proxy.authorization}\r\n")
        body = request.body
        if isinstance(body, bytes):
            if body or request.method in _BODY_METHODS:
                lines.append(f"Content-Length: {len(body)}\r\n")
        elif length is not None:
            lines.append(f"Content-Length: {length}\r\n")
        else:
            lines.append("Transfer-Encoding: chunked\r\n")
        lines.append("\r\n")
        return "".join(lines).encode("utf-8", "surrogateescape"), length

    # --- connecting ------------------------------------------------------------------------------

    def _ssl_context(self) -> ssl.SSLContext:
        if self._ssl is None:
            ctx = ssl.create_default_context()  # verification, hostname check, system trust store
            ctx.set_alpn_protocols(["http/1.1"])
            self._ssl = ctx
        return self._ssl

    def _dialer(self, scheme: str, host: str, port: int, proxy: Proxy | None):  # type: ignore[no-untyped-def]
        tls = scheme == "https"

        async def dial(pool: Pool, deadline: float) -> Connection:
            loop = asyncio.get_running_loop()
            timeout = min(self._connect_timeout, deadline - loop.time())
            conn: Connection | None = None

            def factory() -> Connection:
                nonlocal conn
                conn = Connection(pool, self._max_header_bytes)
                return conn

            try:
                async with asyncio.timeout(max(timeout, 0)):
                    if proxy is None:
                        ctx = self._ssl_context() if tls else None
                        await loop.create_connection(
                            factory, host, port, ssl=ctx, server_hostname=host if tls else None
                        )
                    else:
                        await loop.create_connection(factory, proxy.host, proxy.port)
                        assert conn is not None
                        if tls:
                            await self._tunnel(loop, conn, host, port, proxy)
            except TimeoutError as exc:
                _drop(conn)
                raise UpstreamTimeout("[BricksLLM] the provider could not be reached in time") from exc
            except UpstreamError:
                _drop(conn)
                raise
            except (OSError, ValueError) as exc:  # refused, unreachable, DNS, certificate, reset
                _drop(conn)
                raise UpstreamError(
                    f"[BricksLLM] the provider could not be reached ({type(exc).__name__})"
                ) from exc
            except BaseException:
                _drop(conn)
                raise
            assert conn is not None
            return conn

        return dial

    async def _tunnel(
        self, loop: asyncio.AbstractEventLoop, conn: Connection, host: str, port: int, proxy: Proxy
    ) -> None:
        authority = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        head = f"CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n"
        if proxy.authorization:
            head += f"Proxy-Authorization: {proxy.authorization}\r\n"
        await conn.open_tunnel((head + "\r\n").encode())
        assert conn.transport is not None
        tls_transport = await loop.start_tls(conn.transport, conn, self._ssl_context(), server_hostname=host)
        if tls_transport is None:  # pragma: no cover - only when the loop cannot do TLS
            raise UpstreamError("[BricksLLM] TLS through the proxy failed")
        conn.transport = tls_transport


def _drop(conn: Connection | None) -> None:
    if conn is not None:
        conn.abort()


def _write_bytes(conn: Connection, head: bytes, body: bytes) -> None:
    transport = conn.transport
    if transport is None or conn.closed:
        raise UpstreamError("[BricksLLM] the provider closed the connection")
    if len(body) <= _SMALL_BODY:
        transport.write(head + body)
    else:
        transport.write(head)
        transport.write(body)


async def _write_stream(
    conn: Connection,
    response: FastResponse,
    body: AsyncIterable[bytes],
    length: int | None,
    first_byte_timeout: float | None,
) -> None:
    """Stream an upload under flow control; stops quietly if the answer came first."""
    transport = conn.transport
    assert transport is not None
    sent = 0
    try:
        async for chunk in body:
            if not chunk:
                continue
            if response._done or conn.closed:
                return  # the server answered (or failed) before reading everything
            if length is None:
                transport.write(b"%x\r\n%b\r\n" % (len(chunk), chunk))
            else:
                transport.write(chunk)
            sent += len(chunk)
            await conn.drain()
        if length is None:
            transport.write(b"0\r\n\r\n")
        elif sent != length:
            raise ValueError(f"the upload was {sent} bytes, not the {length} declared")
    except asyncio.CancelledError:
        raise
    except ConnectionError:
        return  # the connection went away; the response side reports it
    except Exception as exc:
        if not response._done:
            response._on_error(UpstreamError(f"[BricksLLM] the request body could not be sent ({exc})"))
        conn.abort()
        return
    response._request_sent = True
    if first_byte_timeout is not None and not response.status and not response._done:
        # the first-byte clock starts once the whole request is written
        response._first_byte_at = asyncio.get_running_loop().time() + first_byte_timeout
        response._wake()


def _replayable(request: UpstreamRequest) -> bool:
    """Safe to send twice: idempotent, or marked so by the caller, and held in memory."""
    if not isinstance(request.body, bytes):
        return False
    return request.method in IDEMPOTENT or any(k.lower() == "idempotency-key" for k, _ in request.headers)
