"""Live agent pages re-read the database after their websocket reconnects: what changed while
they were not listening shows up without a reload. Times show in the viewer's time zone."""

from __future__ import annotations

from typing import Any

import pytest

from agents.models import ActionRun
from tests.factories import PASSWORD, make_user

pytestmark = pytest.mark.django_db(transaction=True)

# Keep every WebSocket the page opens, so the test can drop the connection (a server restart).
TRACK_SOCKETS = """
(() => {
  const Native = window.WebSocket;
  window.__sockets = [];
  window.WebSocket = function (...args) { const ws = new Native(...args); window.__sockets.push(ws); return ws; };
  window.WebSocket.prototype = Native.prototype;
  Object.assign(window.WebSocket, { CONNECTING: 0, OPEN: 1, CLOSING: 2, CLOSED: 3 });
})();
"""
RUNS_SOCKET_OPEN = "() => window.__sockets.some((s) => s.url.endsWith('/ws/runs/') && s.readyState === 1)"
DROP_RUNS_SOCKET = "() => window.__sockets.filter((s) => s.url.endsWith('/ws/runs/')).forEach((s) => s.close())"


def _page(browser: Any, base_url: str, username: str, timezone_id: str = "UTC") -> Any:
    context = browser.new_context(viewport={"width": 1366, "height": 768}, base_url=base_url, timezone_id=timezone_id)
    context.add_init_script(TRACK_SOCKETS)
    page = context.new_page()
    page.goto("/accounts/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{base_url}/")
    return page


def _run(status: str) -> ActionRun:
    return ActionRun.objects.create(agent="kernel", action="info", status=status)  # no live event is sent


def test_the_runs_list_re_reads_its_rows_after_a_reconnect(browser: Any, live_server_url: str) -> None:
    make_user("viewer", username="vera")
    run = _run("queued")
    page = _page(browser, live_server_url, "vera")
    page.goto("/runs/")
    page.wait_for_function(RUNS_SOCKET_OPEN)
    ActionRun.objects.filter(pk=run.pk).update(status="succeeded")  # while the page hears nothing
    newcomer = _run("running")
    page.evaluate("window.__marker = 'no reload'")
    page.evaluate(DROP_RUNS_SOCKET)
    status = page.locator(f"tr[data-run='{run.pk}'] [data-field='status']")
    status.filter(has_text="succeeded").wait_for(timeout=15_000)
    page.locator(f"tr[data-run='{newcomer.pk}']").wait_for(timeout=5_000)
    assert page.evaluate("window.__marker") == "no reload"


def test_a_run_page_catches_up_with_a_status_it_missed(browser: Any, live_server_url: str) -> None:
    make_user("viewer", username="viktor")
    run = _run("running")
    page = _page(browser, live_server_url, "viktor")
    page.goto(f"/runs/{run.pk}/")
    page.wait_for_function(RUNS_SOCKET_OPEN)
    ActionRun.objects.filter(pk=run.pk).update(status="failed", message="lost while offline")
    page.evaluate(DROP_RUNS_SOCKET)
    page.locator("#run-status", has_text="failed").wait_for(timeout=15_000)
    page.get_by_text("lost while offline").wait_for(timeout=10_000)  # the page was re-read


def test_run_times_show_in_the_viewers_time_zone(browser: Any, live_server_url: str) -> None:
    make_user("viewer", username="tokyo")
    run = _run("succeeded")
    page = _page(browser, live_server_url, "tokyo", timezone_id="Asia/Tokyo")
    page.goto("/runs/")
    cell = page.locator(f"tr[data-run='{run.pk}'] time")
    expected = page.evaluate(
        "(iso) => new Date(iso).toLocaleString(undefined, {dateStyle: 'medium', timeStyle: 'medium'})",
        cell.get_attribute("datetime"),
    )
    assert cell.inner_text() == expected
    assert run.created_at.strftime("%Y-%m-%d %H:%M") not in cell.inner_text()  # not the server's UTC text
