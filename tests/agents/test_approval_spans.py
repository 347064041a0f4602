"""Approval spans measure the human wait: children of the run's trace, kind=approval, lasting
from the request's creation to the decision or expiry."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.core.exceptions import PermissionDenied
from django.utils import timezone

from agents.approvals import approval_decide, approvals_expire
from agents.models import ActionRun, ApprovalRequest
from agents.services import run_request
from observability import get_observability
from observability.models import Span
from observability.selectors import metrics_summary
from tests.factories import make_user
from tests.observability.helpers import clean_slate

pytestmark = pytest.mark.django_db

FIREWALL = {"agent": "security", "action": "firewall_enable", "payload": {}}


def _waiting_since(user: Any, seconds: float) -> tuple[ActionRun, ApprovalRequest]:
    run, _ = run_request(user=user, **FIREWALL)
    req = run.approval
    ApprovalRequest.objects.filter(pk=req.pk).update(created_at=timezone.now() - timedelta(seconds=seconds))
    req.refresh_from_db()
    return run, req


def _spans(run: ActionRun) -> dict[str, Span]:
    assert get_observability().flush(timeout=30), "spans were not written in time"
    return {s.name: s for s in Span.objects.filter(trace_id=run.trace_id)}


def _assert_waited(span: Span, run: ActionRun, req: ApprovalRequest, seconds: float) -> None:
    assert span.kind == "approval" and span.agent == "security"
    assert span.trace_id == run.trace_id and span.parent_span_id == run.root_span_id
    assert span.attributes["aios.run_id"] == str(run.pk)
    assert span.attributes["aios.approval_id"] == str(req.public_id)
    assert seconds <= span.attributes["aios.waited_s"] < seconds + 5
    assert abs((span.started_at - req.created_at).total_seconds()) < 0.01  # starts at the request
    assert seconds * 1000 <= span.latency_ms < (seconds + 5) * 1000
    assert abs((span.ended_at - span.started_at).total_seconds() * 1000 - span.latency_ms) < 5


def test_the_decision_span_lasts_as_long_as_the_request_waited_in_the_runs_trace(
    operator: Any, approver: Any, effects: dict[str, list[Any]]
) -> None:
    run, req = _waiting_since(operator, 90)
    approval_decide(request=req, user=approver, approve=True, comment="ok")
    spans = _spans(run)
    decide = spans["approval.decide"]
    _assert_waited(decide, run, req, 90)
    assert decide.attributes["aios.decision"] == "approve"
    assert decide.attributes["aios.approval_status"] == "approved"
    assert spans["approval.request"].kind != "approval"  # milliseconds long: not a human wait


def test_the_expiry_span_lasts_as_long_as_the_request_waited_in_the_runs_trace(
    operator: Any, effects: dict[str, list[Any]]
) -> None:
    run, req = _waiting_since(operator, 3700)
    ApprovalRequest.objects.filter(pk=req.pk).update(expires_at=timezone.now() - timedelta(seconds=100))
    approvals_expire()
    expire = _spans(run)["approval.expire"]
    _assert_waited(expire, run, req, 3700)
    assert expire.attributes["aios.approval_status"] == "expired"


@pytest.mark.django_db(transaction=True)  # the span writer's own connection must not wait on our locks
def test_the_dashboards_approval_latency_is_the_human_wait(
    operator: Any, approver: Any, effects: dict[str, list[Any]]
) -> None:
    clean_slate()
    for seconds in (30, 60, 120):
        _, req = _waiting_since(operator, seconds)
        approval_decide(request=req, user=approver, approve=False, comment="no")
    assert get_observability().flush(timeout=30)
    for exact in (True, False):  # the raw spans and the rollups the dashboard reads
        summary = metrics_summary(window=timedelta(hours=1), kind="approval", exact=exact)["summary"]
        assert summary["total_calls"] == 3
        assert summary["p50_latency_ms"] == pytest.approx(60_000, rel=0.05)
        assert summary["p95_latency_ms"] == pytest.approx(120_000, rel=0.05)


def test_a_refused_decision_writes_no_wait_span(effects: dict[str, list[Any]]) -> None:
    both = make_user("approver")
    both.groups.add(*make_user("operator").groups.all())
    run, req = _waiting_since(both, 60)
    with pytest.raises(PermissionDenied, match="own request"):
        approval_decide(request=req, user=both, approve=True)
    assert "approval.decide" not in _spans(run)
