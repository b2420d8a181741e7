"""The dashboard with ADMIN_PASS set: it asks for the password before anything else, shows no
data before it is given, keeps it for the browser tab only and sends it as X-API-KEY."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.browser.conftest import Served, admin_call

pytest.importorskip("playwright")
from playwright.sync_api import expect

PASSWORD = "adm-Browser-Pass-7"
KEY_NAME = "confidential-key-name"


@pytest.fixture(scope="module")
def locked(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    s = Served(tmp_path_factory.mktemp("gate"), admin_pass=PASSWORD)
    s.start()
    setting = admin_call(
        s, "PUT", "/api/provider-settings", {"provider": "openai", "setting": {"apikey": "sk-x"}}, PASSWORD
    )
    admin_call(
        s,
        "PUT",
        "/api/key-management/keys",
        {"name": KEY_NAME, "key": "bk-gate", "settingId": setting["id"]},
        PASSWORD,
    )
    yield s
    s.stop()


def test_password_first_then_data(locked: Served, page_of: Any) -> None:
    page, rec = page_of(locked)
    page.goto(locked.ui)
    password = page.get_by_label("Password")
    expect(password).to_be_focused()
    expect(page.locator("#nav")).to_be_hidden()
    page.wait_for_load_state("networkidle")
    assert KEY_NAME not in page.content()
    before = [(m, url.removeprefix(locked.origin)) for m, url, _ in rec.api_calls()]
    assert before == [("GET", "/api/events?limit=1")]  # the probe alone, answered 401

    password.fill("not-the-password")
    page.keyboard.press("Enter")
    expect(page.get_by_role("alert")).to_have_text("Wrong password.")
    assert KEY_NAME not in page.content()
    assert page.evaluate("sessionStorage.length") == 0

    password.fill(PASSWORD)
    page.get_by_role("button", name="Unlock").click()
    expect(page.get_by_role("heading", name="Overview")).to_be_visible()
    expect(page.get_by_role("link", name=KEY_NAME)).to_be_visible()
    after = [h for _, url, h in rec.api_calls()][2:]  # after the two refused probes
    assert after and all(h.get("x-api-key") == PASSWORD for h in after)
    assert page.evaluate("Object.values(sessionStorage)") == [PASSWORD]
    assert page.evaluate("localStorage.length") == 0  # the tab's session only

    page.reload()  # same tab: still unlocked
    expect(page.get_by_role("link", name=KEY_NAME)).to_be_visible()

    page.get_by_role("button", name="Lock").click()
    expect(page.get_by_label("Password")).to_be_visible()
    assert KEY_NAME not in page.content()
    assert page.evaluate("sessionStorage.length") == 0


def test_a_new_tab_session_asks_again(locked: Served, page_of: Any) -> None:
    page, _ = page_of(locked)
    page.goto(locked.ui + "#/keys")
    expect(page.get_by_label("Password")).to_be_visible()
    page.get_by_label("Password").fill(PASSWORD)
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name="Keys")).to_be_visible()  # the page that was asked for
    expect(page.get_by_role("link", name=KEY_NAME)).to_be_visible()
    other, _ = page_of(locked)  # a new browser context: no sessionStorage
    other.goto(locked.ui + "#/keys")
    expect(other.get_by_label("Password")).to_be_visible()
    assert KEY_NAME not in other.content()
