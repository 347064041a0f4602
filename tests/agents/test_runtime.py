"""The state machine, claims, retries, gates, leases, the relay and dead letters (in-process worker)."""

from __future__ import annotations

import threading
from datetime import timedelta
from uuid import UUID

import pytest
from django.db import connection
from django.utils import timezone

from agents.models import TRANSITIONS, ActionRun, SideEffect, can_transition
from agents.runtime.claims import claim_run
from agents.services import run_cancel, run_execute, run_request, runs_relay, runs_sweep
from tests.agents.conftest import drain, refreshed

pytestmark = pytest.mark.django_db


def _chaos(admin_user, **payload):  # type: ignore[no-untyped-def]
    run, _ = run_request(agent="chaos", action="flaky", payload=payload, user=admin_user)
    return run


def test_the_state_machine_allows_only_its_transitions() -> None:
    assert can_transition("queued", "running")
    assert can_transition("running", "retrying")
    assert can_transition("awaiting_approval", "queued")
    assert not can_transition("succeeded", "running")
    assert not can_transition("queued", "succeeded")
    assert not can_transition("awaiting_approval", "running")  # approval first, then the queue
    for terminal in ("succeeded", "failed", "rejected", "expired", "cancelled", "dead_letter"):
        assert TRANSITIONS[terminal] == frozenset()


def test_a_run_is_queued_then_succeeds_with_its_attempt_recorded(admin_user, no_broker) -> None:  # type: ignore[no-untyped-def]
    run = _chaos(admin_user, p_fail=0)
    assert run.status == "queued" and no_broker == [str(run.pk)]
    drain(no_broker)
    run = refreshed(run)
    assert run.status == "succeeded" and run.attempt == 1
    assert run.attempts_log[0]["outcome"] == "succeeded"
    assert run.result["success"] is True and run.finished_at and run.trace_id


def test_transient_failures_are_retried_until_success(admin_user, no_broker) -> None:  # type: ignore[no-untyped-def]
    run = _chaos(admin_user, p_fail=0, fail_first=2)
    drain(no_broker)
    run = refreshed(run)
    assert run.status == "succeeded" and run.attempt == 3
    assert [a["outcome"] for a in run.attempts_log] == ["retrying", "retrying", "succeeded"]
    assert run.attempts_log[0]["error_class"] == "retryable"


def test_retries_stop_at_the_policy_limit(admin_user, no_broker) -> None:  # type: ignore[no-untyped-def]
    run = _chaos(admin_user, p_fail=1)
    drain(no_broker)
    run = refreshed(run)
    assert run.status == "failed" and run.attempt == 3 == run.max_attempts
    assert run.error_class == "retryable" and run.error_type == "transient_fault"


def test_permanent_failures_are_not_retried(admin_user, no_broker) -> None:  # type: ignore[no-untyped-def]
    run = _chaos(admin_user, p_fail=1, error_class="permanent")
    drain(no_broker)
    run = refreshed(run)
    assert run.status == "failed" and run.attempt == 1 and run.error_class == "permanent"


def test_retry_waits_are_kept_in_the_database(admin_user, no_broker, settings) -> None:  # type: ignore[no-untyped-def]
    settings.AIOS_RUN_BACKOFF_SCALE = 1000.0  # waits far beyond AIOS_RUN_MAX_ETA_S
    run = _chaos(admin_user, p_fail=0, fail_first=1)
    run_execute(run_id=UUID(no_broker.pop()))
    run = refreshed(run)
    assert run.status == "retrying" and run.next_attempt_at > timezone.now() + timedelta(seconds=60)
    assert run.dispatched_at is None and no_broker == []  # no broker ETA: the relay sends it when due
    assert claim_run(run.pk) is None  # not due yet: a stray message cannot start it early
    ActionRun.objects.filter(pk=run.pk).update(next_attempt_at=timezone.now())
    assert runs_relay() == 1 and no_broker == [str(run.pk)]
    drain(no_broker)
    assert refreshed(run).status == "succeeded"


def test_the_validation_gate_runs_before_a_run_counts_as_succeeded(admin_user, no_broker) -> None:  # type: ignore[no-untyped-def]
    good, _ = run_request(agent="chaos", action="gated", payload={"value": 5, "minimum": 1}, user=admin_user)
    bad, _ = run_request(agent="chaos", action="gated", payload={"value": 0, "minimum": 1}, user=admin_user)
    drain(no_broker)
    assert refreshed(good).status == "succeeded"
    bad = refreshed(bad)
    assert bad.status == "failed" and bad.error_type == "validation_gate" and bad.attempt == 1
    assert "below 1" in bad.error


@pytest.mark.django_db(transaction=True)
def test_two_workers_racing_for_one_run_execute_it_once(admin_user, no_broker) -> None:  # type: ignore[no-untyped-def]
    run, _ = run_request(agent="chaos", action="effect", payload={"p_fail": 0, "sleep_ms": 50}, user=admin_user)
    barrier, outcomes = threading.Barrier(2), []

    def worker() -> None:
        try:
            barrier.wait()
            outcomes.append(run_execute(run_id=run.pk))
        finally:
            connection.close()

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == ["not_claimed", "succeeded"]
    run = refreshed(run)
    assert run.attempt == 1 and len(run.attempts_log) == 1
    effect = SideEffect.objects.get(key=f"run:{run.pk}")
    assert effect.replays == 0


def test_a_redelivered_message_does_nothing(admin_user, no_broker) -> None:  # type: ignore[no-untyped-def]
    run = _chaos(admin_user, p_fail=0)
    drain(no_broker)
    assert run_execute(run_id=run.pk) == "not_claimed"
    assert refreshed(run).attempt == 1


def test_a_run_whose_worker_died_is_requeued_by_the_sweeper(admin_user, no_broker) -> None:  # type: ignore[no-untyped-def]
    run, _ = run_request(agent="chaos", action="effect", payload={"p_fail": 0}, user=admin_user)
    no_broker.clear()
    claimed = claim_run(run.pk)  # a worker claims it ... and dies: the lease is never renewed
    assert claimed is not None
    assert runs_sweep() == {"requeued": 0, "dead_letter": 0}  # lease still valid
    ActionRun.objects.filter(pk=run.pk).update(lease_expires_at=timezone.now() - timedelta(seconds=1))
    assert runs_sweep() == {"requeued": 1, "dead_letter": 0}
    assert no_broker == [str(run.pk)]
    stale_token = claimed[1]
    drain(no_broker)
    run = refreshed(run)
    assert run.status == "succeeded" and run.crashes == 1 and run.attempt == 2
    # the dead worker's late write is refused: it no longer holds the lease
    from agents.runtime.claims import record_if_owner

    assert not record_if_owner(run.pk, stale_token, status="failed")


def test_a_run_that_keeps_killing_its_worker_goes_to_dead_letter(admin_user, no_broker, settings) -> None:  # type: ignore[no-untyped-def]
    run, _ = run_request(agent="chaos", action="effect", payload={"p_fail": 0}, user=admin_user)
    for _crash in range(settings.AIOS_RUN_MAX_CRASHES):
        no_broker.clear()
        assert claim_run(run.pk) is not None
        ActionRun.objects.filter(pk=run.pk).update(lease_expires_at=timezone.now() - timedelta(seconds=1))
        result = runs_sweep()
    assert result == {"requeued": 0, "dead_letter": 1}
    run = refreshed(run)
    assert run.status == "dead_letter" and run.crashes == settings.AIOS_RUN_MAX_CRASHES
    assert run.error_type == "worker_lost"


@pytest.mark.parametrize("coalesce", [True, False], ids=["doorbell", "message-per-run"])
def test_a_run_committed_while_the_broker_is_down_is_sent_by_the_relay(
    admin_user, monkeypatch, django_capture_on_commit_callbacks, settings, coalesce
) -> None:  # type: ignore[no-untyped-def]
    from django.core.cache import cache

    from agents import tasks
    from agents.runtime import doorbell

    def down(*args: object, **kwargs: object) -> None:
        raise ConnectionError("broker down")

    settings.AIOS_RUN_COALESCE_WAKEUPS = coalesce
    cache.delete(doorbell.KEY)
    monkeypatch.setattr(tasks.execute_run, "apply_async", down)
    monkeypatch.setattr(tasks.drain_runs, "apply_async", down)
    with django_capture_on_commit_callbacks(execute=True):
        run = _chaos(admin_user, p_fail=0)
    # the request succeeded although the broker is down; the run waits undispatched
    run = refreshed(run)
    assert run.status == "queued" and run.dispatched_at is None
    sent: list[str] = []
    monkeypatch.setattr(tasks.execute_run, "apply_async", lambda args, **kw: sent.append(args[0]))
    assert runs_relay() == 1 and sent == [str(run.pk)]
    assert runs_relay() == 0  # just sent: not again before AIOS_RUN_REDISPATCH_S
    drain(sent)
    assert refreshed(run).status == "succeeded"


def test_a_lost_message_is_resent_after_the_redispatch_interval(admin_user, no_broker) -> None:  # type: ignore[no-untyped-def]
    run = _chaos(admin_user, p_fail=0)
    no_broker.clear()  # the broker lost it
    assert runs_relay() == 0
    ActionRun.objects.filter(pk=run.pk).update(dispatched_at=timezone.now() - timedelta(minutes=5))
    assert runs_relay() == 1 and no_broker == [str(run.pk)]


def test_cancel_stops_a_queued_run_and_refuses_a_finished_one(admin_user, operator, no_broker) -> None:  # type: ignore[no-untyped-def]
    from aios_core.errors import ConflictError

    run = _chaos(admin_user, p_fail=0)
    run_cancel(run=run, user=operator)
    assert run_execute(run_id=run.pk) == "not_claimed"
    assert refreshed(run).status == "cancelled"
    with pytest.raises(ConflictError):
        run_cancel(run=run, user=operator)


def test_max_concurrent_postpones_a_claim_when_the_slots_are_taken(admin_user, no_broker) -> None:  # type: ignore[no-untyped-def]
    from agents.services import policy_set

    policy_set(agent="chaos", action="flaky", user=admin_user, max_concurrent=1)
    first, second = _chaos(admin_user, p_fail=0), _chaos(admin_user, p_fail=0)
    no_broker.clear()
    assert claim_run(first.pk) is not None  # first is running
    assert run_execute(run_id=second.pk) == "postponed"
    second = refreshed(second)
    assert second.status == "queued" and second.attempt == 0 and second.next_attempt_at > timezone.now()
