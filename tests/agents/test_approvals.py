"""Human checkpoints (issue 6): four-eyes in the service, the pages and the API; two approvers;
expiry; workflows pausing and resuming; audit events and notifications."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.utils import timezone

from agents.approvals import approval_decide, approvals_expire
from agents.models import ActionRun, ApprovalDecision, ApprovalRequest, WorkflowRun
from agents.services import policy_set, run_cancel, run_request, workflow_start
from aios_core.errors import ConflictError
from observability.models import AuditEvent
from tests.agents.conftest import drain, refreshed
from tests.factories import make_user
from tests.helpers import login

pytestmark = pytest.mark.django_db

FIREWALL = {"agent": "security", "action": "firewall_enable", "payload": {}}
OK = {"agent": "chaos", "action": "flaky", "payload": {"p_fail": 0}}


def _request(user: Any) -> tuple[ActionRun, ApprovalRequest]:
    run, _ = run_request(user=user, **FIREWALL)
    return run, ApprovalRequest.objects.get(run=run)


def _audit(action: str) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(action=action).order_by("seq"))


# --- the checkpoint --------------------------------------------------------------------------


def test_a_critical_action_stops_with_a_request_and_its_forensic_preview(
    operator: Any, effects: dict[str, list[Any]]
) -> None:
    run, req = _request(operator)
    assert run.status == "awaiting_approval" and req.status == "pending"
    assert req.requested_by == operator and req.risk == "high" and req.approvals_required == 1
    assert "firewall_enable" in req.summary
    assert 3590 <= (req.expires_at - req.created_at).total_seconds() <= 3610  # the default hour
    req.refresh_from_db()
    assert req.forensic_preview["success"] is True
    assert req.forensic_preview["metadata"]["planned_changes"]  # what would change, changed nothing
    group, kind, msg = effects["notify"][0]
    assert group == "role.approver" and kind == "notify"
    assert msg["href"] == f"/approvals/{req.public_id}/" and msg["recount"] == ["approvals"]
    assert effects["webhook"][0]["aios"]["event"] == "requested" and "text" in effects["webhook"][0]
    (event,) = _audit("agents.approval_requested")
    assert event.object_id == str(req.public_id) and event.data["run"] == str(run.pk)


def test_approval_releases_the_run_and_it_succeeds(
    operator: Any, approver: Any, effects: dict[str, list[Any]], no_broker: list[str]
) -> None:
    run, req = _request(operator)
    approval_decide(request=req, user=approver, approve=True, comment="ok, change window")
    req.refresh_from_db()
    assert req.status == "approved" and req.decided_at is not None
    assert refreshed(run).status == "queued" and no_broker == [str(run.pk)]
    drain(no_broker)
    assert refreshed(run).status == "succeeded"
    (event,) = _audit("agents.approval_decided")
    assert event.actor == approver.get_username() and event.data["decision"] == "approve"
    assert event.data["comment"] == "ok, change window"
    assert effects["webhook"][-1]["aios"]["event"] == "decided"
    assert effects["notify"][-1][2]["recount"] == ["approvals"]


def test_the_requester_can_never_approve_their_own_request(effects: dict[str, list[Any]]) -> None:
    both = make_user("approver")
    both.groups.add(*make_user("operator").groups.all())
    run, req = _request(both)
    with pytest.raises(PermissionDenied):
        approval_decide(request=req, user=both, approve=True, comment="")
    admin = make_user("admin")
    run2, req2 = _request(admin)
    with pytest.raises(PermissionDenied):
        approval_decide(request=req2, user=admin, approve=True)  # not even an admin
    assert refreshed(run).status == refreshed(run2).status == "awaiting_approval"
    assert not ApprovalDecision.objects.exists()


def test_only_approvers_decide(operator: Any, viewer: Any, effects: dict[str, list[Any]]) -> None:
    _, req = _request(operator)
    other_operator = make_user("operator")
    for user in (viewer, other_operator):
        with pytest.raises(PermissionDenied):
            approval_decide(request=req, user=user, approve=True)


def test_a_rejection_needs_a_reason_and_closes_the_run(
    operator: Any, approver: Any, effects: dict[str, list[Any]], no_broker: list[str]
) -> None:
    run, req = _request(operator)
    with pytest.raises(ValidationError) as exc:
        approval_decide(request=req, user=approver, approve=False, comment="   ")
    assert "comment" in exc.value.message_dict
    approval_decide(request=req, user=approver, approve=False, comment="not during business hours")
    req.refresh_from_db()
    run = refreshed(run)
    assert req.status == "rejected" and run.status == "rejected" and no_broker == []
    assert "not during business hours" in run.message
    with pytest.raises(ConflictError):
        approval_decide(request=req, user=make_user("approver"), approve=True)


def test_two_approver_actions_need_two_different_people_other_than_the_requester(
    operator: Any, admin_user: Any, effects: dict[str, list[Any]], no_broker: list[str]
) -> None:
    policy_set(agent="security", action="firewall_enable", user=admin_user, approvals_required=2)
    run, req = _request(operator)
    assert req.approvals_required == 2
    first, second = make_user("approver"), make_user("approver")
    approval_decide(request=req, user=first, approve=True)
    req.refresh_from_db()
    assert req.status == "pending" and refreshed(run).status == "awaiting_approval" and no_broker == []
    with pytest.raises(ConflictError):
        approval_decide(request=req, user=first, approve=True)  # the same person twice is not four eyes
    with pytest.raises(PermissionDenied):
        approval_decide(request=req, user=operator, approve=True)
    approval_decide(request=req, user=second, approve=True)
    req.refresh_from_db()
    assert req.status == "approved" and req.decisions.count() == 2
    drain(no_broker)
    assert refreshed(run).status == "succeeded"


def test_any_rejection_closes_a_two_approver_request(
    operator: Any, admin_user: Any, effects: dict[str, list[Any]]
) -> None:
    policy_set(agent="security", action="firewall_enable", user=admin_user, approvals_required=2)
    run, req = _request(operator)
    approval_decide(request=req, user=make_user("approver"), approve=True)
    approval_decide(request=req, user=make_user("approver"), approve=False, comment="wrong ports")
    req.refresh_from_db()
    assert req.status == "rejected" and refreshed(run).status == "rejected"


# --- expiry -------------------------------------------------------------------------------------


def test_expiry_denies_the_run_within_a_minute_of_the_deadline(
    operator: Any, approver: Any, effects: dict[str, list[Any]], no_broker: list[str], settings: Any
) -> None:
    run, req = _request(operator)
    assert approvals_expire()["expired"] == 0  # not due yet
    ApprovalRequest.objects.filter(pk=req.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    assert approvals_expire() == {"expired": 1, "cancelled": 0}
    req.refresh_from_db()
    run = refreshed(run)
    assert req.status == "expired" and run.status == "expired" and no_broker == []
    assert _audit("agents.approval_expired")[0].data["run"] == str(run.pk)
    schedule = settings.CELERY_BEAT_SCHEDULE["agents-approvals-expire"]
    assert schedule["task"] == "agents.approvals_expire" and schedule["schedule"] <= 60


def test_expiry_never_approves_even_when_an_approval_arrives_late(
    operator: Any, approver: Any, effects: dict[str, list[Any]], no_broker: list[str]
) -> None:
    run, req = _request(operator)
    ApprovalRequest.objects.filter(pk=req.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    with pytest.raises(ConflictError, match="expired"):
        approval_decide(request=req, user=approver, approve=True)
    req.refresh_from_db()
    assert req.status == "expired" and refreshed(run).status == "expired" and no_broker == []


def test_a_cancelled_run_closes_its_request(operator: Any, effects: dict[str, list[Any]]) -> None:
    run, req = _request(operator)
    run_cancel(run=run, user=operator)
    assert approvals_expire() == {"expired": 0, "cancelled": 1}
    req.refresh_from_db()
    assert req.status == "cancelled"


# --- workflows ------------------------------------------------------------------------------------


def test_a_workflow_pauses_at_an_approval_step_and_resumes_after_the_decision(
    admin_user: Any, approver: Any, effects: dict[str, list[Any]], no_broker: list[str]
) -> None:
    gate = {**FIREWALL, "critical": True}
    wf = workflow_start(user=admin_user, steps=[OK, gate, OK])
    drain(no_broker)
    waiting = ActionRun.objects.get(workflow=wf, step_index=1)
    req = waiting.approval
    assert waiting.status == "awaiting_approval" and WorkflowRun.objects.get(pk=wf.pk).status == "running"
    assert not ActionRun.objects.filter(workflow=wf, step_index=2).exists()
    approval_decide(request=req, user=approver, approve=True)
    drain(no_broker)
    wf.refresh_from_db()
    assert wf.status == "succeeded" and wf.current_step == 3

    wf2 = workflow_start(user=admin_user, steps=[gate, OK])
    approval_decide(request=wf2.runs.get().approval, user=approver, approve=False, comment="no")
    drain(no_broker)
    wf2.refresh_from_db()
    assert wf2.status == "failed" and wf2.runs.count() == 1  # a refused critical step stops it


# --- pages ------------------------------------------------------------------------------------


def test_the_queue_lists_pending_requests_newest_first_for_approvers_only(
    operator: Any, approver: Any, viewer: Any, effects: dict[str, list[Any]]
) -> None:
    _, older = _request(operator)
    _, newer = _request(operator)
    ApprovalRequest.objects.filter(pk=older.pk).update(created_at=timezone.now() - timedelta(minutes=5))
    resp = login(approver).get("/approvals/")
    assert resp.status_code == 200
    html = resp.content.decode()
    assert html.index(f'data-approval="{newer.public_id}"') < html.index(f'data-approval="{older.public_id}"')
    assert "security.firewall_enable" in html and operator.get_username() in html and "high" in html
    partial = login(approver).get("/approvals/?partial=1").content.decode()
    assert "<html" not in partial and f'data-approval="{newer.public_id}"' in partial
    for user in (operator, viewer):
        assert login(user).get("/approvals/").status_code == 403


def test_the_history_tab_filters_decided_requests(operator: Any, approver: Any, effects: dict[str, list[Any]]) -> None:
    _, approved = _request(operator)
    _, rejected = _request(operator)
    _, pending = _request(operator)
    approval_decide(request=approved, user=approver, approve=True)
    approval_decide(request=rejected, user=approver, approve=False, comment="no")
    client = login(approver)
    history = client.get("/approvals/?tab=history").content.decode()
    assert f'data-approval="{approved.public_id}"' in history and f'data-approval="{rejected.public_id}"' in history
    assert f'data-approval="{pending.public_id}"' not in history
    only = client.get("/approvals/?tab=history&status=rejected").content.decode()
    assert f'data-approval="{rejected.public_id}"' in only and f'data-approval="{approved.public_id}"' not in only


def test_the_decision_page_enforces_four_eyes_and_a_reason_to_reject(
    effects: dict[str, list[Any]], no_broker: list[str]
) -> None:
    requester = make_user("approver")
    requester.groups.add(*make_user("operator").groups.all())
    run, req = _request(requester)
    url = f"/approvals/{req.public_id}/"
    own = login(requester)
    page = own.get(url).content.decode()
    assert "Forensic preview" in page and "cannot approve" in page and 'value="approve"' not in page
    assert own.post(url, {"decision": "approve"}).status_code == 403
    assert refreshed(run).status == "awaiting_approval"
    other = login(make_user("approver"))
    page = other.get(url).content.decode()
    assert 'value="approve"' in page and "planned" in page.lower()
    resp = other.post(url, {"decision": "reject", "comment": ""})
    assert resp.status_code == 422 and "reason" in resp.content.decode()
    resp = other.post(url, {"decision": "approve", "comment": "fine"})
    assert resp.status_code == 302
    req.refresh_from_db()
    assert req.status == "approved" and refreshed(run).status == "queued"
    again = login(make_user("approver")).post(url, {"decision": "approve"}, follow=True)
    assert "already approved" in again.content.decode()


# --- API ---------------------------------------------------------------------------------------


def _post(client: Any, url: str, body: dict[str, Any]) -> Any:
    return client.post(url, data=json.dumps(body), content_type="application/json")


def test_the_api_lists_and_decides_with_the_same_rules(
    operator: Any, approver: Any, effects: dict[str, list[Any]], no_broker: list[str]
) -> None:
    resp = _post(login(operator), "/api/runs", FIREWALL)
    assert resp.status_code == 201 and resp.json()["status"] == "awaiting_approval"
    run_id = resp.json()["id"]
    client = login(approver)
    listing = client.get("/api/approvals?status=pending").json()
    (item,) = listing["items"]
    assert item["run"] == run_id and item["status"] == "pending" and item["requested_by"] == operator.get_username()
    assert item["forensic_preview"]["metadata"]["planned_changes"]
    url = f"/api/approvals/{item['id']}/decide"
    assert login(operator).get("/api/approvals").status_code == 403
    assert _post(login(operator), url, {"decision": "approve"}).status_code == 403  # wrong role
    resp = _post(client, url, {"decision": "reject"})
    assert resp.status_code == 422 and "comment" in json.dumps(resp.json())
    assert _post(client, url, {"decision": "maybe"}).status_code == 422
    resp = _post(client, url, {"decision": "approve", "comment": "go"})
    assert resp.status_code == 200 and resp.json()["status"] == "approved"
    assert resp.json()["decisions"][0]["approver"] == approver.get_username()
    resp = _post(login(make_user("approver")), url, {"decision": "reject", "comment": "late"})
    assert resp.status_code == 409 and resp.json()["error"] == "conflict"
    assert client.get("/api/approvals?status=pending").json()["items"] == []
    drain(no_broker)
    assert ActionRun.objects.get(pk=run_id).status == "succeeded"


def test_the_api_refuses_approving_ones_own_request(effects: dict[str, list[Any]]) -> None:
    both = make_user("approver")
    both.groups.add(*make_user("operator").groups.all())
    client = login(both)
    run_id = _post(client, "/api/runs", FIREWALL).json()["id"]
    approval = ApprovalRequest.objects.get(run_id=run_id)
    resp = _post(client, f"/api/approvals/{approval.public_id}/decide", {"decision": "approve"})
    assert resp.status_code == 403 and resp.json()["error"] == "forbidden"
    assert ActionRun.objects.get(pk=run_id).status == "awaiting_approval"


def test_listings_page_with_a_cursor(operator: Any, approver: Any, effects: dict[str, list[Any]]) -> None:
    ids = [str(_request(operator)[1].public_id) for _ in range(3)]  # in creation order
    client = login(approver)
    first = client.get("/api/approvals?status=pending&limit=2").json()
    second = client.get(f"/api/approvals?status=pending&limit=2&cursor={first['next']}").json()
    assert [i["id"] for i in first["items"] + second["items"]] == ids[::-1]  # newest first
    assert second["next"] is None


def test_approvals_are_named_by_uuid_in_urls_and_the_api(
    operator: Any, approver: Any, effects: dict[str, list[Any]]
) -> None:
    run, req = _request(operator)
    client = login(approver)
    (item,) = client.get("/api/approvals?status=pending").json()["items"]
    assert item["id"] == str(req.public_id) and item["run"] == str(run.pk)
    assert client.get(f"/api/approvals/{req.public_id}").json()["id"] == str(req.public_id)
    assert client.get(f"/approvals/{req.public_id}/").status_code == 200
    assert client.get(f"/approvals/{req.pk}/").status_code == 404  # integers name nothing
    assert client.get(f"/api/approvals/{req.pk}").status_code == 422
    assert _post(client, f"/api/approvals/{req.pk}/decide", {"decision": "approve"}).status_code == 422
    assert f"/approvals/{req.public_id}/" in effects["webhook"][0]["text"]
    assert effects["webhook"][0]["aios"]["approval"] == str(req.public_id)
