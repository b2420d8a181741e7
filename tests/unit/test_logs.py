"""The logging set-up (formatters, the queue, LOG_FORMAT) and the correlation id and capture of
`services.proxy_trace`."""

from __future__ import annotations

import io
import json
import logging
import os
import select
import sys
import threading

import pytest
from multidict import CIMultiDict

from bricksllm.errors import (
    LimitExceeded,
)
from bricksllm.services.proxy_trace import REQUEST_ID_HEADER, Trace, correlation_id
from bricksllm.settings import Settings, SettingsError
from bricksllm.telemetry.logs import ConsoleFormatter, JsonFormatter, configure, formatter


def _record(
    msg: str = "hello %s", args: tuple[object, ...] = ("world",), **extra: object
) -> logging.LogRecord:
    record = logging.LogRecord("bricksllm.test", logging.WARNING, __file__, 1, msg, args, None)
    record.__dict__.update(extra)
    record.created, record.msecs = 1_800_000_000.25, 250.0
    return record


def test_json_line_has_the_standard_fields_and_the_extras() -> None:
    line = JsonFormatter().format(_record(status=200, upstream_ms=1.5, reason=""))
    assert "\n" not in line
    assert json.loads(line) == {
        "time": "2027-01-15T08:00:00.250Z",
        "level": "warning",
        "logger": "bricksllm.test",
        "message": "hello world",
        "status": 200,
        "upstream_ms": 1.5,
        "reason": "",
    }


def test_json_line_keeps_a_traceback_on_one_line() -> None:
    try:
        raise RuntimeError("boom\nsecond line")
    except RuntimeError:
        record = logging.LogRecord("x", logging.ERROR, __file__, 1, "failed", None, sys.exc_info())
    line = JsonFormatter().format(record)
    assert "\n" not in line
    parsed = json.loads(line)
    assert parsed["message"] == "failed" and "RuntimeError: boom" in parsed["exception"]


def test_console_line_is_readable_with_its_fields() -> None:
    text = ConsoleFormatter().format(_record(status=200, latency_ms=12.345, reason=""))
    assert text.endswith("WARNING bricksllm.test: hello world  status=200 latency_ms=12.3")


def test_auto_format_is_json_unless_a_terminal() -> None:
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    assert isinstance(formatter("auto", io.StringIO()), JsonFormatter)
    assert isinstance(formatter("auto", Terminal()), ConsoleFormatter)
    assert isinstance(formatter("json", Terminal()), JsonFormatter)
    assert isinstance(formatter("console", io.StringIO()), ConsoleFormatter)


def test_configure_writes_through_the_queue_and_close_restores_the_root_logger() -> None:
    root = logging.getLogger()
    before = (root.handlers[:], root.level)
    out = io.StringIO()
    configured = configure("INFO", "json", out)
    try:
        items = ["a"]
        logging.getLogger("bricksllm.x").info("items %s", items, extra={"n": 1})
        items.append("b")  # the message was merged when logged, not when written
        logging.getLogger("bricksllm.x").debug("not at INFO")
        logging.getLogger("sqlalchemy.engine").warning("quiet loggers still warn")
        assert logging.getLogger("asyncpg").level == logging.WARNING
    finally:
        configured.close()
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [(line["message"], line.get("n")) for line in lines] == [
        ("items ['a']", 1),
        ("quiet loggers still warn", None),
    ]
    assert (root.handlers, root.level) == before


def test_log_settings() -> None:
    s = Settings.from_env({})
    assert (s.log_format, s.log_bodies, s.log_body_max_bytes) == ("auto", False, 65536)
    s = Settings.from_env({"LOG_FORMAT": "JSON", "LOG_BODIES": "true", "LOG_BODY_MAX_BYTES": "10"})
    assert (s.log_format, s.log_bodies, s.log_body_max_bytes) == ("json", True, 10)
    with pytest.raises(SettingsError, match="LOG_FORMAT"):
        Settings.from_env({"LOG_FORMAT": "xml"})
    with pytest.raises(SettingsError, match="LOG_BODY_MAX_BYTES"):
        Settings.from_env({"LOG_BODY_MAX_BYTES": "-1"})


# ------------------------------------------------------------------ proxy_trace


@pytest.mark.parametrize("given", ["abc", "A.b_c:d-1", "x" * 128])
def test_a_well_formed_client_id_is_kept(given: str) -> None:
    assert correlation_id(CIMultiDict({REQUEST_ID_HEADER: given})) == given


@pytest.mark.parametrize("given", ["", "x" * 129, "a b", "a/b", "é", "a\x00"])
def test_otherwise_a_new_id(given: str) -> None:
    made = {correlation_id(CIMultiDict({REQUEST_ID_HEADER: given})) for _ in range(50)}
    assert len(made) == 50 and all(len(m) == 32 and int(m, 16) >= 0 for m in made)


def _limit(code: str) -> LimitExceeded:
    return LimitExceeded("x", code=code, retry_after=1)


def test_the_answer_is_kept_up_to_the_limit_only_when_asked() -> None:
    trace = Trace("id", capture_limit=10)
    trace.relay(b"not kept")
    assert trace.relayed is None
    trace.capturing(True)
    for part in (b"data: ", b"abc", b"", b"defgh"):
        trace.relay(part)
    assert trace.relayed == b"data: abcd"
    assert Trace("id", capture_limit=0).capturing(True).relayed is None  # LOG_BODY_MAX_BYTES=0


def test_an_output_nobody_reads_neither_blocks_logging_nor_shutdown() -> None:
    read_fd, write_fd = os.pipe()
    with os.fdopen(write_fd, "w") as stream:
        configured = configure("INFO", "json", stream, capacity=100)
        log = logging.getLogger("bricksllm.burst")
        for i in range(2000):  # ~2 MB: far beyond the pipe's buffer and the queue
            log.info("line %d %s", i, "x" * 1000)  # returns: records beyond the queue are dropped
        lines: list[dict[str, object]] = []

        def drain() -> None:
            with os.fdopen(read_fd, "rb") as pipe:
                lines.extend(json.loads(line) for line in pipe)

        reader = threading.Thread(target=drain)
        reader.start()  # the output moves again
        closing = threading.Thread(target=configured.close)
        closing.start()
        closing.join(30)
        assert not closing.is_alive()
    reader.join(30)
    messages = [str(line["message"]) for line in lines]
    written = sum(m.startswith("line ") for m in messages)
    summaries = [line for line in lines if line["logger"] == "bricksllm.logs"]
    assert summaries and all(s["level"] == "warning" for s in summaries)
    assert (
        written + sum(int(str(s["dropped"])) for s in summaries) == 2000
    )  # every record: written or counted
    assert 0 < written < 2000 and lines[-1] is summaries[-1]  # the last count: written at shutdown


def test_shutdown_gives_up_on_an_output_that_stays_blocked() -> None:
    read_fd, write_fd = os.pipe()
    with os.fdopen(write_fd, "w") as stream:
        configured = configure("INFO", "json", stream, capacity=10)
        for _ in range(200):
            logging.getLogger("bricksllm.burst").info("x" * 1000)
        closing = threading.Thread(target=configured.close, kwargs={"timeout": 0.2})
        closing.start()
        closing.join(30)
        assert not closing.is_alive()  # the writer thread is left blocked (a daemon)
    os.close(read_fd)  # the blocked write fails (EPIPE): the writer thread ends


def test_lines_are_written_in_batches_of_whole_lines_that_workers_cannot_interleave(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Many lines per write (no write, nor thread hand-off, per line), yet every write is whole
    lines of at most PIPE_BUF bytes (atomic on a pipe shared by workers) or one longer line."""
    writes: list[bytes] = []
    real_write = os.write

    def recording_write(fd: int, data: bytes) -> int:
        writes.append(bytes(data))
        return real_write(fd, data)

    monkeypatch.setattr("bricksllm.telemetry.logs.os.write", recording_write)
    with open(os.devnull, "w") as stream:
        configured = configure("INFO", "json", stream)
        log = logging.getLogger("bricksllm.batch")
        for i in range(300):
            log.info("line %d %s", i, "x" * 200)
        log.info("long %s", "y" * 10_000)
        configured.close()
    lines = [line for w in writes for line in w.splitlines()]
    assert len(lines) == 301 and all(w.endswith(b"\n") for w in writes)
    assert len(writes) < 40  # ~13 lines of ~300 bytes fit in one 4 KiB write
    assert all(len(w) <= select.PIPE_BUF or w.count(b"\n") == 1 for w in writes)
