from __future__ import annotations

from typing import Any

import pytest

from agents.models import WorkflowRun
from agents.selectors import workflow_steps
from agents.services import workflow_cancel, workflow_resume, workflow_start
from tests.agents.conftest import drain

pytestmark = pytest.mark.django_db

OK = {"agent": "chaos", "action": "flaky", "payload": {"p_fail": 0}}
BROKEN = {"agent": "chaos", "action": "flaky", "payload": {"p_fail": 1, "error_class": "permanent"}}


def _wf(wf: WorkflowRun) -> WorkflowRun:
    wf.refresh_from_db()
    return wf


def test_a_workflow_runs_its_steps_in_order(admin_user: Any, no_broker: list[str]) -> None:
    wf = workflow_start(user=admin_user, steps=[OK, OK, OK])
    drain(no_broker)
    wf = _wf(wf)
    assert wf.status == "succeeded" and wf.current_step == 3
    runs = list(wf.runs.order_by("created_at"))
    assert [r.step_index for r in runs] == [0, 1, 2]
    assert runs[0].finished_at <= runs[1].created_at  # sequential


def test_a_non_critical_failure_degrades_and_goes_on(admin_user: Any, no_broker: list[str]) -> None:
    wf = workflow_start(user=admin_user, steps=[OK, {**BROKEN, "critical": False}, OK])
    drain(no_broker)
    wf = _wf(wf)
    assert wf.status == "degraded" and wf.failed_steps == [1]
    assert [s["status"] for s in workflow_steps(wf)] == ["succeeded", "failed", "succeeded"]


def test_a_critical_failure_stops_the_workflow_and_resume_restarts_that_step(
    admin_user: Any, no_broker: list[str]
) -> None:
    wf = workflow_start(user=admin_user, steps=[OK, {**BROKEN, "critical": True}, OK])
    drain(no_broker)
    wf = _wf(wf)
    assert wf.status == "failed" and wf.current_step == 1
    assert [s["status"] for s in workflow_steps(wf)] == ["succeeded", "failed", "skipped"]
    # fix the cause (here: the step's payload) and resume from the failed step
    steps = wf.steps
    steps[1]["payload"] = {"p_fail": 0}
    WorkflowRun.objects.filter(pk=wf.pk).update(steps=steps)
    workflow_resume(workflow=wf, user=admin_user)
    drain(no_broker)
    wf = _wf(wf)
    assert wf.status == "succeeded"
    assert [s["status"] for s in workflow_steps(wf)] == ["succeeded", "succeeded", "succeeded"]
    assert wf.runs.filter(step_index=1).count() == 2


def test_a_workflow_can_be_cancelled_and_resumed(admin_user: Any, no_broker: list[str]) -> None:
    wf = workflow_start(user=admin_user, steps=[OK, OK])
    workflow_cancel(workflow=wf, user=admin_user)
    drain(no_broker)
    wf = _wf(wf)
    assert wf.status == "cancelled" and wf.runs.get().status == "cancelled"
    workflow_resume(workflow=wf, user=admin_user)
    drain(no_broker)
    assert _wf(wf).status == "succeeded"


def test_a_workflow_pauses_at_a_step_that_needs_approval(admin_user: Any, no_broker: list[str]) -> None:
    from agents.services import run_deny, run_release_after_approval

    gate = {"agent": "security", "action": "firewall_enable", "payload": {}, "critical": False}
    wf = workflow_start(user=admin_user, steps=[OK, gate, OK])
    drain(no_broker)
    wf = _wf(wf)
    waiting = wf.runs.get(step_index=1)
    assert wf.status == "running" and waiting.status == "awaiting_approval"
    run_release_after_approval(run=waiting)
    drain(no_broker)
    assert _wf(wf).status == "succeeded"
    wf2 = workflow_start(user=admin_user, steps=[gate, OK])
    run_deny(run=wf2.runs.get(), reason="not today")
    drain(no_broker)
    assert _wf(wf2).status == "degraded"  # a non-critical step was refused


def test_the_boot_sequence_runs_on_this_machine(admin_user: Any, no_broker: list[str]) -> None:
    wf = workflow_start(user=admin_user, name="boot_sequence")
    drain(no_broker)
    wf = _wf(wf)
    assert wf.status in ("succeeded", "degraded"), workflow_steps(wf)
    assert wf.current_step == len(wf.steps)


def test_resuming_while_the_stopped_step_is_still_running_never_runs_it_twice(
    admin_user: Any, no_broker: list[str]
) -> None:
    from agents.runtime.claims import claim_run
    from agents.services import _execute_claimed
    from aios_core.errors import ConflictError

    wf = workflow_start(user=admin_user, steps=[OK, OK])
    step0 = wf.runs.get(step_index=0)
    no_broker.clear()
    claimed = claim_run(step0.pk)  # a worker is running step 0
    assert claimed is not None
    workflow_cancel(workflow=wf, user=admin_user)  # the attempt goes on; no retry after it
    with pytest.raises(ConflictError):
        workflow_resume(workflow=wf, user=admin_user)
    assert wf.runs.filter(step_index=0).count() == 1
    _execute_claimed(*claimed)  # the late attempt succeeds: step 0 is done
    wf = _wf(wf)
    assert wf.status == "cancelled" and wf.current_step == 1
    workflow_resume(workflow=wf, user=admin_user)
    with pytest.raises(ConflictError):
        workflow_resume(workflow=wf, user=admin_user)  # clicked twice
    drain(no_broker)
    wf = _wf(wf)
    assert wf.status == "succeeded"
    assert wf.runs.filter(step_index=0).count() == 1 and wf.runs.filter(step_index=1).count() == 1


def test_starting_a_workflow_is_idempotent_by_key(operator: Any, no_broker: list[str]) -> None:
    import json

    from tests.helpers import login

    client = login(operator)
    info = {"agent": "kernel", "action": "info", "payload": {}}
    body = {"steps": [info, info], "idempotency_key": "wf-1"}
    first = client.post("/api/workflows", json.dumps(body), content_type="application/json")
    again = client.post("/api/workflows", json.dumps(body), content_type="application/json")
    assert first.status_code == 201 and again.status_code == 200
    assert again.json()["id"] == first.json()["id"]
    different = client.post("/api/workflows", json.dumps({**body, "steps": [info]}), content_type="application/json")
    assert different.status_code == 409
    assert WorkflowRun.objects.count() == 1 and len(no_broker) == 1  # one first step, sent once
