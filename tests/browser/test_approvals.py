"""Two people, two browsers: an operator asks for a critical action, an approver sees it arrive
live, decides, and the run follows the decision."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from tests.browser.conftest import log_in
from tests.factories import PASSWORD, make_user

pytestmark = pytest.mark.django_db(transaction=True)


def wait_for_status(run_id: str, wanted: set[str], timeout: float = 60) -> str:
    from agents.models import ActionRun

    deadline = time.monotonic() + timeout
    status = ""
    while time.monotonic() < deadline:
        status = ActionRun.objects.get(pk=run_id).status
        if status in wanted:
            return status
        time.sleep(0.3)
    return status


def request_firewall(browser: Any, url: str, username: str) -> tuple[Any, str]:
    page = log_in(browser, url, username, PASSWORD)
    page.goto("/agents/security/firewall_enable/run/")
    page.click("#run-form button[type=submit]")
    page.wait_for_url("**/runs/*/")
    return page, page.url.rstrip("/").rsplit("/", 1)[1]


def test_an_approver_sees_the_request_arrive_live_and_approves_it(
    browser: Any, live_server_url: str, celery_worker: Any, artifacts_dir: Path
) -> None:
    make_user("operator", username="otto")
    make_user("approver", username="april")
    approver = log_in(browser, live_server_url, "april", PASSWORD)
    approver.goto("/approvals/")
    approver.evaluate("window.__marker = 'no reload'")
    operator, run_id = request_firewall(browser, live_server_url, "otto")
    assert wait_for_status(run_id, {"awaiting_approval"}, 10) == "awaiting_approval"
    row = approver.locator(f"#approvals-table tr[data-run='{run_id}']")
    row.wait_for(timeout=15_000)  # arrives without a reload
    assert approver.evaluate("window.__marker") == "no reload"
    row.locator("a").click()
    approver.wait_for_selector("#approval-decide")
    approver.fill("#approval-comment", "Change window approved.")
    approver.click("#approval-decide button[value=approve]")
    assert wait_for_status(run_id, {"succeeded", "failed", "dead_letter"}) == "succeeded"
    approver.screenshot(path=str(artifacts_dir / "approved.png"), full_page=True)
    operator.reload()
    assert "succeeded" in operator.content()


def test_a_rejected_request_never_runs(browser: Any, live_server_url: str, celery_worker: Any) -> None:
    make_user("operator", username="olga")
    make_user("approver", username="arne")
    _, run_id = request_firewall(browser, live_server_url, "olga")
    approver = log_in(browser, live_server_url, "arne", PASSWORD)
    approver.goto("/approvals/")
    approver.locator(f"#approvals-table tr[data-run='{run_id}'] a").click()
    approver.click("#approval-decide button[value=reject]")  # no reason: refused
    assert "reason" in approver.content().lower()
    approver.fill("#approval-comment", "Not during the freeze.")
    approver.click("#approval-decide button[value=reject]")
    assert wait_for_status(run_id, {"rejected"}, 10) == "rejected"


def test_the_requester_cannot_approve_their_own_request(browser: Any, live_server_url: str) -> None:
    user = make_user("operator", username="sam")
    from django.contrib.auth.models import Group

    user.groups.add(Group.objects.get(name="approver"))
    page, run_id = request_firewall(browser, live_server_url, "sam")
    page.goto("/approvals/")
    page.locator(f"#approvals-table tr[data-run='{run_id}'] a").click()
    assert page.locator("#approval-decide button[value=approve]").count() == 0
