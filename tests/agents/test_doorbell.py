"""Coalesced wake-ups: a burst of runs rings one doorbell; a drain claims them in order."""

from __future__ import annotations

from typing import Any

import pytest
from django.core.cache import cache
from django.db import transaction

from agents import services, tasks
from agents.models import ActionRun
from agents.runtime import doorbell
from agents.services import policy_set, run_request, runs_drain

pytestmark = pytest.mark.django_db


@pytest.fixture
def bell(monkeypatch: pytest.MonkeyPatch, settings: Any) -> dict[str, list[Any]]:
    settings.AIOS_RUN_COALESCE_WAKEUPS = True
    settings.AIOS_RUN_DRAIN_LINGER_S = 0.02
    cache.delete(doorbell.KEY)
    sent: dict[str, list[Any]] = {"drain": [], "run": []}
    monkeypatch.setattr(transaction, "on_commit", lambda fn, using=None, robust=False: fn())
    monkeypatch.setattr(tasks.drain_runs, "apply_async", lambda *a, **kw: sent["drain"].append(kw))
    monkeypatch.setattr(tasks.execute_run, "apply_async", lambda args, **kw: sent["run"].append(args[0]))
    yield sent
    cache.delete(doorbell.KEY)


def _chaos(user: Any) -> ActionRun:
    return run_request(agent="chaos", action="flaky", payload={"p_fail": 0}, user=user)[0]


def test_a_burst_rings_once_and_one_drain_runs_it_all_in_order(admin_user: Any, bell: dict[str, list[Any]]) -> None:
    runs = [_chaos(admin_user) for _ in range(5)]
    assert len(bell["drain"]) == 1 and bell["run"] == []
    assert runs_drain() == 5
    done = ActionRun.objects.filter(pk__in=[r.pk for r in runs]).order_by("started_at")
    assert [r.status for r in done] == ["succeeded"] * 5
    assert [r.pk for r in done] == sorted(r.pk for r in runs)  # oldest first (time-ordered ids)
    assert len(bell["drain"]) == 2  # the drain found work and called an idle process in, once


def test_runs_committed_while_a_drain_works_cost_no_message_and_are_taken_by_it(
    admin_user: Any, bell: dict[str, list[Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    _chaos(admin_user)
    claim, late = services._claim_for_drain, []

    def claim_then_commit() -> Any:
        claimed = claim()
        if claimed is None and not late:  # a run arrives while the drain lingers
            late.append(_chaos(admin_user))
        return claimed

    monkeypatch.setattr(services, "_claim_for_drain", claim_then_commit)
    assert runs_drain() == 2
    assert ActionRun.objects.get(pk=late[0].pk).status == "succeeded"
    assert len(bell["drain"]) == 2  # the first ring and the call for a second process: the late run rang into the key


def test_a_run_after_the_drain_answered_rings_again(admin_user: Any, bell: dict[str, list[Any]]) -> None:
    _chaos(admin_user)
    assert runs_drain() == 1  # nothing left: it deletes the key, claims once more, and ends
    assert cache.get(doorbell.KEY) is None
    sent = len(bell["drain"])
    _chaos(admin_user)
    assert len(bell["drain"]) == sent + 1


def test_a_drain_past_its_budget_hands_over_to_a_new_message(
    admin_user: Any, bell: dict[str, list[Any]], settings: Any
) -> None:
    settings.AIOS_RUN_DRAIN_S = 0  # the budget is spent before the first claim
    _chaos(admin_user)
    assert runs_drain() == 0
    assert len(bell["drain"]) == 2  # the ring, then the hand-over (the key was let go first)
    assert ActionRun.objects.get().status == "queued"


def test_limited_and_long_runs_get_messages_of_their_own(
    admin_user: Any, bell: dict[str, list[Any]], settings: Any
) -> None:
    policy_set(agent="chaos", action="flaky", user=admin_user, run_timeout_s=600)
    long = _chaos(admin_user)  # past AIOS_RUN_DRAIN_MAX_TIMEOUT_S: the drain's limits would not fit it
    policy_set(agent="chaos", action="flaky", user=admin_user, run_timeout_s=None, max_concurrent=2)
    limited = _chaos(admin_user)  # its claim counts the running ones under the action's lock
    assert bell["run"] == [str(long.pk), str(limited.pk)] and bell["drain"] == []
    assert runs_drain() == 0  # neither is the drain's to take
    assert ActionRun.objects.filter(status="queued").count() == 2
