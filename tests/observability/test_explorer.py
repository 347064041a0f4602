"""The traces explorer's filters and the waterfall of a nested trace."""

from __future__ import annotations

import re
import time

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
