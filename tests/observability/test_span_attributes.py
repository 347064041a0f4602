"""Other apps merge attributes into spans (e.g. evaluation's scores) through one service."""

from __future__ import annotations

import uuid

import pytest
from django.utils import timezone

from observability.models import Span
from observability.services import span_attributes_merge

pytestmark = pytest.mark.django_db


def test_merged_attributes_join_the_span_s_own_and_missing_spans_are_skipped() -> None:
    now, trace_id = timezone.now(), uuid.uuid4()
    attributes = {"gen_ai.request.model": "m", "aios.eval.old": 0.1}
    span = Span.objects.create(span_id=-5, trace_id=trace_id, name="chat", kind="llm", started_at=now, ended_at=now,
                               latency_ms=1, attributes=attributes)  # fmt: skip
    changed = span_attributes_merge(updates=[(trace_id, -5, {"aios.eval.old": 0.9, "aios.eval.new": None}),
                                             (uuid.uuid4(), 1, {"x": 1})])  # fmt: skip
    span.refresh_from_db()
    assert changed == 1
    assert span.attributes == {"gen_ai.request.model": "m", "aios.eval.old": 0.9, "aios.eval.new": None}
    assert span_attributes_merge(updates=[]) == 0
