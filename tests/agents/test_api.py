from __future__ import annotations

import json
from typing import Any

import pytest

from agents.models import ActionRun, WorkflowRun
from tests.agents.conftest import drain
from tests.helpers import login

pytestmark = pytest.mark.django_db


def _post(client: Any, url: str, body: dict[str, Any]) -> Any:
    return client.post(url, data=json.dumps(body), content_type="application/json")


def test_an_operator_requests_a_run_and_watches_it_to_the_end(operator: Any, no_broker: list[str]) -> None:
    client = login(operator)
    resp = _post(client, "/api/runs", {"agent": "kernel", "action": "info"})
    assert resp.status_code == 201, resp.content
    body = resp.json()
    assert body["status"] == "queued" and len(body["id"]) == 36
    drain(no_broker)
    detail = client.get(f"/api/runs/{body['id']}").json()
    assert detail["status"] == "succeeded" and detail["attempts"][0]["outcome"] == "succeeded"
    listing = client.get("/api/runs?status=succeeded").json()
    assert [r["id"] for r in listing["items"]] == [body["id"]]
    assert client.get("/api/runs?status=failed").json()["items"] == []


def test_the_same_idempotency_key_returns_the_first_run_or_409(
    operator: Any, approver: Any, no_broker: list[str]
) -> None:
    client = login(operator)
    body = {"agent": "storage", "action": "disk_usage", "payload": {"warn_percent": 90}, "idempotency_key": "k-1"}
    first = _post(client, "/api/runs", body)
    again = _post(client, "/api/runs", body)
    assert first.status_code == 201 and again.status_code == 200
    assert again.json()["id"] == first.json()["id"]
    different = _post(client, "/api/runs", {**body, "payload": {"warn_percent": 50}})
    assert different.status_code == 409 and different.json()["error"] == "conflict"
    assert ActionRun.objects.count() == 1
    # keys are per user: another user's same key is a new run
    other = make_operator()
    assert _post(login(other), "/api/runs", body).status_code == 201


def make_operator() -> Any:
    from tests.factories import make_user

    return make_user("operator")


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"agent": "nope", "action": "info"}, "agent"),
        ({"agent": "kernel", "action": "nope"}, "action"),
        ({"agent": "networking", "action": "tcp_check", "payload": {}}, "payload.port"),
        ({"agent": "networking", "action": "tcp_check", "payload": {"port": 70000}}, "payload.port"),
        ({"agent": "storage", "action": "disk_usage", "payload": {"unknown": 1}}, "payload.unknown"),
        ({"agent": "storage", "action": "disk_usage", "payload": [1, 2]}, "payload"),
        ({"agent": "kernel", "action": "sysctl_set", "payload": {"key": "bad key!", "value": "1"}}, "payload.key"),
        ({"action": "info"}, "agent"),
        ({"agent": "kernel", "action": "info", "forensic": "maybe"}, "forensic"),
        ({"agent": "chaos", "action": "flaky"}, "agent"),  # hidden from non-admins
    ],
)
def test_bad_requests_answer_422_naming_the_field_and_write_nothing(
    operator: Any, no_broker: list[str], body: dict, field: str
) -> None:
    resp = _post(login(operator), "/api/runs", body)
    assert resp.status_code == 422, resp.content
    assert field in [f["field"] for f in resp.json()["fields"]]
    assert ActionRun.objects.count() == 0 and no_broker == []


def test_a_switched_off_action_is_refused(operator: Any, admin_user: Any, no_broker: list[str]) -> None:
    from agents.services import policy_set

    policy_set(agent="kernel", action="info", user=admin_user, enabled=False)
    resp = _post(login(operator), "/api/runs", {"agent": "kernel", "action": "info"})
    assert resp.status_code == 422 and resp.json()["fields"][0]["field"] == "action"


def test_viewers_read_but_cannot_request(viewer: Any, operator: Any, no_broker: list[str]) -> None:
    run_id = _post(login(operator), "/api/runs", {"agent": "kernel", "action": "info"}).json()["id"]
    client = login(viewer)
    assert _post(client, "/api/runs", {"agent": "kernel", "action": "info"}).status_code == 403
    assert client.get(f"/api/runs/{run_id}").status_code == 200
    assert client.post(f"/api/runs/{run_id}/cancel").status_code == 403


def test_chaos_runs_are_invisible_to_non_admins(admin_user: Any, operator: Any, no_broker: list[str]) -> None:
    run_id = _post(login(admin_user), "/api/runs", {"agent": "chaos", "action": "flaky"}).json()["id"]
    assert login(operator).get(f"/api/runs/{run_id}").status_code == 404
    assert login(operator).get("/api/runs").json()["items"] == []
    assert "chaos" not in [a["name"] for a in login(operator).get("/api/agents").json()]


def test_cancel_and_retry_through_the_api(operator: Any, no_broker: list[str]) -> None:
    client = login(operator)
    run_id = _post(client, "/api/runs", {"agent": "kernel", "action": "info"}).json()["id"]
    assert client.post(f"/api/runs/{run_id}/cancel").json()["status"] == "cancelled"
    assert client.post(f"/api/runs/{run_id}/cancel").status_code == 409
    retried = client.post(f"/api/runs/{run_id}/retry")
    assert retried.status_code == 201 and retried.json()["id"] != run_id


def test_workflows_through_the_api(operator: Any, no_broker: list[str]) -> None:
    client = login(operator)
    resp = _post(client, "/api/workflows", {"workflow": "security_review"})
    assert resp.status_code == 201, resp.content
    wf_id = resp.json()["id"]
    drain(no_broker)
    body = client.get(f"/api/workflows/{wf_id}").json()
    assert body["status"] in ("succeeded", "degraded") and len(body["steps"]) == 6
    bad = _post(client, "/api/workflows", {"steps": [{"agent": "kernel", "action": "sysctl_set", "payload": {}}]})
    assert bad.status_code == 422 and bad.json()["fields"][0]["field"].startswith("steps.0.payload")
    assert _post(client, "/api/workflows", {"workflow": "nope"}).status_code == 422
    assert WorkflowRun.objects.count() == 1


def test_policy_changes_are_admin_only_and_audited(operator: Any, admin_user: Any) -> None:
    from observability.models import AuditEvent

    body = {"requires_approval": True, "max_attempts": 5}
    assert login(operator).put("/api/policies/kernel/info", json.dumps(body), "application/json").status_code == 403
    resp = login(admin_user).put("/api/policies/kernel/info", json.dumps(body), "application/json")
    assert resp.status_code == 200 and resp.json()["requires_approval"] is True and resp.json()["max_attempts"] == 5
    event = AuditEvent.objects.get(action="agents.policy_changed")
    assert event.data["after"]["max_attempts"] == 5 and event.object_id == "kernel.info"
    catalog = login(operator).get("/api/agents").json()
    info = next(a for agent in catalog if agent["name"] == "kernel" for a in agent["actions"] if a["name"] == "info")
    assert info["policy"]["requires_approval"] and "requires_approval" in info["policy"]["overridden"]


def test_a_policy_requiring_approval_stops_runs_before_they_execute(
    operator: Any, admin_user: Any, no_broker: list[str]
) -> None:
    from agents.services import policy_set

    policy_set(agent="kernel", action="info", user=admin_user, requires_approval=True)
    body = _post(login(operator), "/api/runs", {"agent": "kernel", "action": "info"}).json()
    assert body["status"] == "awaiting_approval" and no_broker == []
