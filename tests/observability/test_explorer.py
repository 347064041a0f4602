"""The traces explorer's filters and the waterfall of a nested trace."""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime, timedelta
from html import unescape

import pytest

from observability import get_observability
from observability.models import Trace
from tests.factories import make_user
from tests.helpers import login
from tests.observability.helpers import flushed

pytestmark = pytest.mark.django_db(transaction=True)
obs = get_observability()


def make_traces() -> dict[str, Trace]:
    with obs.trace_span("security.audit_review", agent_name="security", kind="action"):
        with obs.trace_span("route", kind="route"):
            time.sleep(0.002)
        with obs.trace_span("chat gpt-4o-mini", kind="llm") as llm:
            llm.set_tokens(input_tokens=100, output_tokens=20, model="gpt-4o-mini", provider="openai")
            with obs.trace_span("tool.lookup", kind="tool"):
                time.sleep(0.005)
    with pytest.raises(RuntimeError), obs.trace_span("kernel.load_report", agent_name="kernel", kind="action"):
        raise RuntimeError("procfs unreadable")
    flushed()
    return {t.name: t for t in Trace.objects.all()}


def names(html: bytes) -> set[str]:
    return set(re.findall(r'/traces/[0-9a-f]{32}/">([^<]+)</a>', html.decode()))


def test_filters_narrow_the_list() -> None:
    make_traces()
    client = login(make_user("viewer"))
    assert names(client.get("/traces/").content) == {"security.audit_review", "kernel.load_report"}
    assert names(client.get("/traces/?agent=kernel").content) == {"kernel.load_report"}
    assert names(client.get("/traces/?status=error").content) == {"kernel.load_report"}
    assert names(client.get("/traces/?model=gpt-4o-mini").content) == {"security.audit_review"}
    assert names(client.get("/traces/?kind=tool").content) == {"security.audit_review"}
    assert names(client.get("/traces/?q=procfs").content) == {"kernel.load_report"}  # error text
    assert names(client.get("/traces/?q=tool.look").content) == {"security.audit_review"}  # a child's name
    assert names(client.get("/traces/?range=15m&q=nothing-like-this").content) == set()


def test_bad_filters_show_form_errors_not_500() -> None:
    client = login(make_user("viewer"))
    resp = client.get("/traces/?range=custom&since=not-a-date&status=weird")
    assert resp.status_code == 200
    assert set(resp.context["form"].errors) >= {"since", "status"}
    assert client.get("/traces/?cursor=garbage").status_code == 200


def test_the_waterfall_shows_the_span_tree_to_scale() -> None:
    traces = make_traces()
    trace = traces["security.audit_review"]
    resp = login(make_user("viewer")).get(f"/traces/{trace.trace_id.hex}/")
    assert resp.status_code == 200
    rows = resp.context["rows"]
    assert [(r["span"].name, r["depth"]) for r in rows] == [
        ("security.audit_review", 0), ("route", 1), ("chat gpt-4o-mini", 1), ("tool.lookup", 2)
    ]  # fmt: skip
    root, tool = rows[0], rows[3]
    assert root["offset_pct"] == 0 and root["width_pct"] == pytest.approx(100, abs=0.5)
    assert 0 < tool["offset_pct"] < 100 and tool["width_pct"] < 100
    assert tool["offset_pct"] >= rows[2]["offset_pct"]  # a child starts after its parent
    assert b"gen_ai.usage.input_tokens" in resp.content and b"Export JSON" in resp.content


def test_an_unknown_trace_is_a_404() -> None:
    assert login(make_user("viewer")).get("/traces/" + "0" * 31 + "1/").status_code == 404


def test_cost_is_shown_per_user_and_api_token() -> None:
    from datetime import timedelta

    from aios_core import context
    from observability.selectors import costs_by_caller

    with context.bound(username="dana", api_token="billing-app"), obs.trace_span("by.app"):
        pass
    with obs.trace_span("by.system"):
        pass
    flushed()
    rows = costs_by_caller(window=timedelta(hours=1))
    assert {(r["user"], r["api_token"]) for r in rows} == {("dana", "billing-app"), (None, None)}
    page = login(make_user("viewer")).get("/?window=1h")
    assert page.context["snapshot"]["by_caller"][0]["traces"] == 1


def _trace_at(name: str, started_at: datetime) -> None:
    from observability.tracing import Span as OpenSpan
    from observability.writer import get_writer

    span = OpenSpan(get_writer(), name, "action", "clock", None)
    span.started_at = started_at
    span._ended = True
    get_writer().add_span(span, started_at + timedelta(milliseconds=5), 5.0)


def test_a_custom_range_is_read_in_the_viewers_time_zone() -> None:
    _trace_at("tokyo-morning", datetime(2030, 1, 1, 1, 30, tzinfo=UTC))  # 10:30 in Tokyo
    _trace_at("utc-morning", datetime(2030, 1, 1, 10, 30, tzinfo=UTC))  # 19:30 in Tokyo
    flushed()
    client = login(make_user("viewer"))
    query = "/traces/?range=custom&since=2030-01-01T10:00&until=2030-01-01T11:00"
    assert names(client.get(f"{query}&tz=Asia/Tokyo").content) == {"tokyo-morning"}
    assert names(client.get(query).content) == {"utc-morning"}  # no zone sent: UTC
    resp = client.get(f"{query}&tz=Mars/Olympus")
    assert resp.status_code == 200 and "tz" in resp.context["form"].errors


def test_the_explorer_page_tells_the_server_the_viewers_time_zone() -> None:
    html = login(make_user("viewer")).get("/traces/").content.decode()
    assert '<input type="hidden" name="tz"' in html and "js/traces" in html


def test_pages_follow_the_next_cursor_to_the_oldest_trace_without_repeats() -> None:
    start = datetime(2030, 2, 1, tzinfo=UTC)
    for n in range(120):
        _trace_at(f"page-{n:03d}", start + timedelta(seconds=n))
    flushed()
    client = login(make_user("viewer"))
    url = "/traces/?range=custom&since=2030-02-01T00:00&until=2030-02-02T00:00"
    seen: list[str] = []
    pages = 0
    while url:
        html = client.get(url).content.decode()
        found = re.findall(r'/traces/[0-9a-f]{32}/">([^<]+)</a>', html)
        seen += found
        pages += 1
        older = re.search(r'href="(\?[^"]*cursor=[^"]+)" id="older-traces"', html)
        url = "/traces/" + unescape(older.group(1)) if older else ""
    assert pages == 3
    assert seen == [f"page-{n:03d}" for n in reversed(range(120))]  # newest first, each once
