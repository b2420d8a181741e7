"""The dashboard's Routes page in headless Chromium: a route made in the UI (its refused values
shown on their fields first) is served to the OpenAI SDK, then edited and deleted."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import openai
import pytest

from tests.browser.conftest import Served, admin_call

pytest.importorskip("playwright")
from playwright.sync_api import expect

SECRET = "bk-route-browser"


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    s = Served(tmp_path_factory.mktemp("dashboard-routes"))
    s.start()
    yield s
    s.stop()


def dialog(page: Any) -> Any:
    return page.locator("dialog[open]")


def test_a_route_made_in_the_ui_is_served(served: Served, page_of: Any) -> None:
    setting = admin_call(
        served, "PUT", "/api/provider-settings",
        {"provider": "openai", "setting": {"apikey": "sk-up", "url": served.mock.url}},
    )  # fmt: skip
    key = admin_call(
        served, "PUT", "/api/key-management/keys", {"name": "k", "key": SECRET, "settingId": setting["id"]}
    )
    page, _ = page_of(served)
    page.goto(served.ui + "#/routes")
    expect(page.locator("h1")).to_have_text("Routes")
    page.get_by_role("button", name="New route").click()
    form = dialog(page)
    form.get_by_label("Name").fill("prod chat")
    form.get_by_label("Path").fill("/chat/prod")
    form.get_by_label("Key ids").fill(key["keyId"])
    form.get_by_label("Steps (JSON)").fill('[{"provider": "anthropic", "model": "claude"}]')
    form.get_by_role("button", name="Create").click()
    expect(form.get_by_role("alert")).to_contain_text("steps[0].provider")  # the API's words
    expect(form.get_by_label("Steps (JSON)")).to_have_attribute("aria-invalid", "true")
    form.get_by_label("Steps (JSON)").fill('[{"provider": "openai", "model": "gpt-4o-mini", "retries": 1}]')
    form.get_by_label("Answer identical requests from the cache").check()
    form.get_by_label("Cache ttl").fill("forever")
    form.get_by_role("button", name="Create").click()
    expect(form.get_by_role("alert")).to_contain_text("cacheConfig.ttl")
    form.get_by_label("Cache ttl").fill("10m")
    form.get_by_role("button", name="Create").click()
    row = page.locator("tbody tr", has_text="prod chat")
    expect(row).to_contain_text("/api/routes/chat/prod")
    expect(row).to_contain_text("openai gpt-4o-mini, 1 retries")
    expect(row).to_contain_text("on, 10m")

    base = f"http://127.0.0.1:{served.gateway.proxy_port}/api/routes/chat/prod"
    with openai.OpenAI(api_key=SECRET, base_url=base, max_retries=0) as client:
        messages: Any = [{"role": "user", "content": "hi"}]
        first = client.chat.completions.with_raw_response.create(model="x", messages=messages)
        again = client.chat.completions.with_raw_response.create(model="x", messages=messages)
        assert (first.headers["x-cache"], again.headers["x-cache"]) == ("miss", "hit")
        assert served.mock.last("/chat/completions").json()["model"] == "gpt-4o-mini"

        row.get_by_role("button", name="Edit prod chat").click()
        dialog(page).get_by_label("Retry strategy").select_option("exponential")
        dialog(page).get_by_role("button", name="Save").click()
        expect(dialog(page)).to_have_count(0)
        assert admin_call(served, "GET", "/api/routes")[0]["retryStrategy"] == "exponential"

        page.once("dialog", lambda d: d.accept())
        row.get_by_role("button", name="Delete").click()
        confirm = dialog(page)
        if confirm.count():
            confirm.get_by_role("button", name="Delete").click()
        expect(page.locator("tbody tr", has_text="prod chat")).to_have_count(0)
        with pytest.raises(openai.NotFoundError):
            client.chat.completions.create(model="x", messages=messages)
