from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.browser.conftest import log_in
from tests.factories import PASSWORD, make_user

pytestmark = pytest.mark.django_db(transaction=True)


def test_an_admin_logs_in_and_sees_the_whole_navigation(
    browser: Any, live_server_url: str, artifacts_dir: Path
) -> None:
    make_user("admin", username="ada")
    page = log_in(browser, live_server_url, "ada", PASSWORD)
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.reload()
    labels = page.locator("nav.nav a").all_inner_texts()
    assert [label.split()[0] for label in labels] == [
        "Overview", "Runs", "Approvals", "Traces", "Routing", "Cache", "Evaluation", "Admin"
    ]  # fmt: skip
    page.screenshot(path=str(artifacts_dir / "overview.png"), full_page=True)
    assert errors == []


def test_a_viewer_sees_no_approvals_and_gets_a_friendly_403(browser: Any, live_server_url: str) -> None:
    make_user("viewer", username="vic")
    page = log_in(browser, live_server_url, "vic", PASSWORD)
    assert "Approvals" not in page.locator("nav.nav").inner_text()
    resp = page.goto("/approvals/")
    assert resp.status == 403
    assert page.locator("h1").inner_text() == "You don’t have access to this page"


def test_a_wrong_password_shows_an_error_on_the_form(browser: Any, live_server_url: str) -> None:
    make_user("viewer", username="wes")
    context = browser.new_context(base_url=live_server_url)
    page = context.new_page()
    page.goto("/runs/")
    assert "/accounts/login/" in page.url
    page.fill("#id_username", "wes")
    page.fill("#id_password", "nope")
    page.click("button[type=submit]")
    assert "didn’t match" in page.locator(".form-error").inner_text()
