"""Spans and traces selected in the traces explorer and on a trace page go to a dataset or an annotation queue.

Observability never imports evaluation: its templates post to evaluation's URLs, resolved by name."""

from __future__ import annotations

import re
import uuid

import pytest
from django.urls import reverse
from django.utils import timezone

from evaluation.models import Dataset
from observability.models import Span, Trace
from tests.evaluation.factories import make_dataset, make_queue
from tests.factories import make_user
from tests.helpers import login

pytestmark = pytest.mark.django_db


def _trace() -> Trace:
    now = timezone.now()
    trace = Trace.objects.create(trace_id=uuid.uuid4(), name="gateway.chat_completions", kind="internal",
                                 started_at=now, ended_at=now, span_count=2)  # fmt: skip
    common = {"trace_id": trace.trace_id, "started_at": now, "ended_at": now, "latency_ms": 5}
    Span.objects.create(span_id=11, name="gateway.chat_completions", kind="internal", **common)
    Span.objects.create(
        span_id=12,
        parent_span_id=11,
        name="chat sim/simple",
        kind="llm",
        model="sim/simple",
        attributes={"gen_ai.input.messages": "2+2?", "gen_ai.output.messages": "4"},
        **common,
    )
    return trace


DATASET_URL, QUEUE_URL = reverse("evaluation-selection-dataset"), reverse("evaluation-selection-queue")


def _actions(html: bytes) -> set[str]:
    return {url for url in (DATASET_URL, QUEUE_URL) if f'formaction="{url}"'.encode() in html}


def test_the_explorer_and_the_trace_page_offer_selection_to_the_roles_that_may_use_it() -> None:
    trace = _trace()
    explorer, page = reverse("obs-traces"), reverse("obs-trace-detail", args=[trace.trace_id])
    operator = login(make_user("operator"))
    html = operator.get(explorer).content
    assert f'name="trace" value="{trace.trace_id.hex}"'.encode() in html
    assert _actions(html) == {DATASET_URL, QUEUE_URL}
    html = operator.get(page).content
    assert f'name="span" value="{trace.trace_id.hex}:000000000000000c"'.encode() in html
    assert _actions(html) == {DATASET_URL, QUEUE_URL}
    assert len(re.findall(rb'name="span"', html)) >= 4  # a checkbox and a one-span button per span
    annotator = login(make_user("annotator"))
    assert _actions(annotator.get(explorer).content) == {QUEUE_URL}
    viewer = login(make_user("viewer"))
    for url in (explorer, page):
        html = viewer.get(url).content
        assert _actions(html) == set() and b'name="trace" value=' not in html and b'name="span" value=' not in html


def test_selected_spans_and_traces_go_to_a_chosen_or_new_dataset() -> None:
    trace, existing = _trace(), make_dataset([], name="regressions")
    client = login(make_user("operator"))
    selection = {"span": [f"{trace.trace_id.hex}:000000000000000c"], "trace": [trace.trace_id.hex]}
    chooser = client.post(DATASET_URL, selection)
    assert chooser.status_code == 200 and b"regressions" in chooser.content and b"2 selected" in chooser.content
    unchosen = client.post(DATASET_URL, {**selection, "confirm": "1"})
    assert unchosen.status_code == 422
    resp = client.post(DATASET_URL, {**selection, "confirm": "1", "dataset": str(existing.uuid)})
    assert resp.status_code == 302 and resp["Location"] == reverse("evaluation-dataset-detail", args=[existing.uuid])
    assert sorted(existing.items.values_list("input", flat=True)) == ["2+2?", "2+2?"]
    resp = client.post(DATASET_URL, {**selection, "confirm": "1", "new_name": "from traces"})
    new = Dataset.objects.get(name="from traces")
    assert resp.status_code == 302 and new.items.count() == 2


def test_selected_spans_and_traces_go_to_an_annotation_queue() -> None:
    trace, queue = _trace(), make_queue(items=0)
    client = login(make_user("annotator"))
    selection = {"span": [f"{trace.trace_id.hex}:000000000000000c"], "trace": [trace.trace_id.hex]}
    assert b"queue-1-0-600" in client.post(QUEUE_URL, selection).content
    resp = client.post(QUEUE_URL, {**selection, "confirm": "1", "queue": str(queue.uuid)})
    assert resp.status_code == 302 and resp["Location"] == reverse("evaluation-queue-detail", args=[queue.uuid])
    assert sorted(queue.items.values_list("source_key", flat=True)) == [
        f"span:{trace.trace_id.hex}:12", f"trace:{trace.trace_id.hex}"
    ]  # fmt: skip


def test_a_bad_selection_is_refused_with_a_reason_and_viewers_are_refused() -> None:
    client = login(make_user("operator"))
    assert client.post(DATASET_URL, {}).status_code == 422
    resp = client.post(DATASET_URL, {"span": ["nonsense"]})
    assert resp.status_code == 422 and b"nonsense" in resp.content
    gone = client.post(DATASET_URL, {"trace": [uuid.uuid4().hex], "confirm": "1", "new_name": "x"})
    assert gone.status_code == 422 and b"no longer exist" in gone.content and not Dataset.objects.exists()
    viewer = login(make_user("viewer"))
    assert viewer.post(DATASET_URL, {"trace": [uuid.uuid4().hex]}).status_code == 403
    assert viewer.post(QUEUE_URL, {"trace": [uuid.uuid4().hex]}).status_code == 403
