from __future__ import annotations

import json
from typing import Any

import pytest

from tests.evaluation.factories import GOOD_REVIEW, make_dataset, make_evaluator, make_queue
from tests.factories import make_user
from tests.helpers import login

pytestmark = pytest.mark.django_db


def _post(client: Any, url: str, body: dict[str, Any] | None = None) -> Any:
    return client.post(url, data=json.dumps(body or {}), content_type="application/json")


def test_an_operator_starts_lists_reads_and_cancels_a_run(
    operator: Any, django_capture_on_commit_callbacks: Any
) -> None:
    client, dataset = login(operator), make_dataset([("a", "a")])
    make_evaluator("exact_match")
    body = {"dataset": str(dataset.uuid), "target": "echo", "evaluators": ["nope"]}
    bad = _post(client, "/api/evaluation/runs", body)
    assert bad.status_code == 422 and bad.json()["fields"][0]["field"] == "evaluators"
    with django_capture_on_commit_callbacks(execute=False):
        resp = _post(client, "/api/evaluation/runs", {"dataset": str(dataset.uuid), "target": "echo",
                                                       "evaluators": ["exact_match"]})  # fmt: skip
    assert resp.status_code == 201
    run = resp.json()
    assert (run["status"], run["items_total"], run["dataset"]) == ("queued", 1, str(dataset.uuid))
    assert client.get("/api/evaluation/runs").json()["items"][0]["id"] == run["id"]
    assert client.get(f"/api/evaluation/runs/{run['id']}/results").json() == {"items": [], "next": None}
    assert _post(client, f"/api/evaluation/runs/{run['id']}/cancel").json()["status"] == "cancelled"
    assert _post(client, f"/api/evaluation/runs/{run['id']}/cancel").status_code == 409


def test_a_viewer_reads_but_may_not_start_a_run(viewer: Any) -> None:
    client, dataset = login(viewer), make_dataset([("a", "a")])
    assert client.get("/api/evaluation/datasets").json()["items"][0]["name"] == dataset.name
    assert _post(client, "/api/evaluation/runs", {"dataset": str(dataset.uuid), "target": "echo",
                                                   "evaluators": ["x"]}).status_code == 403  # fmt: skip


def test_an_annotator_claims_and_reviews_through_the_api() -> None:
    client, queue = login(make_user("annotator")), make_queue(items=1)
    item = _post(client, f"/api/evaluation/queues/{queue.uuid}/next").json()
    assert item["content"] == {"input": "q0", "output": "a0"}
    bad = _post(client, f"/api/evaluation/items/{item['id']}/annotations", {"scores": {"quality": 0}})
    assert bad.status_code == 422
    done = _post(client, f"/api/evaluation/items/{item['id']}/annotations", {"scores": GOOD_REVIEW})
    assert (done.status_code, done.json()["status"]) == (201, "done")
    assert _post(client, f"/api/evaluation/queues/{queue.uuid}/next").status_code == 204
    assert _post(client, f"/api/evaluation/items/{item['id']}/annotations", {"scores": GOOD_REVIEW}).status_code == 409
