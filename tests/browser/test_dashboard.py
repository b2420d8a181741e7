"""The dashboard in headless Chromium against a running gateway (no ADMIN_PASS): configure it
through the UI, make proxied calls with the OpenAI SDK, and find them in the overview's charts,
the events table and the key's page. The tests share one gateway and run in file order.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest

from bricksllm.domain.models import Event
from tests.browser.conftest import SCREENSHOTS, Recorder, Served, admin_call

pytest.importorskip("playwright")
from playwright.sync_api import expect

from tests.contract.test_counters import add_spend

DASH = "\u2013"  # the en dash of "1\u20134 of 4"
SECRET = "bk-browser-secret-1"
UPSTREAM_KEY = "sk-upstream-from-the-browser"


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    s = Served(tmp_path_factory.mktemp("dashboard"))
    s.start()
    yield s
    s.stop()


def dialog(page: Any) -> Any:
    return page.locator("dialog[open]")


def column_sum(page: Any, chart: str, column: int) -> float:
    return float(
        page.evaluate(
            """([chart, column]) => [...document.querySelectorAll(`#${chart} details tbody tr`)]
                .map((tr) => Number(tr.children[column].textContent.replace(/[^0-9.]/g, "")))
                .reduce((a, b) => a + b, 0)""",
            [chart, column],
        )
    )


def writes(rec: Recorder) -> list[tuple[str, str, dict[str, str]]]:
    """Requests that change something (the report is read with a POST)."""
    return [r for r in rec.api_calls() if r[0] != "GET" and "/api/reporting/" not in r[1]]


def test_configure_through_the_ui_then_see_proxied_calls(served: Served, page_of: Any) -> None:
    page, rec = page_of(served)
    page.goto(served.origin + "/")  # redirects to /ui/
    expect(page.get_by_role("heading", name="Overview")).to_be_visible()
    assert page.url == served.ui
    expect(page.locator("#total-requests .value")).to_have_text("0")

    # a provider setting pointing at the mock upstream
    page.get_by_role("link", name="Provider settings").click()
    page.get_by_role("button", name="New provider setting").click()
    form = dialog(page)
    form.get_by_label("Provider").select_option("openai")
    form.get_by_label("Name").fill("Mock OpenAI")
    form.get_by_label("API key").fill(UPSTREAM_KEY)
    form.get_by_label("Base URL").fill(served.mock.url)
    form.get_by_role("button", name="Create").click()
    expect(dialog(page)).to_have_count(0)
    row = page.locator("tbody tr", has_text="Mock OpenAI")
    expect(row).to_contain_text("apikey")
    assert UPSTREAM_KEY not in page.content()  # write-only

    # a key, created through the UI
    page.get_by_role("link", name="Keys").click()
    page.get_by_role("button", name="New key").click()
    form = dialog(page)
    form.get_by_label("Name").fill("browser key")
    form.get_by_label("Secret").fill(SECRET)
    form.get_by_label("Tags").fill("team-a, ui")
    form.get_by_label("Provider setting").select_option(label="Mock OpenAI (openai)")
    form.get_by_label("Spend limit, all time (USD)").fill("5")
    form.get_by_role("button", name="Create").click()
    expect(page.locator("#created-secret")).to_have_text(SECRET)  # shown once, to copy
    dialog(page).get_by_role("button", name="Done").click()
    row = page.locator("tbody tr", has_text="browser key")
    expect(row).to_contain_text("active")
    expect(row).to_contain_text("of $5.00")

    # proxied calls with the official SDK: three answered, one failing upstream
    client = served.openai(SECRET)
    for _ in range(3):
        client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])
    with pytest.raises(openai.InternalServerError):
        client.chat.completions.create(
            model="gpt-4o", messages=[{"role": "user", "content": "x"}], extra_headers={"x-mock": "error-500"}
        )
    client.close()
    assert served.mock.last("/chat/completions").headers["Authorization"] == f"Bearer {UPSTREAM_KEY}"
    served.flush_events()

    # the overview's totals and charts
    page.get_by_role("link", name="Overview").click()
    expect(page.locator("#total-requests .value")).to_have_text("4")
    expect(page.locator("#total-error-rate .value")).to_have_text("25%")
    expect(page.locator("#chart-requests canvas").first).to_be_visible()
    assert column_sum(page, "chart-requests", 1) == 4  # Requests column of the chart's data table
    assert column_sum(page, "chart-requests", 2) == 1  # Errors
    assert column_sum(page, "chart-tokens", 1) > 0
    p99_cells = page.evaluate(
        """[...document.querySelectorAll("#chart-latency details tbody tr td:nth-child(3)")]
            .map((td) => td.textContent)"""
    )
    assert 1 <= len([c for c in p99_cells if c != DASH]) <= 2  # only buckets with calls have a latency
    expect(page.locator("#chart-requests .summary")).to_have_text("4 in total, 1 not 2xx")
    key_row = page.locator("tbody tr", has_text="browser key")
    expect(key_row).to_contain_text("of $5.00")
    expect(key_row.locator("meter")).to_have_count(1)
    page.get_by_role("radio", name="Last hour").check()
    expect(page.locator("#chart-requests details tbody tr")).to_have_count(60)  # minutes
    expect(page.locator("#total-requests .value")).to_have_text("4")
    assert page.url.endswith("#/?range=hour")

    # the events table, filtered
    page.get_by_role("link", name="Events").click()
    expect(page.locator("#events-range")).to_have_text(f"1{DASH}4 of 4")
    expect(page.locator("table tbody tr")).to_have_count(4)
    page.get_by_label("Status").select_option("5xx")
    page.get_by_role("button", name="Apply").click()
    expect(page.locator("#events-range")).to_have_text(f"1{DASH}1 of 1")
    expect(page.locator("table tbody tr")).to_contain_text("500")
    page.get_by_label("Status").select_option("")
    page.get_by_label("Key").select_option(label="browser key")
    page.get_by_label("Model").fill("gpt-4o")
    page.get_by_role("button", name="Apply").click()
    expect(page.locator("#events-range")).to_have_text(f"1{DASH}4 of 4")
    page.get_by_label("Model").fill("gpt-4o-mini")
    page.get_by_role("button", name="Apply").click()
    expect(page.locator("#events-range")).to_have_text(f"0{DASH}0 of 0")

    # the key's own page
    page.goto(served.ui + "#/keys")
    page.get_by_role("link", name="browser key").click()
    expect(page.get_by_role("heading", name="Key browser key")).to_be_visible()
    expect(page.locator("#total-requests .value")).to_have_text("4")
    expect(page.locator("table.facts, dl.facts")).to_contain_text("$5.00 total")
    expect(page.locator("tbody tr", has_text="gpt-4o")).to_have_count(4)

    calls = writes(rec)
    assert [(m, url.removeprefix(served.origin)) for m, url, _ in calls] == [
        ("PUT", "/api/provider-settings"),
        ("PUT", "/api/key-management/keys"),
    ]
    assert all(h.get("content-type") == "application/json" for m, _, h in rec.api_calls() if m != "GET")
    assert all("x-api-key" not in h for _, _, h in rec.api_calls())  # no ADMIN_PASS, no header


def test_events_pagination(served: Served, page_of: Any) -> None:
    now = int(time.time())
    synthetic = [
        Event(
            id=f"page-{i:02d}",
            created_at=now - i,
            key_id="",
            provider="openai",
            model="gpt-4o-mini",
            status=200,
            path="/api/providers/openai/v1/chat/completions",
            method="POST",
            custom_id="pagination",
        )
        for i in range(30)
    ]
    served.run(served.gateway.stores.events.insert_events(synthetic))
    page, _ = page_of(served)
    page.goto(served.ui + "#/events?customId=pagination&size=25")
    expect(page.locator("#events-range")).to_have_text(f"1{DASH}25 of 30")
    expect(page.locator("table tbody tr")).to_have_count(25)
    expect(page.get_by_role("button", name="Previous")).to_be_disabled()
    page.get_by_role("button", name="Next").click()
    expect(page.locator("#events-range")).to_have_text(f"26{DASH}30 of 30")
    expect(page.locator("table tbody tr")).to_have_count(5)
    expect(page.locator("table tbody tr").last).to_contain_text("gpt-4o-mini")
    expect(page.get_by_role("button", name="Next")).to_be_disabled()


def test_edit_revoke_reinstate_and_delete_a_key(served: Served, page_of: Any) -> None:
    setting = admin_call(served, "GET", "/api/provider-settings")[0]
    admin_call(
        served,
        "PUT",
        "/api/key-management/keys",
        {"name": "lifecycle", "key": "bk-lifecycle", "settingId": setting["id"]},
    )
    client = served.openai("bk-lifecycle")
    ask = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}
    page, rec = page_of(served)
    page.goto(served.ui + "#/keys")
    row = page.locator("tbody tr", has_text="lifecycle")

    row.get_by_role("button", name="Edit lifecycle").click()
    form = dialog(page)
    expect(form.get_by_label("Secret")).to_have_count(0)  # the secret cannot be changed or seen
    form.get_by_label("Requests per period").fill("10")
    form.get_by_label("Request period").select_option("m")
    form.get_by_role("button", name="Save").click()
    expect(row).to_contain_text("10 req / minute")

    row.get_by_role("button", name="Revoke lifecycle").click()
    dialog(page).get_by_label("Reason (optional)").fill("leaked in a log")
    dialog(page).get_by_role("button", name="Revoke").click()
    expect(row.locator(".badge")).to_have_text("revoked")
    with pytest.raises(openai.AuthenticationError):
        client.chat.completions.create(**ask)

    row.get_by_role("button", name="Reinstate lifecycle").click()
    expect(row.locator(".badge")).to_have_text("active")
    client.chat.completions.create(**ask)

    row.get_by_role("button", name="Delete lifecycle").click()
    confirm = page.get_by_role("alertdialog")
    expect(confirm).to_contain_text("Delete key lifecycle?")
    confirm.get_by_role("button", name="Delete").click()
    expect(page.locator("tbody tr", has_text="lifecycle")).to_have_count(0)
    with pytest.raises(openai.AuthenticationError):
        client.chat.completions.create(**ask)
    client.close()
    paths = [(m, url.removeprefix(served.origin)) for m, url, _ in writes(rec)]
    assert [m for m, _ in paths] == ["PATCH", "PATCH", "PATCH", "DELETE"]
    assert all(h.get("content-type") == "application/json" for _, _, h in writes(rec))


def test_replacing_a_credential_reaches_the_upstream(served: Served, page_of: Any) -> None:
    page, _ = page_of(served)
    page.goto(served.ui + "#/settings")
    page.locator("tbody tr", has_text="Mock OpenAI").get_by_role("button", name="Edit").click()
    form = dialog(page)
    expect(form.get_by_label("API key")).to_have_value("")  # never shown
    expect(form.get_by_label("Base URL")).to_have_value(served.mock.url)
    form.get_by_label("API key").fill("sk-upstream-rotated")
    form.get_by_role("button", name="Save").click()
    expect(dialog(page)).to_have_count(0)
    client = served.openai(SECRET)
    client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])
    client.close()
    assert served.mock.last("/chat/completions").headers["Authorization"] == "Bearer sk-upstream-rotated"
    assert "sk-upstream-rotated" not in page.content()


def test_a_pii_policy_made_in_the_ui_screens_a_key(served: Served, page_of: Any) -> None:
    upstream = {"provider": "openai", "setting": {"apikey": "sk-up", "url": served.mock.url}, "name": "pii"}
    setting = admin_call(served, "PUT", "/api/provider-settings", upstream)
    key = {"name": "screened", "key": "bk-screened", "settingId": setting["id"]}
    admin_call(served, "PUT", "/api/key-management/keys", key)
    page, _ = page_of(served)
    page.goto(served.ui + "#/policies")
    page.get_by_role("button", name="New policy").click()
    form = dialog(page)
    form.get_by_label("Name").fill("no addresses")
    rules = '{"regexConfig": {"rules": [{"definition": "(", "action": "block"}]}}'
    form.get_by_label("Rules (JSON)").fill(rules)
    form.get_by_role("button", name="Create").click()
    expect(form.get_by_role("alert")).to_contain_text("regexConfig.rules[0].definition")  # the API's words
    form.get_by_label("Rules (JSON)").fill('{"config": {"rules": {"email": "allow_but_redact"}}}')
    form.get_by_role("button", name="Create").click()
    expect(page.locator("tbody tr", has_text="no addresses")).to_contain_text("email: allow_but_redact")

    page.goto(served.ui + "#/keys")
    page.locator("tbody tr", has_text="screened").get_by_role("button", name="Edit screened").click()
    dialog(page).get_by_label("PII policy").select_option(label="no addresses")
    dialog(page).get_by_role("button", name="Save").click()
    expect(dialog(page)).to_have_count(0)
    client = served.openai("bk-screened")
    client.chat.completions.create(
        model="gpt-4o", messages=[{"role": "user", "content": "mail ann@example.com"}]
    )
    client.close()
    sent = served.mock.last("/chat/completions").json()
    assert sent["messages"][0]["content"] == "mail [EMAIL]"


def test_custom_providers_page(served: Served, page_of: Any) -> None:
    page, _ = page_of(served)
    page.goto(served.ui + "#/custom-providers")
    expect(page.get_by_text("No custom providers yet.")).to_be_visible()
    page.get_by_role("button", name="New custom provider").click()
    form = dialog(page)
    form.get_by_label("Name").fill("acme")
    form.get_by_label("Credential entry").fill("apikey")
    assert "/chat/completions" in form.get_by_label("Route configs (JSON)").input_value()  # a template
    form.get_by_role("button", name="Create").click()
    row = page.locator("tbody tr", has_text="acme")
    expect(row).to_contain_text("https://llm.example.com/v1/chat/completions")
    row.get_by_role("button", name="Edit acme").click()
    dialog(page).get_by_label("Credential entry").fill("token")
    dialog(page).get_by_role("button", name="Save").click()
    expect(row).to_contain_text("token")
    assert admin_call(served, "GET", "/api/custom/providers")[0]["authentication_param"] == "token"


def test_refused_values_are_shown_on_their_fields(served: Served, page_of: Any) -> None:
    admin_call(served, "PUT", "/api/provider-settings", {"provider": "openai", "setting": {"apikey": "sk-1"}})
    page, _ = page_of(served)
    page.goto(served.ui + "#/keys")
    page.get_by_role("button", name="New key").click()
    form = dialog(page)
    expect(form.get_by_label("Name")).to_be_focused()  # the dialog takes the focus
    form.get_by_label("Name").fill("half a limit")
    form.get_by_role("button", name="Generate").click()
    assert form.get_by_label("Secret").input_value().startswith("bk-")
    form.get_by_label("Provider setting").select_option(index=1)
    form.get_by_label("Spend period").select_option("d")  # a period without an amount
    form.get_by_role("button", name="Create").click()
    expect(form.get_by_role("alert")).to_contain_text("costLimitInUsdOverTime")
    expect(form.get_by_label("Spend limit per period (USD)")).to_have_attribute("aria-invalid", "true")
    expect(form.get_by_label("Spend limit per period (USD)")).to_be_focused()
    page.keyboard.press("Escape")
    expect(dialog(page)).to_have_count(0)
    assert all(k["name"] != "half a limit" for k in admin_call(served, "GET", "/api/key-management/keys"))


def test_every_control_is_labelled_and_reachable_by_keyboard(served: Served, page_of: Any) -> None:
    page, _ = page_of(served)
    unlabelled = """() => [...document.querySelectorAll("input, select, textarea, button")]
        .filter((el) => !(el.labels && el.labels.length) && !el.getAttribute("aria-label")
                        && !el.textContent.trim() && el.type !== "hidden")
        .map((el) => el.outerHTML)"""
    for route in ("", "#/keys", "#/settings", "#/events", "#/custom-providers", "#/policies", "#/routes"):
        page.goto(served.ui + route)
        expect(page.locator("h1")).to_be_visible()
        page.wait_for_load_state("networkidle")
        assert page.evaluate(unlabelled) == [], route
    page.goto(served.ui + "#/keys")
    expect(page.get_by_role("heading", name="Keys")).to_be_focused()  # focus follows navigation

    def back_to(name: str) -> None:
        for _ in range(10):
            page.keyboard.press("Shift+Tab")
            if page.evaluate("document.activeElement.textContent") == name:
                return

    back_to("Events")
    expect(page.get_by_role("link", name="Events")).to_be_focused()
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name="Events")).to_be_focused()
    back_to("Skip to content")
    expect(page.get_by_role("link", name="Skip to content")).to_be_focused()
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name="Events")).to_be_focused()
    assert page.url.endswith("#/events")
    outline = page.evaluate(
        """() => { document.querySelector("nav a").focus();
                   return getComputedStyle(document.activeElement).outlineStyle; }"""
    )
    assert outline != "none"  # keyboard focus is visible


def test_dark_mode_follows_the_system(served: Served, browser: Any) -> None:
    context = browser.new_context(color_scheme="dark")
    page = context.new_page()
    page.goto(served.ui)
    expect(page.get_by_role("heading", name="Overview")).to_be_visible()
    dark = page.evaluate("getComputedStyle(document.body).backgroundColor")
    context.close()
    context = browser.new_context(color_scheme="light")
    page = context.new_page()
    page.goto(served.ui)
    light = page.evaluate("getComputedStyle(document.body).backgroundColor")
    context.close()
    assert dark == "rgb(21, 23, 27)" and light == "rgb(247, 247, 245)"


def _history(served: Served) -> None:
    """Extra keys and a day of traffic, so the README's screenshots show what a used gateway looks like."""
    setting = admin_call(served, "GET", "/api/provider-settings")[0]
    now = int(time.time())
    specs = [
        (
            "batch-jobs",
            ["batch"],
            {"costLimitInUsd": 50, "costLimitInUsdOverTime": 10, "costLimitInUsdUnit": "d"},
        ),
        ("support-bot", ["support"], {"costLimitInUsd": 20, "rateLimitOverTime": 60, "rateLimitUnit": "m"}),
        ("research", ["lab"], {}),
    ]
    events = []
    for n, (name, tags, limits) in enumerate(specs):
        key = admin_call(
            served,
            "PUT",
            "/api/key-management/keys",
            {"name": name, "key": f"bk-shot-{n}", "settingId": setting["id"], "tags": tags, **limits},
        )
        spent = 0
        for i in range(0, 86_400, 600 * (n + 1)):
            t = now - 86_400 + i
            cost = 20_000 + (i // 600 % 7) * 9_000 * (n + 1)
            spent += cost
            events.append(
                Event(
                    id=f"shot-{n}-{i}",
                    created_at=t,
                    key_id=key["keyId"],
                    provider="openai",
                    model=("gpt-4o", "gpt-4o-mini", "o3")[n],
                    status=500 if i % 16_200 == 0 else 200,
                    path="/api/providers/openai/v1/chat/completions",
                    method="POST",
                    tags=tuple(tags),
                    cost_micros=cost,
                    prompt_token_count=400 + i % 900,
                    completion_token_count=150 + i % 300,
                    latency_in_ms=300 + (i * 7) % 900 + 400 * n,
                )
            )
        served.run(add_spend(served.gateway.counters, key["keyId"], spent))
    served.run(served.gateway.stores.events.insert_events(events))


def test_screenshots_for_the_readme(served: Served, page_of: Any, tmp_path: Path) -> None:
    """Always taken and checked; written to docs/screenshots/ when missing or when
    UPDATE_SCREENSHOTS=1 (so an ordinary test run does not rewrite tracked files)."""
    _history(served)
    page, _ = page_of(served)
    shots = {}
    for name, route, ready in (("overview", "", "#chart-latency canvas"), ("keys", "#/keys", "tbody tr")):
        page.goto(served.ui + route)
        expect(page.locator(ready).first).to_be_visible()
        page.wait_for_load_state("networkidle")
        path = tmp_path / f"{name}.png"
        page.screenshot(path=str(path), full_page=True)
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 20_000
        shots[name] = path
    for name, path in shots.items():
        target = SCREENSHOTS / f"{name}.png"
        if os.environ.get("UPDATE_SCREENSHOTS") == "1" or not target.exists():
            SCREENSHOTS.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, target)
