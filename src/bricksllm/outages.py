"""Logging an outage once, not once per retry.

A component that retries against a store that is down (the event writer, the configuration
refresher, the LISTEN connection) would write a line, often with a traceback, on every attempt:
tens of thousands of lines in a minute. `OutageLog` writes one warning when the outage starts
(with the error's class and message, no traceback), then counts the failed attempts, and one
line when it ends saying how long it lasted and how many attempts failed.
"""

from __future__ import annotations

import logging
import time


class OutageLog:
    def __init__(self, logger: logging.Logger, what: str) -> None:
        self._log = logger
        self._what = what  # e.g. "events cannot be written"
        self._since: float | None = None
        self.failed_attempts = 0

    @property
    def ongoing(self) -> bool:
        return self._since is not None

    def failed(self, exc: BaseException) -> None:
        self.failed_attempts += 1
        if self._since is None:
            self._since = time.monotonic()
            self._log.warning("%s (%s: %s); retrying with backoff", self._what, type(exc).__name__, exc)

    def recovered(self, detail: str = "") -> None:
        if self._since is None:
            return
        seconds = time.monotonic() - self._since
        extra = f"; {detail}" if detail else ""
        self._log.warning(
            "%s no more: recovered after %.1f s and %d failed attempts%s",
            self._what, seconds, self.failed_attempts, extra,
        )  # fmt: skip
        self._since, self.failed_attempts = None, 0
