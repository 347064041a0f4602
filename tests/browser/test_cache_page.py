from __future__ import annotations

import time
from decimal import Decimal
from typing import Any

import pytest

from routing import response_cache as rc
from tests.browser.conftest import log_in
from tests.factories import PASSWORD, make_user

pytestmark = pytest.mark.django_db(transaction=True)

SAVED = "(document.getElementById('chart-saved').data || [{y: [0]}])[0].y.slice(-1)[0] || 0"


def test_the_cache_page_draws_hit_rate_and_savings_live_for_one_namespace(browser: Any, live_server_url: str) -> None:
    namespace = f"token:app:browser-{time.time_ns()}"
    rc.record(namespace, "miss")
    make_user("viewer", username="cora")
    page = log_in(browser, live_server_url, "cora", PASSWORD)
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.goto(f"/cache/?window=1h&ns={namespace}")
    page.wait_for_function("document.getElementById('chart-cache').data !== undefined", timeout=10_000)
    names = page.evaluate("document.getElementById('chart-cache').data.map((t) => t.name)")
    assert names == ["Hits", "Misses", "Hit rate"]
    page.evaluate("window.__marker = 'no reload'")
    rc.record(namespace, "hit", saved_usd=Decimal("0.25"), saved_ms=1200)
    page.wait_for_function(f"{SAVED} >= 0.25", timeout=15_000)  # the next poll brings it
    assert page.evaluate("window.__marker") == "no reload"
    assert page.inner_text("#hit-rate") == "50%"
    assert errors == []
