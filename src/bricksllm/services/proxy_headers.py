"""Which headers cross the gateway, in each direction, and where the client's key is read.

The client's gateway key never reaches the provider, nor do hop-by-hop headers, gateway-only
headers or cookies; the provider's credentials are added from the setting. Bodies are asked for
uncompressed (`Accept-Encoding: identity`) because answers are metered; a provider that
compresses anyway has its `Content-Encoding` passed on with the untouched bytes.
"""

from __future__ import annotations

from bricksllm.domain.models import ProviderSetting
from bricksllm.ports import Headers
from bricksllm.providers.base import Provider
from bricksllm.services.limits import Admitted

HOP_BY_HOP = frozenset(
    {
        "connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "proxy-connection", "te",
        "trailer", "trailers", "transfer-encoding", "upgrade", "content-length", "host", "expect",
    }
)  # fmt: skip
NOT_FORWARDED = HOP_BY_HOP | {
    "authorization",
    "api-key",
    "x-api-key",
    "x-custom-event-id",
    "x-request-timeout",
    "accept-encoding",
    "cookie",
}


def client_key(headers: Headers) -> str:
    """The caller's gateway key: `Authorization: Bearer`, then `api-key`, then `x-api-key`."""
    auth = headers.get("Authorization", "")
    if auth[:7].lower() == "bearer " and auth[7:].strip():
        return auth[7:].strip()
    return headers.get("api-key", "").strip() or headers.get("x-api-key", "").strip()


def upstream_headers(
    incoming: Headers, provider: Provider, setting: ProviderSetting, *, keep_length: bool
) -> tuple[tuple[str, str], ...]:
    dropped = NOT_FORWARDED | provider.dropped_headers
    headers = [(k, v) for k, v in incoming.items() if k.lower() not in dropped]
    if keep_length and (length := incoming.get("Content-Length")):
        headers.append(("Content-Length", length))
    headers.append(("Accept-Encoding", "identity"))
    headers += provider.upstream_headers(setting, incoming)
    return tuple(headers)


def reply_headers(upstream: Headers, admitted: Admitted) -> list[tuple[str, str]]:
    ours = admitted.rate_headers()  # the gateway's limits replace the provider's headers of that name
    dropped = HOP_BY_HOP | {name for name, _ in ours}
    return [(k, v) for k, v in upstream.items() if k.lower() not in dropped] + ours
