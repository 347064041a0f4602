"""Admin overrides reach the runtime: concurrency limits, backoff, and per-run time limits."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from agents import tasks
from agents.models import ActionRun
from agents.runtime.claims import claim_run
from agents.services import policy_set, run_execute, run_request
from tests.agents.conftest import drain, refreshed

pytestmark = pytest.mark.django_db


def _chaos(user: Any, **payload: Any) -> ActionRun:
    return run_request(agent="chaos", action="flaky", payload=payload, user=user)[0]


def test_a_limit_of_one_lets_one_run_at_a_time_through_and_never_blocks_a_lone_run(
    admin_user: Any, no_broker: list[str]
) -> None:
    policy_set(agent="chaos", action="flaky", user=admin_user, max_concurrent=1)
    lone = _chaos(admin_user, p_fail=0)
    drain(no_broker)
    assert refreshed(lone).status == "succeeded"  # its own running row does not count against it


def test_a_limit_set_after_runs_were_queued_still_applies_to_them(admin_user: Any, no_broker: list[str]) -> None:
    from agents.services import _execute_claimed

    first, second = _chaos(admin_user, p_fail=0), _chaos(admin_user, p_fail=0)
    no_broker.clear()
    policy_set(agent="chaos", action="flaky", user=admin_user, max_concurrent=1)
    claimed = claim_run(first.pk)
    assert claimed is not None  # first is running
    assert run_execute(run_id=second.pk) == "postponed"
    waiting = refreshed(second)
    assert waiting.status == "queued" and waiting.attempt == 0 and waiting.next_attempt_at > timezone.now()
    # the running one finishes: the waiting one is woken at once (not after its wait) and runs
    no_broker.clear()
    _execute_claimed(*claimed)
    assert no_broker == [str(second.pk)] and refreshed(second).next_attempt_at is None
    drain(no_broker)
    assert refreshed(second).status == "succeeded" and refreshed(second).attempt == 1


def test_backoff_overrides_set_the_retry_wait(admin_user: Any, no_broker: list[str], settings: Any) -> None:
    settings.AIOS_RUN_BACKOFF_SCALE = 1.0
    policy_set(agent="chaos", action="flaky", user=admin_user, backoff_base_s=400, backoff_cap_s=500)
    run = _chaos(admin_user, p_fail=1)
    before = timezone.now()
    run_execute(run_id=run.pk)
    run = refreshed(run)
    assert run.status == "retrying"
    # first retry waits base (400 s) jittered to [200, 400]; the coded default is 1 s
    assert before + timedelta(seconds=199) <= run.next_attempt_at <= timezone.now() + timedelta(seconds=400)
    assert run.dispatched_at is None  # longer than AIOS_RUN_MAX_ETA_S: it waits in the database


def test_a_cap_below_the_base_is_refused(admin_user: Any) -> None:
    from django.core.exceptions import ValidationError

    with pytest.raises(ValidationError):
        policy_set(agent="chaos", action="flaky", user=admin_user, backoff_base_s=30, backoff_cap_s=10)


def test_a_run_message_carries_time_limits_from_the_runs_own_timeout(
    admin_user: Any, monkeypatch: pytest.MonkeyPatch, settings: Any, django_capture_on_commit_callbacks: Any
) -> None:
    settings.AIOS_RUN_COALESCE_WAKEUPS = False
    settings.AIOS_RUN_TIME_LIMIT_MARGIN_S = 5
    sent: list[dict[str, Any]] = []
    monkeypatch.setattr(tasks.execute_run, "apply_async", lambda args, **kw: sent.append(kw))
    policy_set(agent="chaos", action="flaky", user=admin_user, run_timeout_s=7)
    with django_capture_on_commit_callbacks(execute=True):
        _chaos(admin_user, p_fail=0)
    assert sent[0]["soft_time_limit"] == 12 and sent[0]["time_limit"] == 17
    # the global limits stay the ceiling
    policy_set(agent="chaos", action="flaky", user=admin_user, run_timeout_s=3000)
    with django_capture_on_commit_callbacks(execute=True):
        _chaos(admin_user, p_fail=0)
    assert sent[1]["soft_time_limit"] == settings.CELERY_TASK_SOFT_TIME_LIMIT
    assert sent[1]["time_limit"] <= settings.CELERY_TASK_TIME_LIMIT
