"""Through the real Celery worker process (prefork, 2 children) on the test database."""

from __future__ import annotations

import json
import time
from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from agents.models import ActionRun
from agents.services import runs_sweep
from tests.helpers import login

pytestmark = pytest.mark.django_db(transaction=True)


def _wait(run_id: str, predicate: Any, timeout: float = 30) -> ActionRun:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run = ActionRun.objects.get(pk=run_id)
        if predicate(run):
            return run
        time.sleep(0.05)
    raise AssertionError(f"run {run_id} stuck at {ActionRun.objects.get(pk=run_id).status}")


def test_an_api_run_reaches_succeeded_in_the_worker(celery_worker: Any, admin_user: Any) -> None:
    resp = login(admin_user).post(
        "/api/runs",
        json.dumps({"agent": "chaos", "action": "flaky", "payload": {"p_fail": 0, "fail_first": 1}}),
        content_type="application/json",
    )
    assert resp.status_code == 201
    run = _wait(resp.json()["id"], lambda r: r.is_terminal)
    assert run.status == "succeeded" and run.attempt == 2
    assert {a["worker"] for a in run.attempts_log} != {""}


def test_a_run_that_keeps_killing_its_worker_is_dead_lettered(
    celery_worker: Any, admin_user: Any, settings: Any
) -> None:
    resp = login(admin_user).post(
        "/api/runs", json.dumps({"agent": "chaos", "action": "crash"}), content_type="application/json"
    )
    run_id = resp.json()["id"]
    for crash in range(1, settings.AIOS_RUN_MAX_CRASHES + 1):
        _wait(run_id, lambda r, n=crash: r.status == "running" and r.attempt == n)
        time.sleep(0.3)  # the worker child is dead by now; its lease would expire in time
        ActionRun.objects.filter(pk=run_id).update(lease_expires_at=timezone.now() - timedelta(seconds=1))
        runs_sweep()
    run = _wait(run_id, lambda r: r.is_terminal)
    assert run.status == "dead_letter" and run.crashes == settings.AIOS_RUN_MAX_CRASHES
    assert celery_worker.poll() is None  # the worker itself survived its children
