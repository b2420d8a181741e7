"""The dashboard's static files on the admin app: where they are served, with which headers,
what is refused, that they need no password while the API still does, and that every file the
page loads ships in the package."""

from __future__ import annotations

import fnmatch
import re
import tomllib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bricksllm.errors import NotFound
from bricksllm.http.ui import UI_DIR, resolve
from tests.integration.admin_harness import KEYS, Admin, running_admin

PASSWORD = "adm-ui-pass"
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
async def admin(tmp_path: Path) -> AsyncIterator[Admin]:
    async with running_admin(tmp_path, admin_pass=PASSWORD) as a:
        yield a


async def test_root_and_ui_redirect_to_the_dashboard(admin: Admin) -> None:
    for path in ("/", "/ui"):
        resp = await admin.client.get(path, allow_redirects=False)
        assert resp.status == 302 and resp.headers["Location"] == "/ui/", path


async def test_static_files_need_no_password_and_carry_a_strict_policy(admin: Admin) -> None:
    for path, kind in (
        ("/ui/", "text/html"),
        ("/ui/index.html", "text/html"),
        ("/ui/app.css", "text/css"),
        ("/ui/js/main.js", "text/javascript"),
        ("/ui/js/pages/keys.js", "text/javascript"),
        ("/ui/vendor/uplot/uPlot.esm.js", "text/javascript"),
    ):
        resp = await admin.client.get(path)  # no X-API-KEY
        assert resp.status == 200, path
        assert resp.content_type == kind, path
        csp = resp.headers["Content-Security-Policy"]
        assert "default-src 'none'" in csp and "connect-src 'self'" in csp and "script-src 'self'" in csp
        assert resp.headers["X-Content-Type-Options"] == "nosniff"
        assert resp.headers["Cache-Control"] == "no-cache"
        etag = resp.headers["ETag"]
        again = await admin.client.get(path, headers={"If-None-Match": etag})
        assert again.status == 304, path
    # the API behind it still needs the password
    resp = await admin.client.get(KEYS)
    assert resp.status == 401


@pytest.mark.parametrize(
    "path",
    [
        "/ui/nothing.js",
        "/ui/vendor/uplot/LICENSE",  # not a served type
        "/ui/vendor/uplot/README.md",
        "/ui/js",  # a directory
        "/ui/.hidden.js",
        "/ui/..%2f..%2fapp.py",
        "/ui/js/..%5c..%5capp.py",
    ],
)
async def test_other_paths_under_ui_are_not_found(admin: Admin, path: str) -> None:
    resp = await admin.client.get(path)
    assert resp.status == 404, path
    assert resp.content_type == "application/problem+json"


@pytest.mark.parametrize(
    "path",
    [
        "/ui/../api/key-management/keys",
        "/ui/%2e%2e/api/key-management/keys",
        "/ui/..%2fapi/key-management/keys",
    ],
)
async def test_the_open_prefix_does_not_open_the_api(admin: Admin, path: str) -> None:
    resp = await admin.client.get(path)
    assert resp.status in {401, 404}, path
    assert "keyId" not in await resp.text()


def test_resolve_stays_inside_the_ui_folder(tmp_path: Path) -> None:
    (tmp_path / "ui").mkdir()
    (tmp_path / "ui" / "a.js").write_text("x")
    (tmp_path / "secret.js").write_text("x")
    (tmp_path / "ui" / "link.js").symlink_to(tmp_path / "secret.js")
    assert resolve("a.js", tmp_path / "ui") == tmp_path / "ui" / "a.js"
    for bad in ("../secret.js", "link.js", "", "b.js"):
        with pytest.raises(NotFound):
            resolve(bad, tmp_path / "ui")


def _ui_files() -> list[str]:
    return sorted(str(p.relative_to(UI_DIR.parent.parent)) for p in UI_DIR.rglob("*") if p.is_file())


def test_every_dashboard_file_is_package_data() -> None:
    """`pip install` ships what the page loads: each file matches a package-data pattern."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    patterns = config["tool"]["setuptools"]["package-data"]["bricksllm"]
    files = _ui_files()
    assert files
    unshipped = [f for f in files if not any(fnmatch.fnmatch(f, p) for p in patterns)]
    assert unshipped == []


def test_every_module_import_and_asset_reference_resolves() -> None:
    """A typo in an import path would only show in a browser; check them all here."""
    referenced = 0
    for js in UI_DIR.rglob("*.js"):
        if "vendor" in js.parts:
            continue
        for target in re.findall(r'^import .*? from "(\.[^"]+)";$', js.read_text(), flags=re.M):
            assert (js.parent / target).resolve().is_file(), (js, target)
            referenced += 1
    html = (UI_DIR / "index.html").read_text()
    for target in re.findall(r'(?:src|href)="([^"#:]+)"', html):
        assert (UI_DIR / target).is_file(), target
        referenced += 1
    assert referenced > 20
    assert (UI_DIR / "vendor" / "uplot" / "LICENSE").read_text().startswith("The MIT License")
