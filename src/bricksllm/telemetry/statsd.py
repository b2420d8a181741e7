"""A statsd / DogStatsD sender: UDP, non-blocking, best effort.

`telemetry.hub.Telemetry` gathers the values of a batch (0.1 s) and hands the lines to `send`
once, from an event-loop callback: they leave in as few datagrams as fit (`max_packet` bytes
each), and a request never waits on the socket. With nothing listening the kernel answers
"connection refused" to a later send: the datagram is dropped and counted in `dropped`, never
raised.

Written by hand rather than with `datadog`'s DogStatsd after measuring both
(`bench/statsd_client.py`): the library spends several µs a metric (its formatting, locks and
own telemetry), and a governed request costs ~170 µs in all, so with the ~8 figures of a request
the library alone would have taken well over the 5 % the issue allows.

`datadog=True` writes DogStatsD tags (`name:1|c|#provider:openai,status:200`); plain statsd has
no tags, so their values are appended to the name instead
(`bricksllm.proxy.requests.openai.gpt-4o....200:1|c`), Graphite style.
"""

from __future__ import annotations

import re
import socket

from bricksllm.telemetry.catalogue import MetricType

# the DogStatsD client's default: one datagram fits an Ethernet MTU without fragmenting
MAX_PACKET = 1432
_TYPES: dict[MetricType, tuple[str, str]] = {  # (DogStatsD, plain statsd)
    "counter": ("c", "c"),
    "timing": ("ms", "ms"),
    "histogram": ("h", "ms"),
    "gauge": ("g", "g"),
}
_UNSAFE_TAG = re.compile(r"[^A-Za-z0-9_.:/@+\-{}]")
_UNSAFE_NAME = re.compile(r"[^A-Za-z0-9_\-]")


def number(value: float) -> str:
    return str(value) if type(value) is int else f"{value:.2f}"


def parse_address(address: str) -> tuple[str, int]:
    """`host:port` (or `[v6]:port`) -> (host, port); ValueError naming what is wrong."""
    host, sep, port = address.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"{address!r} is not host:port")
    return host.strip("[]"), int(port)


class StatsdSink:
    def __init__(self, address: str, *, datadog: bool, max_packet: int = MAX_PACKET) -> None:
        host, port = parse_address(address)
        family, kind, proto, _, sockaddr = socket.getaddrinfo(host, port, 0, socket.SOCK_DGRAM)[0]
        self._sock = socket.socket(family, kind, proto)
        self._sock.setblocking(False)
        self._sock.connect(sockaddr)
        self.datadog = datadog  # DogStatsD: tags, and several values of a timing in one line
        self._max_packet = max_packet
        self.sent = 0  # datagrams
        self.dropped = 0  # datagrams the kernel refused (nothing listening, buffer full)

    def head(
        self, name: str, kind: MetricType, tag_names: tuple[str, ...], tag_values: tuple[str, ...]
    ) -> tuple[str, str]:
        """What comes before and after the value(s) in a line of this metric with these tags;
        `name` already carries the `bricksllm.` prefix."""
        dd, plain = _TYPES[kind]
        if self.datadog:
            tags = ",".join(
                f"{n}:{_UNSAFE_TAG.sub('_', v) or 'none'}" for n, v in zip(tag_names, tag_values, strict=True)
            )
            return name, f"|{dd}" + (f"|#{tags}" if tags else "")
        parts = [_UNSAFE_NAME.sub("_", v.strip("/")) or "none" for v in tag_values]
        return ".".join((name, *parts)), f"|{plain}"

    def line(
        self,
        name: str,
        kind: MetricType,
        value: float,
        tag_names: tuple[str, ...],
        tag_values: tuple[str, ...],
    ) -> str:
        head, tail = self.head(name, kind, tag_names, tag_values)
        return f"{head}:{number(value)}{tail}"

    def send(self, lines: list[str]) -> None:
        """Pack the lines into datagrams of at most `max_packet` bytes and send them."""
        packet: list[str] = []
        size = 0
        for line in lines:
            if packet and size + len(line) + 1 > self._max_packet:
                self._write("\n".join(packet))
                packet, size = [], 0
            packet.append(line)
            size += len(line) + 1
        if packet:
            self._write("\n".join(packet))

    def _write(self, packet: str) -> None:
        try:
            self._sock.send(packet.encode("utf-8", "replace"))
            self.sent += 1
        except OSError:  # refused (nothing listens), would block, too big: statsd is best effort
            self.dropped += 1

    def close(self) -> None:
        self._sock.close()
