"""Browser fixtures: the whole gateway and the mock OpenAI upstream on a background event loop,
Debian's Chromium driven by Playwright's sync API, one browser per test module.

The gateway is built from `Settings` exactly as `bricksllm serve` builds it (as in
tests/integration), but runs on its own loop in a thread, so the tests can be plain functions
using Playwright's and the OpenAI SDK's synchronous clients. Every page records each request it
makes; `page` fails the test if one went to another host or the page logged an error.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import pytest

from tests.served import Served

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
T = TypeVar("T")


def _chromium_or_skip() -> str:
    path = shutil.which("chromium") or (CHROMIUM if os.path.exists(CHROMIUM) else None)
    if path is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is not installed (.ci/run installs it)")
        pytest.skip("chromium is not installed (apt-get install -y chromium)")
    return path


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    executable = _chromium_or_skip()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        yield b
        b.close()


@dataclass
class Recorder:
    """What a page did: every request URL (with the headers it carried) and every error it logged."""

    requests: list[tuple[str, str, dict[str, str]]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def api_calls(self) -> list[tuple[str, str, dict[str, str]]]:
        return [r for r in self.requests if "/api/" in r[1]]

    def foreign(self, origin: str) -> list[str]:
        return [
            url
            for _, url, _ in self.requests
            if not (url.startswith(origin + "/") or url.startswith("data:"))
        ]


def open_page(browser: Any, served: Served) -> tuple[Any, Any, Recorder]:
    context = browser.new_context(viewport={"width": 1360, "height": 900}, color_scheme="light")
    page = context.new_page()
    rec = Recorder()
    page.on("request", lambda r: rec.requests.append((r.method, r.url, dict(r.headers))))
    page.on("pageerror", lambda exc: rec.errors.append(f"page error: {exc}"))
    page.on("console", lambda m: rec.errors.append(f"console: {m.text}") if m.type == "error" else None)
    page.set_default_timeout(10_000)
    return context, page, rec


def expected_console(message: str) -> bool:
    """The browser logs every 4xx answer as a console error; the tests cause some on purpose
    (the password gate's 401, a refused form's 400). Script errors are never expected."""
    return message.startswith("console: Failed to load resource: the server responded with a status of 4")


def check_page(rec: Recorder, served: Served) -> None:
    assert rec.foreign(served.origin) == [], "the page contacted another host"
    assert [e for e in rec.errors if not expected_console(e)] == []


def admin_call(served: Served, method: str, path: str, body: Any = None, password: str = "") -> Any:
    """A call to the admin API from the test itself (setup that is not under test)."""
    import json
    import urllib.request

    headers = {"Content-Type": "application/json"}
    if password:
        headers["X-API-KEY"] = password
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(served.origin + path, data=data, method=method, headers=headers)
    with urllib.request.urlopen(req, timeout=10) as resp:
        return json.load(resp)


@pytest.fixture
def page_of(browser: Any) -> Iterator[Any]:
    """`page_of(served)` -> (page, recorder): a fresh browser context (own sessionStorage) whose
    requests are checked for foreign hosts, and whose errors fail the test, when it ends."""
    opened: list[tuple[Any, Recorder, Served]] = []

    def open_(served: Served) -> tuple[Any, Recorder]:
        context, page, rec = open_page(browser, served)
        opened.append((context, rec, served))
        return page, rec

    yield open_
    for context, rec, served in opened:
        context.close()
        check_page(rec, served)
