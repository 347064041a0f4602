"""IDs in evaluation URLs and API bodies are UUIDs, never the database's sequence numbers."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
from django.urls import URLPattern, URLResolver, get_resolver, reverse

from evaluation.models import EvalRun
from tests.evaluation.factories import make_dataset, make_evaluator, make_queue
from tests.factories import make_user
from tests.helpers import login

pytestmark = pytest.mark.django_db


def _evaluation_patterns(resolver: URLResolver | None = None) -> list[URLPattern]:
    found: list[URLPattern] = []
    for entry in (resolver or get_resolver()).url_patterns:
        if isinstance(entry, URLResolver):
            found += _evaluation_patterns(entry)
        elif (entry.name or "").startswith("evaluation-"):
            found.append(entry)
    return found


def test_every_evaluation_page_names_its_objects_by_uuid() -> None:
    patterns = _evaluation_patterns()
    assert len(patterns) > 10
    for pattern in patterns:
        converters = getattr(pattern.pattern, "converters", {})
        assert all(type(c).__name__ == "UUIDConverter" for c in converters.values()), pattern.pattern


def test_pages_answer_for_uuids_and_refuse_sequence_numbers(viewer: Any) -> None:
    dataset, queue = make_dataset([("a", "a")]), make_queue(items=1)
    client = login(viewer)
    assert client.get(reverse("evaluation-dataset-detail", args=[dataset.uuid])).status_code == 200
    assert client.get(reverse("evaluation-queue-detail", args=[queue.uuid])).status_code == 200
    assert client.get(f"/evaluation/datasets/{dataset.pk}/").status_code == 404
    assert client.get(reverse("evaluation-dataset-detail", args=[uuid.uuid4()])).status_code == 404


def test_the_api_speaks_uuids_for_datasets_runs_queues_and_items(
    operator: Any, django_capture_on_commit_callbacks: Any
) -> None:
    client, dataset = login(operator), make_dataset([("a", "a")])
    make_evaluator("exact_match")
    assert client.get("/api/evaluation/datasets").json()["items"][0]["id"] == str(dataset.uuid)
    with django_capture_on_commit_callbacks(execute=False):
        resp = client.post("/api/evaluation/runs", data=json.dumps({"dataset": str(dataset.uuid), "target": "echo",
                           "evaluators": ["exact_match"]}), content_type="application/json")  # fmt: skip
    assert resp.status_code == 201, resp.content
    body, run = resp.json(), EvalRun.objects.get()
    assert body["id"] == str(run.uuid) and body["dataset"] == str(dataset.uuid)
    assert client.get(f"/api/evaluation/runs/{run.uuid}").status_code == 200
    assert client.get(f"/api/evaluation/runs/{run.pk}").status_code == 422  # not a UUID
    bad = client.post("/api/evaluation/runs", data=json.dumps({"dataset": dataset.pk, "target": "echo",
                      "evaluators": ["exact_match"]}), content_type="application/json")  # fmt: skip
    assert bad.status_code == 422
    queue = make_queue(items=1)
    annotator = login(make_user("annotator"))
    item = annotator.post(f"/api/evaluation/queues/{queue.uuid}/next").json()
    assert item["id"] == str(queue.items.get().uuid) and item["queue"] == str(queue.uuid)
