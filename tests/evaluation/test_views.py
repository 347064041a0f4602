from __future__ import annotations

from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from evaluation.models import Annotation, AnnotationItem, Dataset, EvalRun
from tests.evaluation.factories import make_dataset, make_evaluator, make_queue
from tests.factories import make_user
from tests.helpers import login

pytestmark = pytest.mark.django_db


def test_a_viewer_sees_the_evaluation_home_without_the_run_forms() -> None:
    make_dataset([("a", "a")])
    resp = login(make_user("viewer")).get(reverse("evaluation-home"))
    assert resp.status_code == 200
    assert b"capitals" in resp.content and b'id="run-form"' not in resp.content


def test_a_viewer_may_not_upload_run_or_annotate() -> None:
    client, queue = login(make_user("viewer")), make_queue(items=1)
    assert client.post(reverse("evaluation-dataset-upload")).status_code == 403
    assert client.post(reverse("evaluation-run-create")).status_code == 403
    assert client.post(reverse("evaluation-queue-next", args=[queue.uuid])).status_code == 403


def test_an_operator_uploads_a_dataset_and_sees_each_bad_line(operator: Any) -> None:
    client = login(operator)
    bad = SimpleUploadedFile("d.jsonl", b'{"input": "a"}\n{"nope": 1}\n')
    resp = client.post(reverse("evaluation-dataset-upload"), {"name": "d", "file": bad})
    assert resp.status_code == 422 and b"line 2" in resp.content and not Dataset.objects.exists()
    good = SimpleUploadedFile("d.jsonl", b'{"input": "a", "expected": "a"}\n')
    resp = client.post(reverse("evaluation-dataset-upload"), {"name": "d", "file": good})
    dataset = Dataset.objects.get()
    assert resp.status_code == 302 and resp["Location"] == reverse("evaluation-dataset-detail", args=[dataset.uuid])
    assert client.get(resp["Location"]).status_code == 200


def test_an_operator_starts_a_run_and_reads_its_progress(
    operator: Any, django_capture_on_commit_callbacks: Any
) -> None:
    client, dataset, evaluator = login(operator), make_dataset([("a", "a")]), make_evaluator()
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        resp = client.post(reverse("evaluation-run-create"),
                           {"dataset": dataset.uuid, "target": "echo", "evaluators": [evaluator.uuid]})  # fmt: skip
    run = EvalRun.objects.get()
    assert resp.status_code == 302 and len(callbacks) == 1  # the batch task is enqueued on commit
    assert client.get(resp["Location"]).status_code == 200
    progress = client.get(reverse("evaluation-run-progress", args=[run.uuid])).json()
    assert progress == {"run": str(run.uuid), "status": "queued", "items_total": 1, "items_done": 0, "items_failed": 0,
                        "cost_usd": "0.00000000", "percent": 0}  # fmt: skip
    client.post(reverse("evaluation-run-cancel", args=[run.uuid]))
    run.refresh_from_db()
    assert run.status == "cancelled"


def test_an_operator_adds_an_evaluator_whose_config_is_validated(operator: Any) -> None:
    client = login(operator)
    resp = client.post(reverse("evaluation-evaluator-create"), {"name": "re", "kind": "regex", "pattern": "("})
    assert resp.status_code == 422 and b"pattern" in resp.content
    resp = client.post(reverse("evaluation-evaluator-create"), {"name": "re", "kind": "regex", "pattern": "a"})
    assert resp.status_code == 302


def test_an_annotator_works_a_queue_submit_skip_and_done() -> None:
    annotator, queue = make_user("annotator"), make_queue(items=2)
    client = login(annotator)
    resp = client.post(reverse("evaluation-queue-next", args=[queue.uuid]))
    first = AnnotationItem.objects.get(locked_by=annotator)
    assert resp["Location"] == reverse("evaluation-item-review", args=[first.uuid])
    page = client.get(resp["Location"])
    assert page.status_code == 200 and b"js/annotate." in page.content and b"q0" in page.content
    missing = client.post(resp["Location"], {"score-quality": "4"})
    assert missing.status_code == 422
    resp = client.post(resp["Location"], {"score-quality": "4", "score-tone": "polite", "score-correct": "true",
                                          "comment": "ok"})  # fmt: skip
    second = AnnotationItem.objects.get(locked_by=annotator)
    assert resp["Location"] == reverse("evaluation-item-review", args=[second.uuid]) and second != first
    resp = client.post(reverse("evaluation-item-skip", args=[second.uuid]))
    assert resp["Location"] == reverse("evaluation-queue-detail", args=[queue.uuid])
    annotation = Annotation.objects.get(skipped=False)
    assert annotation.scores == {"quality": 4.0, "tone": "polite", "correct": True}
    assert client.get(resp["Location"]).status_code == 200
    export = client.get(reverse("evaluation-queue-export", args=[queue.uuid]))
    assert export.status_code == 200 and b"polite" in export.content


def test_a_review_page_for_an_item_not_claimed_by_the_annotator_redirects() -> None:
    queue = make_queue(items=1)
    item = queue.items.get()
    resp = login(make_user("annotator")).get(reverse("evaluation-item-review", args=[item.uuid]))
    assert resp.status_code == 302


def test_a_viewer_compares_two_runs_of_a_dataset_item_by_item(viewer: Any) -> None:
    from evaluation.models import EvalResult

    dataset, evaluator = make_dataset([("a", "a"), ("b", "b")]), make_evaluator()
    runs = []
    for target, outputs in (("echo", ["a", "b"]), ("auto", ["a", "x"])):
        run = EvalRun.objects.create(dataset=dataset, target=target, items_total=2, status="succeeded")
        run.evaluators.set([evaluator])
        for item, output in zip(dataset.items.all(), outputs, strict=True):
            value = 1.0 if output == item.expected else 0.0
            EvalResult.objects.create(run=run, item=item, output=output, scores={"exact_match": {"value": value}})
        runs.append(run)
    client = login(viewer)
    detail = client.get(reverse("evaluation-run-detail", args=[runs[0].uuid]))
    assert b"1.000" in detail.content  # the mean score
    resp = client.get(reverse("evaluation-run-compare"), {"a": runs[0].uuid, "b": runs[1].uuid})
    assert resp.status_code == 200
    assert b"1.000" in resp.content and b"0.500" in resp.content and b"1.00 \xe2\x86\x92 0.00" in resp.content
