"""Annotation queues and continuous-evaluation configs are created and edited on pages, through audited services;
the model checks them, so the admin site obeys the same rules."""

from __future__ import annotations

from typing import Any

import pytest
from django.db import IntegrityError, transaction
from django.urls import reverse

from evaluation.models import AnnotationQueue, ContinuousEvaluation
from evaluation.services import annotation_submit
from observability.models import AuditEvent
from tests.evaluation.factories import GOOD_REVIEW, make_evaluator, make_queue
from tests.factories import make_user
from tests.helpers import login

pytestmark = pytest.mark.django_db


def _rows(*rows: dict[str, Any], initial: int = 0) -> dict[str, Any]:
    data: dict[str, Any] = {"scores-TOTAL_FORMS": str(len(rows)), "scores-INITIAL_FORMS": str(initial)}
    for n, row in enumerate(rows):
        data.update({f"scores-{n}-{k}": v for k, v in row.items()})
    return data


QUALITY = {"name": "quality", "kind": "numeric", "min": "1", "max": "5"}
CORRECT = {"name": "correct", "kind": "boolean"}


def test_an_operator_creates_and_edits_an_annotation_queue_on_a_page(operator: Any) -> None:
    client = login(operator)
    new = reverse("evaluation-queue-create")
    assert client.get(new).status_code == 200
    base = {"name": "support answers", "description": "d", "reviewers_per_item": "2", "lock_seconds": "600"}
    no_scores = client.post(new, {**base, **_rows({"name": "", "kind": "numeric"})})
    assert no_scores.status_code == 422 and b"at least one score" in no_scores.content
    bad_range = client.post(new, {**base, **_rows({**QUALITY, "max": "0"})})
    assert bad_range.status_code == 422 and b"max must be above min" in bad_range.content
    too_many = client.post(new, {**base, "reviewers_per_item": "50", **_rows(QUALITY)})
    assert too_many.status_code == 422 and not AnnotationQueue.objects.exists()
    tone = {"name": "tone", "kind": "categorical", "labels": "polite, rude"}
    resp = client.post(new, {**base, **_rows(QUALITY, tone)})
    queue = AnnotationQueue.objects.get()
    assert resp.status_code == 302 and resp["Location"] == reverse("evaluation-queue-detail", args=[queue.uuid])
    assert [c.name for c in queue.parsed_score_configs] == ["quality", "tone"]
    assert queue.parsed_score_configs[1].labels == ["polite", "rude"] and queue.reviewers_per_item == 2
    assert AuditEvent.objects.filter(action="evaluation.queue_create").exists()
    edit = reverse("evaluation-queue-edit", args=[queue.uuid])
    page = client.get(edit)
    assert page.status_code == 200 and b'value="quality"' in page.content
    resp = client.post(edit, {**base, "description": "new", **_rows(QUALITY, tone, CORRECT, initial=2)})
    queue.refresh_from_db()
    assert resp.status_code == 302 and queue.description == "new" and len(queue.score_configs) == 3
    assert AuditEvent.objects.filter(action="evaluation.queue_update").exists()


def test_a_queue_s_scores_are_fixed_once_it_has_reviews() -> None:
    queue, annotator = make_queue(items=1), make_user("annotator")
    from evaluation.services import annotation_next

    annotation_submit(item=annotation_next(queue=queue, user=annotator), user=annotator, scores=GOOD_REVIEW)
    client = login(make_user("operator"))
    base = {"name": queue.name, "description": "", "reviewers_per_item": "1", "lock_seconds": "600"}
    resp = client.post(reverse("evaluation-queue-edit", args=[queue.uuid]), {**base, **_rows(QUALITY)})
    assert resp.status_code == 422 and b"already has reviews" in resp.content


def test_viewers_and_annotators_may_not_create_queues_and_only_admins_configure_sampling() -> None:
    queue = make_queue(items=0)
    for role in ("viewer", "annotator"):
        client = login(make_user(role))
        assert client.get(reverse("evaluation-queue-create")).status_code == 403
        assert client.post(reverse("evaluation-queue-edit", args=[queue.uuid])).status_code == 403
    assert login(make_user("operator")).get(reverse("evaluation-continuous-create")).status_code == 403


def test_an_admin_configures_continuous_evaluation_with_rates_checked(admin_user: Any) -> None:
    client, queue, evaluator = login(admin_user), make_queue(items=0), make_evaluator("regex", pattern="thank")
    new = reverse("evaluation-continuous-create")
    assert client.get(new).status_code == 200
    base = {"name": "polite", "enabled": "on", "span_kind": "llm", "model": "", "agent": "", "sample_rate": "0.2",
            "evaluators": [str(evaluator.uuid)], "threshold": "0.5", "queue": str(queue.uuid),
            "max_spans_per_tick": "500"}  # fmt: skip
    for field, value in (("sample_rate", "1.5"), ("threshold", "-0.1"), ("evaluators", [])):
        resp = client.post(new, {**base, field: value})
        assert resp.status_code == 422 and not ContinuousEvaluation.objects.exists(), field
    resp = client.post(new, {**base, "sample_rate": "1.5"})
    assert b"less than or equal to 1" in resp.content
    assert client.post(new, base).status_code == 302
    config = ContinuousEvaluation.objects.get()
    assert (config.sample_rate, config.queue, list(config.evaluators.all())) == (0.2, queue, [evaluator])
    edit = reverse("evaluation-continuous-edit", args=[config.uuid])
    assert client.get(edit).status_code == 200
    assert client.post(edit, {**base, "threshold": "0.8", "queue": ""}).status_code == 302
    config.refresh_from_db()
    assert (config.threshold, config.queue) == (0.8, None)
    assert AuditEvent.objects.filter(action="evaluation.continuous_update").exists()


def test_the_admin_site_obeys_the_same_rules_and_writes_the_audit_log(admin_user: Any) -> None:
    client, evaluator = login(admin_user), make_evaluator("regex", pattern="thank")
    add = "/admin/evaluation/continuousevaluation/add/"
    base = {"name": "x", "enabled": "on", "span_kind": "llm", "sample_rate": "2", "threshold": "0.5",
            "evaluators": [str(evaluator.pk)], "max_spans_per_tick": "500"}  # fmt: skip
    resp = client.post(add, base)
    assert resp.status_code == 200 and not ContinuousEvaluation.objects.exists()
    resp = client.post(add, {**base, "sample_rate": "0.5"})
    assert resp.status_code == 302 and ContinuousEvaluation.objects.get().sample_rate == 0.5
    assert AuditEvent.objects.filter(action="evaluation.continuous_create").exists()
    queue_add = "/admin/evaluation/annotationqueue/add/"
    queue = {"name": "q", "description": "", "score_configs": '[{"kind": "boolean", "name": "ok"}]',
             "reviewers_per_item": "1", "lock_seconds": "600"}  # fmt: skip
    assert client.post(queue_add, {**queue, "reviewers_per_item": "0"}).status_code == 200
    assert client.post(queue_add, queue).status_code == 302
    assert AuditEvent.objects.filter(action="evaluation.queue_create").count() == 1


def test_the_database_refuses_rates_outside_zero_to_one() -> None:
    for field in ("sample_rate", "threshold"):
        with pytest.raises(IntegrityError), transaction.atomic():
            ContinuousEvaluation.objects.create(name=f"bad-{field}", **{field: 1.01})
