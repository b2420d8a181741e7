"""Which outbound HTTP proxy, if any, carries a request to a provider.

Gateways usually run behind a corporate egress proxy set by `HTTP_PROXY` / `HTTPS_PROXY`, with
`NO_PROXY` listing what is reached directly. The environment is read once, by `Settings`, into
three strings; this module turns them into a decision per origin, without I/O, so both upstream
adapters route exactly alike and the rule is tested without sockets.

NO_PROXY follows the common convention (curl, Go, requests): a comma-separated list where `*`
matches everything, `example.com` and `.example.com` match the domain and its subdomains, an
entry may carry a `:port`, and an IP address or CIDR block matches literal IP hosts. Only
`http://` proxies are supported (TLS to a provider goes through them with CONNECT).
"""

from __future__ import annotations

import base64
import ipaddress
from dataclasses import dataclass, field
from urllib.parse import unquote, urlsplit


class ProxyConfigError(ValueError):
    """A proxy URL that cannot be used; the message says which and why."""


@dataclass(frozen=True, slots=True)
class Proxy:
    host: str
    port: int
    authorization: str = field(default="", repr=False)  # a Proxy-Authorization value, or ""

    @property
    def url(self) -> str:
        """For clients that take a URL (aiohttp); credentials go in `authorization`."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"


def parse_proxy(name: str, value: str) -> Proxy | None:
    value = value.strip()
    if not value:
        return None
    if "://" not in value:
        value = "http://" + value  # curl and Go accept a bare host:port
    parts = urlsplit(value)
    if parts.scheme != "http":
        raise ProxyConfigError(f"{name}: only http:// proxies are supported (got {parts.scheme}://)")
    if not parts.hostname:
        raise ProxyConfigError(f"{name} has no host")
    try:
        port = parts.port or 80
    except ValueError:
        raise ProxyConfigError(f"{name} has an invalid port") from None
    auth = ""
    if parts.username is not None:
        pair = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
        auth = "Basic " + base64.b64encode(pair.encode()).decode()
    return Proxy(parts.hostname, port, auth)


@dataclass(frozen=True, slots=True)
class Proxies:
    http: Proxy | None = None
    https: Proxy | None = None
    no_proxy: tuple[str, ...] = ()

    @classmethod
    def parse(cls, http_proxy: str = "", https_proxy: str = "", no_proxy: str = "") -> Proxies:
        entries = tuple(e.strip().lower() for e in no_proxy.split(",") if e.strip())
        return cls(parse_proxy("HTTP_PROXY", http_proxy), parse_proxy("HTTPS_PROXY", https_proxy), entries)

    def __bool__(self) -> bool:
        return self.http is not None or self.https is not None

    def for_origin(self, scheme: str, host: str, port: int) -> Proxy | None:
        proxy = self.https if scheme == "https" else self.http
        if proxy is None or self.bypass(host, port):
            return None
        return proxy

    def bypass(self, host: str, port: int) -> bool:
        host = host.lower().strip("[]")
        ip = _ip(host)
        for entry in self.no_proxy:
            if entry == "*":
                return True
            name, entry_port = _split_port(entry)
            if entry_port is not None and entry_port != port:
                continue
            if ip is not None:
                try:
                    if ip in ipaddress.ip_network(name.strip("[]"), strict=False):
                        return True
                except ValueError:
                    pass
                continue
            name = name.lstrip(".")
            if name and (host == name or host.endswith("." + name)):
                return True
        return False


def _ip(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def _split_port(entry: str) -> tuple[str, int | None]:
    if entry.startswith("["):  # [::1]:8080
        host, _, rest = entry[1:].partition("]")
        return host, int(rest[1:]) if rest.startswith(":") and rest[1:].isdigit() else None
    if entry.count(":") == 1:
        host, _, port = entry.partition(":")
        if port.isdigit():
            return host, int(port)
    return entry, None
