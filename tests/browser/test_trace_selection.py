"""An operator selects spans on a trace page and sends them to a new dataset; in the explorer, "select all"
ticks every trace (run with `pytest -m browser`)."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from django.utils import timezone

from evaluation.models import Dataset
from observability.models import Span, Trace
from tests.browser.conftest import log_in
from tests.factories import PASSWORD, make_user

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def _trace(question: str) -> Trace:
    now = timezone.now()
    trace = Trace.objects.create(trace_id=uuid.uuid4(), name="gateway.chat_completions", kind="internal",
                                 started_at=now, ended_at=now, span_count=2)  # fmt: skip
    common = {"trace_id": trace.trace_id, "started_at": now, "ended_at": now, "latency_ms": 5}
    Span.objects.create(span_id=21, name="gateway.chat_completions", kind="internal", **common)
    Span.objects.create(
        span_id=22,
        parent_span_id=21,
        name="chat sim/simple",
        kind="llm",
        model="sim/simple",
        attributes={"gen_ai.input.messages": question, "gen_ai.output.messages": "4"},
        **common,
    )
    return trace


def test_an_operator_sends_a_selected_span_to_a_new_dataset(browser: Any, live_server_url: str) -> None:
    trace = _trace("2+2?")
    _trace("3+3?")
    make_user("operator", username="olga")
    page = log_in(browser, live_server_url, "olga", PASSWORD)
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)

    page.goto("/traces/")
    add = page.get_by_role("button", name="Add to dataset…")
    assert add.is_disabled()  # nothing selected yet
    page.check("[data-select-all]")
    assert page.locator("[data-selection-count]").inner_text() == "2" and add.is_enabled()

    page.goto(f"/traces/{trace.trace_id.hex}/")
    llm_row = page.locator("details.wf-row", has_text="chat sim/simple")
    llm_row.get_by_label("Select this span").check()
    assert llm_row.get_attribute("open") is None  # ticking a span does not unfold it
    assert page.locator("[data-selection-count]").inner_text() == "1"
    page.get_by_role("button", name="Add to dataset…").click()
    page.wait_for_selector("#selection-form")
    page.fill("#id_new_name", "picked in the browser")
    page.click("#selection-form button[type=submit]")
    page.wait_for_url("**/evaluation/datasets/*/")
    assert page.locator("#dataset-items").inner_text().count("2+2?") == 1
    assert list(Dataset.objects.get(name="picked in the browser").items.values_list("input", flat=True)) == ["2+2?"]
    assert errors == []
