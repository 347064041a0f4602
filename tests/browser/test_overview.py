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
n = 0
while time.monotonic() < deadline:
    for _ in range(20):
        n += 1
        with obs.trace_span("browser.test", agent_name="security", kind="action"):
            with obs.trace_span("cache.lookup", kind="cache") as c:
                c.set_attribute("aios.cache.result", "hit" if n % 3 == 0 else "miss")
            with obs.trace_span("chat", kind="llm") as s:
                s.set_tokens(input_tokens=500, output_tokens=50, model="gpt-4o-mini", provider="openai")
    time.sleep(0.1)
obs.flush()
"""


def _total(chart: str, field: str, trace: int = 0) -> str:
    return f"document.getElementById('{chart}').data[{trace}].{field}.reduce((a, b) => a + (b || 0), 0)"


CALLS = _total("chart-calls", "y")
# What each chart draws from, read from the page's own Plotly data.
GROWTH = {
    "calls": CALLS,
    "latency": _total("chart-latency", "customdata"),  # the calls behind each percentile point
    "cost": _total("chart-cost", "y"),
    "cache": _total("chart-cache", "y"),  # cache lookups (the hit rate's denominator)
}
ALL_CHARTS = "({" + ", ".join(f"{k}: {v}" for k, v in GROWTH.items()) + "})"


def _all_above(values: dict[str, float]) -> str:
    return " && ".join(f"({GROWTH[k]}) > {v}" for k, v in values.items())


def test_every_overview_chart_grows_live_within_3_seconds(
    browser: Any, live_server_url: str, artifacts_dir: Path
) -> None:
    from tests.seeds import ensure_seed_data

    ensure_seed_data()  # prices, so the cost chart has something to draw
    make_user("viewer", username="vera")
    page = log_in(browser, live_server_url, "vera", PASSWORD)
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.goto("/?window=15m")
    page.wait_for_selector("#live-indicator.live-on", timeout=10_000)
    before = page.evaluate(ALL_CHARTS)
    page.evaluate("window.__marker = 'no reload'")
    writer = subprocess.Popen([sys.executable, "-c", WRITER], env=subprocess_env())
    try:
        started = time.monotonic()
        # Writing starts after Django boots in the subprocess; measure from the first stored batch.
        page.wait_for_function(_all_above(before), timeout=20_000)
        grew_after = time.monotonic() - started
        first = page.evaluate(ALL_CHARTS)
        page.wait_for_function(_all_above(first), timeout=3_000)  # every chart keeps growing within 3 s
    finally:
        writer.wait(timeout=60)
    assert page.evaluate("window.__marker") == "no reload"
    latency = page.evaluate("document.getElementById('chart-latency').data[2].y.filter(v => v !== null).length")
    assert latency >= 1
    hit_rate = page.evaluate("document.getElementById('chart-cache').data[1].y.filter(v => v !== null)")
    assert hit_rate and all(0 <= v <= 100 for v in hit_rate)
    assert page.locator("#kpi-calls").inner_text() != "–"
    assert page.locator("#table-kinds").inner_text().count("cache") >= 1
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
