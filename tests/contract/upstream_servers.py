"""Small loopback servers for the upstream adapter contract suite.

Each test scripts the provider side byte by byte with `Server(handler)`: the handler gets the
raw asyncio streams of every accepted connection, so a test can split an answer anywhere,
stall, close early, answer before reading, or misbehave in any other way a real server might.
`read_request` parses what the adapter sent (Content-Length or chunked). `ConnectProxy` is a
minimal HTTP proxy: CONNECT tunnels, and absolute-form requests forwarded to their origin.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@dataclass
class Request:
    method: str
    target: str
    version: str
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> str | None:
        for k, v in self.headers:
            if k.lower() == name.lower():
                return v
        return None


async def read_head(reader: asyncio.StreamReader) -> tuple[str, str, str, list[tuple[str, str]]]:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    method, target, version = lines[0].split(" ", 2)
    headers = []
    for line in lines[1:]:
        if line:
            k, _, v = line.partition(":")
            headers.append((k.strip(), v.strip()))
    return method, target, version, headers


async def read_body(reader: asyncio.StreamReader, headers: list[tuple[str, str]]) -> bytes:
    h = {k.lower(): v for k, v in headers}
    if h.get("transfer-encoding", "").lower() == "chunked":
        parts = []
        while True:
            size = int((await reader.readuntil(b"\r\n")).strip().split(b";")[0], 16)
            if size == 0:
                await reader.readuntil(b"\r\n")
                return b"".join(parts)
            parts.append(await reader.readexactly(size))
            await reader.readexactly(2)
    length = int(h.get("content-length", "0"))
    return await reader.readexactly(length) if length else b""


async def read_request(reader: asyncio.StreamReader) -> Request:
    method, target, version, headers = await read_head(reader)
    return Request(method, target, version, headers, await read_body(reader, headers))


def response(status: int = 200, body: bytes = b"", headers: tuple[tuple[str, str], ...] = ()) -> bytes:
    lines = [f"HTTP/1.1 {status} X"]
    lines += [f"{k}: {v}" for k, v in headers]
    if not any(k.lower() in ("content-length", "transfer-encoding") for k, _ in headers):
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def chunked(*parts: bytes) -> bytes:
    return b"".join(b"%x\r\n%b\r\n" % (len(p), p) for p in parts if p) + b"0\r\n\r\n"


@dataclass
class Server:
    handler: Handler
    ssl_context: ssl.SSLContext | None = None
    host: str = "127.0.0.1"
    connections: int = 0
    closed_by_client: int = 0  # connections whose reading side saw EOF or a reset
    eof: asyncio.Event = field(default_factory=asyncio.Event)
    port: int = 0
    _server: asyncio.Server | None = None
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)

    async def __aenter__(self) -> Server:
        self._server = await asyncio.start_server(self._accept, self.host, 0, ssl=self.ssl_context)
        self.port = int(self._server.sockets[0].getsockname()[1])
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(BaseException):
                await task
        await self._server.wait_closed()

    def url(self, path: str = "/v1/x", host: str = "127.0.0.1") -> str:
        scheme = "https" if self.ssl_context else "http"
        return f"{scheme}://{host}:{self.port}{path}"

    def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        # our own task, so that cancelling it at the end is not reported as a server error
        self.connections += 1
        task = asyncio.get_running_loop().create_task(self._serve(reader, writer))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await self.handler(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError, ssl.SSLError, TimeoutError):
            pass
        finally:
            writer.close()

    async def wait_client_close(self, reader: asyncio.StreamReader, within: float = 2.0) -> bool:
        """True when the client closed or reset the connection within `within` seconds."""
        try:
            async with asyncio.timeout(within):
                while await reader.read(65536):
                    pass
        except TimeoutError:
            return False
        except ConnectionError:
            pass
        self.closed_by_client += 1
        self.eof.set()
        return True


def keep_alive(answer: Callable[[Request], bytes]) -> Handler:
    """A well-behaved keep-alive server answering every request with `answer(request)`."""

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            try:
                req = await read_request(reader)
            except asyncio.IncompleteReadError:
                return
            writer.write(answer(req))
            await writer.drain()

    return handler


@dataclass
class ConnectProxy:
    """CONNECT tunnels and absolute-form forwarding, recording each request line."""

    seen: list[str] = field(default_factory=list)
    auth: list[str | None] = field(default_factory=list)
    _server: asyncio.Server | None = None
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)

    async def __aenter__(self) -> ConnectProxy:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(BaseException):
                await task
        await self._server.wait_closed()

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.sockets[0].getsockname()[1]}"

    def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.get_running_loop().create_task(self._serve(reader, writer))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            method, target, version, headers = await read_head(reader)
            self.seen.append(f"{method} {target}")
            self.auth.append(dict((k.lower(), v) for k, v in headers).get("proxy-authorization"))
            if method == "CONNECT":
                host, _, port = target.rpartition(":")
                up_reader, up_writer = await asyncio.open_connection(host.strip("[]"), int(port))
                writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
            else:
                authority = target.split("://", 1)[1].split("/", 1)[0]
                host, _, port = authority.rpartition(":")
                up_reader, up_writer = await asyncio.open_connection(host, int(port))
                raw = f"{method} {target} {version}\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers)
                up_writer.write(raw.encode() + b"\r\n")
            await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except ConnectionError:
        pass
    finally:
        with contextlib.suppress(Exception):
            writer.close()
