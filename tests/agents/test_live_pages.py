"""The live agent pages: the rows partial they re-read after a reconnect, and their formatting
(times as <time> elements localized by format.js, costs and durations as the overview shows them)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from agents.models import ActionRun
from tests.helpers import login

pytestmark = pytest.mark.django_db


def _run(**fields: Any) -> ActionRun:
    return ActionRun.objects.create(agent="kernel", action="info", **fields)


def test_the_runs_page_serves_its_rows_alone_for_the_live_re_read(viewer: Any) -> None:
    done, queued = _run(status="succeeded"), _run(status="queued")
    hidden = ActionRun.objects.create(agent="chaos", action="flaky", status="queued")
    client = login(viewer)
    rows = client.get("/runs/?partial=1").content.decode()
    assert "<html" not in rows and rows.count("<tr") == 2
    assert f'data-run="{done.pk}"' in rows and f'data-run="{queued.pk}"' in rows and str(hidden.pk) not in rows
    only = client.get("/runs/?partial=1&status=queued").content.decode()
    assert f'data-run="{queued.pk}"' in only and f'data-run="{done.pk}"' not in only


def test_run_pages_format_cost_duration_and_times_like_the_overview(viewer: Any) -> None:
    run = _run(
        status="succeeded",
        cost_usd=Decimal("0.000000"),
        latency_ms=12345.6,
        attempts_log=[
            {"attempt": 1, "started_at": "2026-01-02T03:04:05+00:00", "latency_ms": 1.234, "outcome": "succeeded"}
        ],
    )
    page = login(viewer).get(f"/runs/{run.pk}/").content.decode()
    assert "$0.000000" not in page and "<dd>$0</dd>" in page
    assert "12.3 s" in page and "1.2 ms" in page
    assert f'<time datetime="{run.created_at.isoformat()}">' in page
    assert '<time datetime="2026-01-02T03:04:05+00:00">' in page
    assert "/static/js/format." in page  # localizes every <time> to the viewer's zone
    priced = _run(status="succeeded", cost_usd=Decimal("0.012345"))
    assert "<dd>$0.012</dd>" in login(viewer).get(f"/runs/{priced.pk}/").content.decode()


@pytest.mark.parametrize("url", ["/runs/", "/workflows/", "/schedules/"])
def test_agent_pages_load_the_shared_formatting(viewer: Any, url: str) -> None:
    assert "/static/js/format." in login(viewer).get(url).content.decode()
