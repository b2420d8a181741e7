"""Which requests go through the outbound proxy: HTTP(S)_PROXY and the NO_PROXY rules."""

from __future__ import annotations

import pytest

from bricksllm.upstream.proxies import Proxies, ProxyConfigError, parse_proxy


def test_scheme_picks_the_proxy() -> None:
    p = Proxies.parse(http_proxy="http://p1:3128", https_proxy="p2:8080")
    assert p.for_origin("http", "api.openai.com", 80) == parse_proxy("x", "http://p1:3128")
    proxy = p.for_origin("https", "api.openai.com", 443)
    assert proxy is not None and (proxy.host, proxy.port) == ("p2", 8080)
    assert not Proxies.parse()
    assert Proxies.parse().for_origin("https", "x", 443) is None


@pytest.mark.parametrize(
    ("no_proxy", "host", "port", "bypass"),
    [
        ("*", "anything.example", 443, True),
        ("example.com", "example.com", 443, True),
        ("example.com", "api.example.com", 443, True),
        (".example.com", "api.example.com", 443, True),
        ("example.com", "notexample.com", 443, False),
        ("example.com:8443", "example.com", 443, False),
        ("example.com:8443", "example.com", 8443, True),
        ("10.0.0.0/8, localhost", "10.1.2.3", 80, True),
        ("10.0.0.0/8", "11.1.2.3", 80, False),
        ("127.0.0.1", "127.0.0.1", 9000, True),
        ("::1", "::1", 80, True),
        ("[::1]:80", "::1", 80, True),
        (" LocalHost ", "localhost", 80, True),
        ("", "localhost", 80, False),
    ],
)
def test_no_proxy(no_proxy: str, host: str, port: int, bypass: bool) -> None:
    p = Proxies.parse(https_proxy="http://proxy:3128", no_proxy=no_proxy)
    assert p.bypass(host, port) is bypass
    assert (p.for_origin("https", host, port) is None) is bypass


def test_credentials_become_a_proxy_authorization_and_stay_out_of_repr() -> None:
    proxy = parse_proxy("HTTPS_PROXY", "http://user%40corp:s%3Acret@proxy:3128")
    assert proxy is not None
    assert proxy.authorization == "Basic dXNlckBjb3JwOnM6Y3JldA=="  # user@corp:s:cret
    assert "cret" not in repr(proxy) and proxy.url == "http://proxy:3128"


@pytest.mark.parametrize("value", ["https://proxy:3128", "socks5://proxy:1080", "http://:3128", "http://p:x"])
def test_unusable_proxy_urls_are_refused_with_the_variable_name(value: str) -> None:
    with pytest.raises(ProxyConfigError, match="HTTPS_PROXY"):
        parse_proxy("HTTPS_PROXY", value)
