"""The metric catalogue, the statsd line format and packets, the Prometheus registry, and the
pieces of timing and tagging the observer relies on."""

from __future__ import annotations

import ast
import asyncio
import re
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from bricksllm.services.proxy_record import Timing
from bricksllm.settings import Settings, SettingsError
from bricksllm.telemetry.catalogue import BY_NAME, CATALOGUE, markdown_table
from bricksllm.telemetry.hub import Telemetry
from bricksllm.telemetry.observer import PROXY_SERIES, BoundedValues
from bricksllm.telemetry.prometheus import PrometheusSink
from bricksllm.telemetry.statsd import StatsdSink, parse_address

ROOT = Path(__file__).resolve().parents[2]
SRC = ROOT / "src" / "bricksllm"
CALLS = {"incr": "counter", "timing": "timing", "gauge": "gauge", "histogram": "histogram"}


def metric_calls() -> Iterator[tuple[Path, str, str]]:
    """(file, method, name) of every `<...>metrics.<method>("literal", ...)` call in the source."""
    for path in SRC.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
                continue
            target = ast.unparse(node.func.value)
            if node.func.attr in CALLS and re.search(r"(^|\.)_?metrics$|^m$", target) and node.args:
                first = node.args[0]
                assert isinstance(first, ast.Constant), f"{path}: a metric name must be a literal"
                yield path, node.func.attr, str(first.value)


def test_every_metric_emitted_is_in_the_catalogue_with_its_type() -> None:
    calls = [(str(path.relative_to(SRC)), name, CALLS[method]) for path, method, name in metric_calls()]
    assert len(calls) > 15  # the scan finds the calls
    calls += [("telemetry/observer.py", "proxy." + name, kind) for name, kind in PROXY_SERIES.items()]
    for where, name, kind in calls:
        assert name in BY_NAME, f"{where}: {name} is not in telemetry/catalogue.py"
        assert BY_NAME[name].type == kind, f"{name} is a {BY_NAME[name].type}, sent as a {kind}"
    assert {name for _, name, _ in calls} == set(BY_NAME)  # and nothing catalogued is never sent


def test_catalogue_names_and_tags_are_well_formed() -> None:
    assert len(BY_NAME) == len(CATALOGUE)
    for m in CATALOGUE:
        assert re.fullmatch(r"[a-z_]+(\.[a-z_]+)+", m.name), m.name
        assert all(re.fullmatch(r"[a-z_]+", t) for t in m.tags), m.tags
        assert m.meaning.endswith(".") and len(m.meaning) > 20
        assert "key_id" not in m.tags  # per-key tags only through `keyed`


def test_the_readme_lists_every_metric() -> None:
    assert markdown_table() in (ROOT / "README.md").read_text()


@pytest.fixture
def receiver() -> Iterator[socket.socket]:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as rx:
        rx.bind(("127.0.0.1", 0))
        rx.settimeout(2)
        yield rx


def address(rx: socket.socket) -> str:
    return f"127.0.0.1:{rx.getsockname()[1]}"


def test_dogstatsd_and_plain_statsd_lines(receiver: socket.socket) -> None:
    dd = StatsdSink(address(receiver), datadog=True)
    plain = StatsdSink(address(receiver), datadog=False)
    names, values = (
        ("provider", "model", "route"),
        ("openai", "gpt-3.5 turbo|x", "/api/providers/openai/v1/x"),
    )
    assert dd.line("bricksllm.a", "counter", 3, names, values) == (
        "bricksllm.a:3|c|#provider:openai,model:gpt-3.5_turbo_x,route:/api/providers/openai/v1/x"
    )
    assert dd.line("bricksllm.a", "timing", 12.5, (), ()) == "bricksllm.a:12.50|ms"
    assert dd.line("bricksllm.a", "timing", 12, (), ()) == "bricksllm.a:12|ms"
    assert dd.line("bricksllm.a", "histogram", 0.0001, ("k",), ("",)) == "bricksllm.a:0.00|h|#k:none"
    assert dd.line("bricksllm.a", "gauge", 7, (), ()) == "bricksllm.a:7|g"
    assert plain.line("bricksllm.a", "counter", 1, names, values) == (
        "bricksllm.a.openai.gpt-3_5_turbo_x.api_providers_openai_v1_x:1|c"
    )
    assert plain.line("bricksllm.a", "histogram", 5, (), ()) == "bricksllm.a:5|ms"  # no |h in statsd
    dd.close()
    plain.close()


def test_off_the_loop_a_value_is_sent_at_once(receiver: socket.socket) -> None:
    hub = Telemetry(StatsdSink(address(receiver), datadog=True), None)
    hub.incr("events.written", 3)
    assert receiver.recv(2048) == b"bricksllm.events.written:3|c"
    hub.close()


def test_lines_are_packed_in_datagrams_up_to_the_size_limit(receiver: socket.socket) -> None:
    sink = StatsdSink(address(receiver), datadog=True, max_packet=100)
    lines = [f"bricksllm.metric:{i}|c|#n:{i}" for i in range(10)]  # 25 bytes + a newline each
    sink.send(lines)
    assert sink.sent == 4  # three lines a packet
    packets = [receiver.recv(2048) for _ in range(4)]
    assert all(len(p) <= 100 for p in packets)
    assert b"\n".join(packets).decode().split("\n") == lines
    sink.close()


async def test_a_batch_is_aggregated(receiver: socket.socket) -> None:
    statsd = StatsdSink(address(receiver), datadog=True)
    prom = PrometheusSink()
    hub = Telemetry(statsd, prom, flush_interval=0)  # every loop tick
    for i in range(5):
        hub.incr("proxy.denied", tags={"kind": "rate"})
        hub.timing("admin.latency", 1.5 + i, {"route": "/r", "method": "GET", "status": "200"})
        hub.gauge("events.queue_depth", i)
    assert statsd.sent == 0  # nothing sent within the tick
    await asyncio.sleep(0)
    assert statsd.sent == 1
    assert receiver.recv(2048).decode().split("\n") == [
        "bricksllm.proxy.denied:5|c|#kind:rate",  # a counter's sum
        # DogStatsD 1.1: the tick's timings in one line
        "bricksllm.admin.latency:1.50:2.50:3.50:4.50:5.50|ms|#route:/r,method:GET,status:200",
        "bricksllm.events.queue_depth:4|g",  # a gauge's last value
    ]
    text = hub.render().decode()
    assert 'bricksllm_proxy_denied_total{kind="rate"} 5.0' in text
    assert 'bricksllm_admin_latency_seconds_count{method="GET",route="/r",status="200"} 5.0' in text
    plain = Telemetry(StatsdSink(address(receiver), datadog=False), None, flush_interval=0)
    plain.timing("admin.latency", 1, {"route": "/r", "method": "GET", "status": "200"})
    plain.timing("admin.latency", 2, {"route": "/r", "method": "GET", "status": "200"})
    await asyncio.sleep(0)
    assert receiver.recv(2048).decode().split("\n") == [
        "bricksllm.admin.latency.r.GET.200:1|ms",  # plain statsd: one value a line
        "bricksllm.admin.latency.r.GET.200:2|ms",
    ]
    hub.close()
    plain.close()


async def test_nobody_listening_is_counted_not_raised() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    sink = StatsdSink(f"127.0.0.1:{port}", datadog=True)
    for _ in range(3):
        sink.send(["bricksllm.x:1|c"])
        await asyncio.sleep(0.01)
    assert sink.dropped >= 1 and sink.sent + sink.dropped == 3
    sink.close()


@pytest.mark.parametrize("bad", ["localhost", ":8125", "host:0", "host:70000", "host:x"])
def test_bad_statsd_addresses_are_refused(bad: str) -> None:
    with pytest.raises(ValueError):
        parse_address(bad)
    with pytest.raises(SettingsError, match="STATS_ADDRESS"):
        Settings.from_env({"STATS_ADDRESS": bad})


def test_settings() -> None:
    assert parse_address("[::1]:9125") == ("::1", 9125)
    s = Settings.from_env({"STATS_PROVIDER": "datadog", "STATS_KEY_TAGS": "true", "METRICS_PORT": "9100"})
    assert (s.stats_enabled, s.stats_provider, s.stats_key_tags) == (True, "datadog", True)
    assert (s.metrics_enabled, s.metrics_port) == (True, 9100)
    s = Settings.from_env({})
    assert (s.stats_enabled, s.metrics_enabled, s.metrics_port, s.stats_key_tags) == (
        False,
        False,
        None,
        False,
    )
    with pytest.raises(SettingsError, match="METRICS_PORT"):
        Settings.from_env({"METRICS_PORT": "0"})


def test_prometheus_registry_renders_parseable_text(receiver: socket.socket) -> None:
    prom = PrometheusSink(key_tags=True)
    hub = Telemetry(StatsdSink(address(receiver), datadog=True), prom, key_tags=True)
    tags = {"provider": "openai", "model": "m", "route": "/r", "status": "200", "key_id": "k1"}
    hub.incr("proxy.requests", tags=tags)
    hub.incr("proxy.requests", tags=tags)
    hub.timing("proxy.latency", 250.0, tags)  # key_id is not a label of this one
    hub.gauge("events.queue_depth", 4)
    hub.histogram("events.batch_size", 20)
    hub.incr("not.catalogued", tags={"a": "b"})  # statsd only
    families = {f.name: f for f in text_string_to_metric_families(hub.render().decode())}
    [requests] = [s for s in families["bricksllm_proxy_requests"].samples if s.name.endswith("_total")]
    assert requests.labels == {**tags} and requests.value == 2
    latency = {s.name: s for s in families["bricksllm_proxy_latency_seconds"].samples}
    assert latency["bricksllm_proxy_latency_seconds_sum"].value == 0.25
    buckets = {
        s.labels["le"]: s.value
        for s in families["bricksllm_proxy_latency_seconds"].samples
        if "le" in s.labels
    }
    assert (buckets["0.1"], buckets["0.25"], buckets["+Inf"]) == (0, 1, 1)  # le: a value on a bound is in it
    assert "key_id" not in latency["bricksllm_proxy_latency_seconds_sum"].labels
    assert families["bricksllm_events_queue_depth"].samples[0].value == 4
    assert families["bricksllm_events_batch_size"].type == "histogram"
    assert "not_catalogued" not in prom.render().decode()
    hub.close()
    sent = [receiver.recv(4096).decode() for _ in range(6)]  # off the loop: one packet a metric
    assert "bricksllm.not.catalogued:1|c|#a:b" in sent
    assert "bricksllm.proxy.latency:250.00|ms|#provider:openai,model:m,route:/r,status:200" in sent


def test_model_tags_are_bounded() -> None:
    models = BoundedValues(2)
    assert [models.tag(v) for v in ("a", "b", "a", "c", "", "bad model")] == [
        "a",
        "b",
        "a",
        "other",
        "none",
        "other",
    ]
    assert BoundedValues(5).tag("x" * 101) == "other"


def test_overhead_is_total_minus_upstream_and_a_stream_s_stops_at_its_headers() -> None:
    refused = Timing(started=10.0)
    assert refused.overhead_ms(10.002) == pytest.approx(2.0)
    assert refused.upstream(10.002) == 0.0
    buffered = Timing(started=10.0, sent=10.001, answered=10.050, done=10.060)
    assert buffered.upstream(10.062) == pytest.approx(0.059)
    assert buffered.overhead_ms(10.062) == pytest.approx(3.0)
    stream = Timing(started=10.0, sent=10.001, answered=10.050, replied=10.052, first_byte=10.051, done=12.0)
    assert stream.overhead_ms(12.5) == pytest.approx(3.0)  # 52 ms to the headers, 49 of them upstream
    name, value = Timing(started=0.0).overhead_header()
    assert name == "x-bricksllm-overhead-ms" and float(value) >= 0
