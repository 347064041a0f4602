from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.browser.conftest import log_in
from tests.factories import PASSWORD, make_user
from tests.helpers import subprocess_env

pytestmark = pytest.mark.django_db(transaction=True)

WRITER = """
import django, time; django.setup()
from observability import get_observability
obs = get_observability()
deadline = time.monotonic() + 8
while time.monotonic() < deadline:
    for _ in range(20):
        with obs.trace_span("browser.test", agent_name="security", kind="action"):
            with obs.trace_span("chat", kind="llm") as s:
                s.set_tokens(input_tokens=500, output_tokens=50, model="gpt-4o-mini", provider="openai")
    time.sleep(0.1)
obs.flush()
"""

CALLS = "document.getElementById('chart-calls').data[0].y.reduce((a, b) => a + (b || 0), 0)"


def test_the_overview_charts_grow_live_without_reloading(
    browser: Any, live_server_url: str, artifacts_dir: Path
) -> None:
    make_user("viewer", username="vera")
    page = log_in(browser, live_server_url, "vera", PASSWORD)
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.goto("/?window=15m")
    page.wait_for_selector("#live-indicator.live-on", timeout=10_000)
    before = page.evaluate(CALLS)
    page.evaluate("window.__marker = 'no reload'")
    writer = subprocess.Popen([sys.executable, "-c", WRITER], env=subprocess_env())
    try:
        started = time.monotonic()
        page.wait_for_function(f"{CALLS} > {before}", timeout=20_000)
        # Writing starts after Django boots in the subprocess; measure from the first stored batch.
        grew_after = time.monotonic() - started
        first = page.evaluate(CALLS)
        page.wait_for_function(f"{CALLS} > {first}", timeout=3_000)  # and keeps growing within 3 s
    finally:
        writer.wait(timeout=60)
    assert page.evaluate("window.__marker") == "no reload"
    latency = page.evaluate("document.getElementById('chart-latency').data[2].y.filter(v => v !== null).length")
    assert latency >= 1
    assert page.locator("#kpi-calls").inner_text() != "–"
    page.screenshot(path=str(artifacts_dir / "overview-live.png"), full_page=True)
    assert errors == []
    assert grew_after < 20


def test_pause_stops_updates_and_resume_catches_up(browser: Any, live_server_url: str) -> None:
    make_user("viewer", username="paula")
    page = log_in(browser, live_server_url, "paula", PASSWORD)
    page.goto("/?window=15m")
    page.wait_for_selector("#live-indicator.live-on", timeout=10_000)
    page.click("#pause-button")
    assert page.locator("#live-indicator").inner_text().strip() == "Paused"
    before = page.evaluate(CALLS)
    subprocess.run([sys.executable, "-c", WRITER.replace("+ 8", "+ 1")], env=subprocess_env(), check=True, timeout=60)
    time.sleep(1.5)
    assert page.evaluate(CALLS) == before  # paused: nothing applied
    page.click("#pause-button")
    page.wait_for_function(f"{CALLS} > {before}", timeout=5_000)  # resume re-reads the window
