"""Two approvers clicking at once: the row lock lets exactly one decision through."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from django.db import connection

from agents import approvals as approvals_mod
from agents import tasks
from agents.approvals import approval_decide
from agents.models import ActionRun, ApprovalDecision, ApprovalRequest
from agents.services import run_request
from aios_core.errors import ConflictError
from tests.factories import make_user


@pytest.fixture
def quiet(transactional_db: None, monkeypatch: pytest.MonkeyPatch, settings: Any) -> list[str]:
    """No broker, no channel layer: record what would be sent (after the real commits), one
    message per run."""
    settings.AIOS_RUN_COALESCE_WAKEUPS = False
    sent: list[str] = []
    monkeypatch.setattr(tasks.execute_run, "apply_async", lambda args, **kw: sent.append(args[0]))
    monkeypatch.setattr(tasks.approval_preview, "apply_async", lambda args, **kw: None)
    monkeypatch.setattr(approvals_mod, "send_now", lambda *a: None)
    return sent


def _race(req: ApprovalRequest, deciders: list[tuple[Any, bool, str]]) -> list[str]:
    barrier = threading.Barrier(len(deciders))
    outcomes: list[str] = []

    def decide(user: Any, approve: bool, comment: str) -> None:
        try:
            barrier.wait(timeout=10)
            approval_decide(request=req, user=user, approve=approve, comment=comment)
            outcomes.append("won")
        except ConflictError:
            outcomes.append("conflict")
        finally:
            connection.close()

    threads = [threading.Thread(target=decide, args=d) for d in deciders]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    return sorted(outcomes)


@pytest.mark.django_db(transaction=True)
def test_two_approvers_deciding_at_once_produce_exactly_one_outcome(quiet: list[str]) -> None:
    operator = make_user("operator")
    run, _ = run_request(agent="security", action="firewall_enable", payload={}, user=operator)
    req = ApprovalRequest.objects.get(run=run)
    a, b = make_user("approver"), make_user("approver")
    outcomes = _race(req, [(a, True, "yes"), (b, False, "no")])
    assert outcomes == ["conflict", "won"]
    req.refresh_from_db()
    run = ActionRun.objects.get(pk=run.pk)
    assert ApprovalDecision.objects.filter(request=req).count() == 1
    decision = ApprovalDecision.objects.get(request=req)
    if decision.decision == "approve":
        assert req.status == "approved" and run.status == "queued" and quiet == [str(run.pk)]
    else:
        assert req.status == "rejected" and run.status == "rejected" and quiet == []


@pytest.mark.django_db(transaction=True)
def test_two_approvals_at_once_release_the_run_once(quiet: list[str]) -> None:
    operator = make_user("operator")
    run, _ = run_request(agent="security", action="firewall_enable", payload={}, user=operator)
    req = ApprovalRequest.objects.get(run=run)
    outcomes = _race(req, [(make_user("approver"), True, ""), (make_user("approver"), True, "")])
    assert outcomes == ["conflict", "won"]
    assert quiet == [str(run.pk)]  # sent exactly once
