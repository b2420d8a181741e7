"""Relaying the upstream's answer to the client and reading its usage on the way.

Buffered answers are passed on byte for byte; the JSON is parsed only to read `usage`.
Server-sent events are forwarded event by event as they arrive. The only event ever withheld is
the usage chunk the gateway asked for on the client's behalf (`stream_options.include_usage`)
when the client did not ask for it. If the client goes away the upstream call is closed and
what was generated so far is still billed; if the upstream breaks, an error event ends the stream.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from typing import Any

import aiohttp
import orjson
from aiohttp import web

from bricksllm.domain.models import Usage
from bricksllm.http.headers import client_headers
from bricksllm.services import billing
from bricksllm.services.proxy import BILLED_KINDS, Call, ProxyService

log = logging.getLogger(__name__)

_EVENT_END = re.compile(rb"\r?\n\r?\n")
_HAS_USAGE = re.compile(rb'"usage"\s*:\s*\{')
_BILLED_STREAMS = frozenset({"chat", "completions", "responses"})


async def buffered(upstream: aiohttp.ClientResponse, call: Call, service: ProxyService) -> web.Response:
    assert call.op is not None and call.provider is not None
    body = await upstream.read()
    usage: Usage | None = None
    parsed: dict[str, Any] | None = None
    micros = 0
    if 200 <= upstream.status < 300 and call.op.kind in BILLED_KINDS:
        if upstream.content_type == "application/json" and body[:1] == b"{":
            try:
                parsed = orjson.loads(body)
            except orjson.JSONDecodeError:
                parsed = None
            if isinstance(parsed, dict):
                usage = call.provider.usage(call.op, parsed)
        micros = service.price(call, usage, parsed)
    await service.finish(call, upstream.status, usage, micros)
    return web.Response(status=upstream.status, body=body, headers=client_headers(upstream, call))


async def raw(
    request: web.Request, upstream: aiohttp.ClientResponse, call: Call, service: ProxyService
) -> web.StreamResponse:
    """Binary answers (file contents, audio) are streamed through, never held in memory whole;
    what they cost is known from the request (speech) or is nothing."""
    out = web.StreamResponse(status=upstream.status, headers=client_headers(upstream, call))
    if upstream.content_length is not None:
        out.content_length = upstream.content_length
    await out.prepare(request)
    status = upstream.status
    try:
        async for chunk in upstream.content.iter_chunked(256 * 1024):
            await out.write(chunk)
    except (ConnectionResetError, aiohttp.ClientConnectionResetError):
        status = 499
    except (aiohttp.ClientError, TimeoutError):
        status = 502
    micros = service.price(call, None, None) if 200 <= upstream.status < 300 else 0
    await service.finish(call, status, None, micros)
    if status == upstream.status:
        with contextlib.suppress(ConnectionResetError, aiohttp.ClientConnectionResetError):
            await out.write_eof()
    return out


def _data(event: bytes) -> bytes:
    """The payload of an event's `data:` lines."""
    lines = [ln[5:].lstrip() for ln in event.splitlines() if ln.startswith(b"data:")]
    return b"\n".join(lines)


async def stream(
    request: web.Request, upstream: aiohttp.ClientResponse, call: Call, service: ProxyService
) -> web.StreamResponse:
    assert call.op is not None and call.provider is not None
    op, provider = call.op, call.provider
    out = web.StreamResponse(status=upstream.status, headers=client_headers(upstream, call))
    await out.prepare(request)
    withhold_usage = op.kind in ("chat", "completions") and not call.client_wants_usage
    seen: list[bytes] = []
    usage: Usage | None = None
    usage_event: dict[str, Any] | None = None
    status = upstream.status
    pending = b""
    try:
        async for chunk in upstream.content.iter_any():
            if not pending and chunk.endswith(b"\n\n") and not _HAS_USAGE.search(chunk):
                seen.append(chunk)  # the common case: whole events, nothing to read or withhold
                await out.write(chunk)
                continue
            pending += chunk
            parts = _EVENT_END.split(pending)
            pending = parts.pop()
            if not parts:
                continue
            send: list[bytes] = []
            for event in parts:
                if _HAS_USAGE.search(event):
                    try:
                        payload = orjson.loads(_data(event))
                    except orjson.JSONDecodeError:
                        payload = None
                    if isinstance(payload, dict):
                        usage = provider.stream_usage(op, payload) or usage
                        usage_event = payload
                        if withhold_usage and not payload.get("choices"):
                            continue
                seen.append(event)
                send.append(event + b"\n\n")
            await out.write(b"".join(send))
        if pending.strip():
            await out.write(pending)
    except (ConnectionResetError, aiohttp.ClientConnectionResetError):
        status = 499  # the client went away: stop the upstream call, bill what was generated
    except (aiohttp.ClientError, TimeoutError) as exc:
        status = 504 if isinstance(exc, TimeoutError) else 502
        log.warning("upstream stream broke: %s", type(exc).__name__)
        error = {
            "error": {"message": "[BricksLLM] the provider stream was interrupted", "type": "bricksllm_error"}
        }
        with contextlib.suppress(ConnectionResetError, aiohttp.ClientConnectionResetError):
            await out.write(b"data: " + orjson.dumps(error) + b"\n\n")
    finally:
        upstream.close()
    micros = 0
    if 200 <= upstream.status < 300 and op.kind in _BILLED_STREAMS:
        if usage is None:  # counted in a thread: the first count loads a tokenizer (~0.2 s)
            usage = await asyncio.to_thread(billing.estimate_usage, call, _generated_text(seen, call))
        micros = service.price(call, usage, usage_event)
    await service.finish(call, status, usage, micros)
    if status != 499:
        with contextlib.suppress(ConnectionResetError, aiohttp.ClientConnectionResetError):
            await out.write_eof()
    return out


def _generated_text(events: list[bytes], call: Call) -> str:
    assert call.op is not None and call.provider is not None
    texts: list[str] = []
    for event in (e for chunk in events for e in _EVENT_END.split(chunk)):
        data = _data(event)
        if not data or data == b"[DONE]":
            continue
        try:
            payload = orjson.loads(data)
        except orjson.JSONDecodeError:
            continue
        if isinstance(payload, dict):
            texts.append(call.provider.stream_text(call.op, payload))
    return "".join(texts)
