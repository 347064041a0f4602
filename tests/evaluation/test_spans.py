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
