from __future__ import annotations

import uuid
from typing import Any

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from evaluation.services import annotation_items_add_spans, dataset_items_add_spans
from observability.models import Span
from tests.evaluation.factories import make_dataset, make_queue

pytestmark = pytest.mark.django_db


def _span(**attributes: Any) -> Span:
    now = timezone.now()
    return Span.objects.create(span_id=42, trace_id=uuid.uuid4(), name="llm.chat", kind="llm", model="sim/simple",
                               started_at=now, ended_at=now, latency_ms=12.5, attributes=attributes)  # fmt: skip


def test_queue_items_keep_a_copy_of_the_span_content_after_the_span_is_deleted(operator: Any) -> None:
    queue = make_queue(items=0)
    span = _span(**{"gen_ai.input.messages": [{"role": "user", "content": "hi"}], "gen_ai.output.messages": "hello"})
    ref = (span.trace_id, span.span_id)
    assert annotation_items_add_spans(queue=queue, refs=[ref], user=operator) == 1
    assert annotation_items_add_spans(queue=queue, refs=[ref], user=operator) == 0  # one item per object
    Span.objects.all()._raw_delete(Span.objects.db)  # retention
    item = queue.items.get()
    assert item.content["input"] == [{"role": "user", "content": "hi"}] and item.content["output"] == "hello"
    assert item.content["context"]["model"] == "sim/simple" and item.source_key.startswith("span:")


def test_spans_become_dataset_items_and_unknown_spans_are_refused(operator: Any) -> None:
    dataset, span = make_dataset([]), _span(**{"gen_ai.input.messages": "q", "gen_ai.output.messages": "a"})
    assert dataset_items_add_spans(dataset=dataset, refs=[(span.trace_id, span.span_id)], user=operator) == 1
    assert dataset.items.values_list("input", "expected").get() == ("q", "a")
    with pytest.raises(ValidationError, match="no longer exist"):
        dataset_items_add_spans(dataset=dataset, refs=[(uuid.uuid4(), 1)], user=operator)


def test_a_span_named_twice_is_added_once_and_not_reported_missing(operator: Any) -> None:
    queue, dataset = make_queue(items=0), make_dataset([])
    span = _span(**{"gen_ai.input.messages": "q", "gen_ai.output.messages": "a"})
    refs = [(span.trace_id, span.span_id)] * 3
    assert annotation_items_add_spans(queue=queue, refs=refs, user=operator) == 1
    assert dataset_items_add_spans(dataset=dataset, refs=refs, user=operator) == 1
    assert dataset.items.count() == 1


def _trace(answer: str = "It is 4.") -> Any:
    """A gateway-style trace: a root without content, a route span, and the LLM call holding the messages."""
    from observability.models import Trace

    now, trace_id = timezone.now(), uuid.uuid4()
    Trace.objects.create(trace_id=trace_id, name="gateway.chat_completions", kind="internal", username="alice",
                         started_at=now, ended_at=now, span_count=3)  # fmt: skip
    common = {"trace_id": trace_id, "started_at": now, "ended_at": now, "latency_ms": 5}
    Span.objects.create(span_id=1, name="gateway.chat_completions", kind="internal", **common)
    Span.objects.create(span_id=2, parent_span_id=1, name="route", kind="route", **common)
    Span.objects.create(span_id=3, parent_span_id=1, name="chat sim/simple", kind="llm", model="sim/simple",
                        attributes={"gen_ai.input.messages": [{"role": "user", "content": "2+2?"}],
                                    "gen_ai.output.messages": [{"role": "assistant", "content": answer}]},
                        **common)  # fmt: skip
    return trace_id


def test_a_whole_trace_becomes_one_queue_item_that_keeps_its_content_after_retention(operator: Any) -> None:
    from evaluation.services import annotation_items_add_traces
    from observability.models import Trace

    queue, trace_id = make_queue(items=0), _trace()
    assert annotation_items_add_traces(queue=queue, trace_ids=[trace_id, trace_id], user=operator) == 1
    assert annotation_items_add_traces(queue=queue, trace_ids=[trace_id], user=operator) == 0  # one per object
    Span.objects.all()._raw_delete(Span.objects.db)
    Trace.objects.all().delete()
    item = queue.items.get()
    assert item.source_key == f"trace:{trace_id.hex}" and item.trace_id == trace_id and item.span_id is None
    assert item.content["input"] == [{"role": "user", "content": "2+2?"}]
    assert item.content["output"] == [{"role": "assistant", "content": "It is 4."}]
    context = item.content["context"]
    assert context["trace"] == "gateway.chat_completions" and context["username"] == "alice"
    assert [(s["name"], s["kind"]) for s in context["spans"]] == [
        ("gateway.chat_completions", "internal"), ("route", "route"), ("chat sim/simple", "llm")
    ]  # fmt: skip
    with pytest.raises(ValidationError, match="no longer exist"):
        annotation_items_add_traces(queue=queue, trace_ids=[trace_id], user=operator)


def test_traces_are_added_to_queues_and_datasets_through_the_api(operator: Any) -> None:
    import json

    from tests.helpers import login

    queue, dataset, trace_id = make_queue(items=0), make_dataset([]), _trace()
    client = login(operator)
    body = json.dumps({"traces": [trace_id.hex]})
    resp = client.post(f"/api/evaluation/queues/{queue.uuid}/traces", data=body, content_type="application/json")
    assert resp.json() == {"added": 1}
    resp = client.post(f"/api/evaluation/datasets/{dataset.uuid}/traces", data=body, content_type="application/json")
    assert resp.json() == {"added": 1}
    assert dataset.items.get().expected == [{"role": "assistant", "content": "It is 4."}]
    bad = client.post(f"/api/evaluation/queues/{queue.uuid}/traces", data=json.dumps({"traces": ["xyz"]}),
                      content_type="application/json")  # fmt: skip
    assert bad.status_code == 422


def test_the_review_page_lists_a_trace_item_s_spans() -> None:
    from django.urls import reverse

    from evaluation.services import annotation_items_add_traces, annotation_next
    from tests.factories import make_user
    from tests.helpers import login

    queue, annotator = make_queue(items=0), make_user("annotator")
    annotation_items_add_traces(queue=queue, trace_ids=[_trace()], user=annotator)
    item = annotation_next(queue=queue, user=annotator)
    page = login(annotator).get(reverse("evaluation-item-review", args=[item.uuid]))
    assert page.status_code == 200 and b'id="review-spans"' in page.content and b"chat sim/simple" in page.content
