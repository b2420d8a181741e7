"""Which headers cross the gateway, in each direction."""

from __future__ import annotations

from collections.abc import Mapping

import aiohttp
from multidict import CIMultiDict

from bricksllm.services.proxy import Call

HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "trailers",
        "transfer-encoding",
        "upgrade",
        "content-length",
        "content-encoding",
        "host",
    }
)
# Never forwarded upstream: the client's gateway key, gateway-only headers, and encodings we must parse.
NOT_FORWARDED = HOP_BY_HOP | {
    "authorization",
    "api-key",
    "x-api-key",
    "x-custom-event-id",
    "x-request-timeout",
    "accept-encoding",
    "cookie",
}


def upstream_headers(incoming: Mapping[str, str], call: Call, *, keep_length: bool) -> CIMultiDict[str]:
    assert call.setting is not None and call.provider is not None
    headers = CIMultiDict((k, v) for k, v in incoming.items() if k.lower() not in NOT_FORWARDED)
    if keep_length and "Content-Length" in incoming:
        headers["Content-Length"] = incoming["Content-Length"]
    headers["Accept-Encoding"] = "identity"
    headers.update(call.provider.auth_headers(call.setting))
    return headers


def rate_headers(call: Call) -> dict[str, str]:
    if call.plan is None or call.plan.rate is None:
        return {}
    return {
        "x-ratelimit-limit-requests": str(call.plan.rate.limit),
        "x-ratelimit-remaining-requests": str(max(call.rate_remaining, 0)),
    }


def client_headers(upstream: aiohttp.ClientResponse, call: Call) -> CIMultiDict[str]:
    headers = CIMultiDict((k, v) for k, v in upstream.headers.items() if k.lower() not in HOP_BY_HOP)
    headers.update(rate_headers(call))
    return headers
