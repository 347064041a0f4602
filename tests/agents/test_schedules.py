"""Schedules managed in the UI: create, edit, pause, resume, delete (interval or crontab), named by
UUID, audited; each firing runs as its owner, or is skipped and flagged when the owner may not."""

from __future__ import annotations

import importlib
import json
from typing import Any

import pytest
from django.apps import apps
from django.contrib.auth.models import Group
from django_celery_beat.models import IntervalSchedule, PeriodicTask

from agents.models import ActionRun, Schedule, WorkflowRun
from agents.schedules import ScheduleSpec, schedule_create, schedule_fire
from agents.tasks import scheduled_run
from observability.models import AuditEvent
from tests.factories import make_user
from tests.helpers import login

pytestmark = pytest.mark.django_db

NIGHTLY = {"name": "nightly boot", "target": "workflow:boot_sequence", "payload": "{}", "every_s": "86400"}
KERNEL = ScheduleSpec(name="kernel info", target="kernel.info", every_s=60)


def _audited() -> list[str]:
    return list(
        AuditEvent.objects.filter(action__startswith="agents.schedule_")
        .order_by("seq")
        .values_list("action", flat=True)
    )


def test_schedules_are_created_edited_paused_resumed_and_deleted_in_the_ui_and_audited(operator: Any) -> None:
    client = login(operator)
    assert client.post("/schedules/", NIGHTLY).status_code == 302
    schedule = Schedule.objects.get(name="nightly boot")
    task = schedule.periodic_task
    assert task.task == "agents.scheduled_run" and json.loads(task.kwargs) == {"schedule_id": str(schedule.pk)}
    assert task.interval.every == 86400 and task.crontab is None and schedule.owner == operator
    assert str(schedule.pk) in client.get("/schedules/").content.decode()

    edit = f"/schedules/{schedule.pk}/edit/"
    assert 'value="nightly boot"' in client.get(edit).content.decode()
    form = {**NIGHTLY, "every_s": "", "crontab": "0 3 * * 1-5", "forensic": "on"}
    assert client.post(edit, form).status_code == 302
    task.refresh_from_db()
    assert task.interval is None and (task.crontab.minute, task.crontab.hour, task.crontab.day_of_week) == (
        "0",
        "3",
        "1-5",
    )
    assert str(task.crontab.timezone) == "UTC" and Schedule.objects.get(pk=schedule.pk).forensic

    assert client.post(f"/schedules/{schedule.pk}/pause/").status_code == 302
    task.refresh_from_db()
    assert not task.enabled and not Schedule.objects.get(pk=schedule.pk).enabled
    assert "paused" in client.get("/schedules/").content.decode()
    client.post(f"/schedules/{schedule.pk}/resume/")
    task.refresh_from_db()
    assert task.enabled

    client.post(f"/schedules/{schedule.pk}/delete/")
    assert not Schedule.objects.exists() and not PeriodicTask.objects.filter(pk=task.pk).exists()
    assert _audited() == [
        "agents.schedule_created",
        "agents.schedule_updated",
        "agents.schedule_paused",
        "agents.schedule_resumed",
        "agents.schedule_deleted",
    ]
    updated = AuditEvent.objects.get(action="agents.schedule_updated").data
    assert updated["before"]["timing"] == "every 86400 s" and updated["after"]["timing"] == "cron 0 3 * * 1-5 (UTC)"


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"every_s": "", "crontab": ""}, "every_s"),  # no timing
        ({"every_s": "60", "crontab": "* * * * *"}, "every_s"),  # two timings
        ({"every_s": "5"}, "every_s"),
        ({"every_s": "", "crontab": "61 * * * *"}, "crontab"),
        ({"every_s": "", "crontab": "* * *"}, "crontab"),
        ({"target": "networking.tcp_check"}, "payload"),  # the payload misses its port
        ({"payload": "[1]"}, "payload"),
        ({"target": "chaos.flaky"}, "target"),  # admins only: not even offered
    ],
)
def test_bad_schedules_are_refused_with_the_field_named_and_nothing_written(
    operator: Any, change: dict[str, str], field: str
) -> None:
    resp = login(operator).post("/schedules/", {**NIGHTLY, **change})
    assert resp.status_code == 200 and field in resp.context["form"].errors
    assert not Schedule.objects.exists() and not PeriodicTask.objects.filter(name__startswith="agents:").exists()
    assert not AuditEvent.objects.filter(action__startswith="agents.schedule_").exists()


def test_a_failed_edit_changes_nothing(operator: Any) -> None:
    schedule = schedule_create(user=operator, spec=KERNEL)
    resp = login(operator).post(
        f"/schedules/{schedule.pk}/edit/", {"name": "x", "target": "kernel.info", "every_s": "1"}
    )
    assert resp.status_code == 200 and "every_s" in resp.context["form"].errors
    schedule.refresh_from_db()
    assert schedule.name == "kernel info" and schedule.every_s == 60 and schedule.periodic_task.interval.every == 60


def test_schedules_are_named_by_uuid_and_need_the_operator_role_to_change(operator: Any, viewer: Any) -> None:
    schedule = schedule_create(user=operator, spec=KERNEL)
    client = login(viewer)
    assert "kernel info" in client.get("/schedules/").content.decode()
    assert client.post("/schedules/", NIGHTLY).status_code == 403
    for verb in ("edit", "pause", "resume", "delete"):
        assert client.post(f"/schedules/{schedule.pk}/{verb}/").status_code == 403
    assert login(operator).get(f"/schedules/{schedule.periodic_task_id}/edit/").status_code == 404
    assert Schedule.objects.get(pk=schedule.pk).enabled


def test_schedules_of_admin_only_agents_are_for_admins_only(admin_user: Any, operator: Any) -> None:
    chaos = schedule_create(user=admin_user, spec=ScheduleSpec(name="chaos", target="chaos.flaky", every_s=60))
    assert "chaos" not in [s.name for s in login(operator).get("/schedules/").context["schedules"]]
    assert login(operator).get(f"/schedules/{chaos.pk}/edit/").status_code == 404
    assert login(operator).post(f"/schedules/{chaos.pk}/delete/").status_code == 404
    assert login(admin_user).get(f"/schedules/{chaos.pk}/edit/").status_code == 200


# --- firings ----------------------------------------------------------------------------------


def test_a_firing_runs_the_action_or_workflow_as_its_owner(operator: Any, no_broker: list[str]) -> None:
    action = schedule_create(user=operator, spec=KERNEL)
    workflow = schedule_create(
        user=operator, spec=ScheduleSpec(name="review", target="workflow:security_review", forensic=True, every_s=600)
    )
    run = ActionRun.objects.get(pk=scheduled_run(str(action.pk)))
    assert run.requested_by == operator and (run.agent, run.action) == ("kernel", "info")
    wf = WorkflowRun.objects.get(pk=scheduled_run(str(workflow.pk)))
    assert wf.requested_by == operator and wf.forensic
    action.refresh_from_db()
    assert action.last_run_ref == str(run.pk) and action.last_run_at is not None and not action.skip_reason


def test_a_deactivated_owners_schedule_is_skipped_flagged_and_never_runs_as_system(
    operator: Any, no_broker: list[str]
) -> None:
    schedule = schedule_create(user=operator, spec=KERNEL)
    operator.is_active = False
    operator.save()
    assert schedule_fire(schedule_id=schedule.pk).startswith("skipped")
    assert schedule_fire(schedule_id=schedule.pk).startswith("skipped")
    assert not ActionRun.objects.exists() and no_broker == []
    schedule.refresh_from_db()
    assert "deactivated" in schedule.skip_reason and schedule.skipped_at is not None
    assert _audited().count("agents.schedule_skipped") == 1  # the first skip of a streak, not every firing
    colleague = make_user("operator")
    page = login(colleague).get("/schedules/").content.decode()
    assert 'data-field="skipped"' in page and "deactivated" in page
    login(colleague).post(
        f"/schedules/{schedule.pk}/edit/", {"name": "kernel info", "target": "kernel.info", "every_s": "60"}
    )  # saving takes it over
    run = ActionRun.objects.get(pk=schedule_fire(schedule_id=schedule.pk))
    assert run.requested_by == colleague
    schedule.refresh_from_db()
    assert schedule.owner == colleague and not schedule.skip_reason


@pytest.mark.parametrize("loss", ["role", "account"])
def test_an_owner_who_lost_the_operator_role_or_the_account_gets_no_runs(operator: Any, loss: str) -> None:
    schedule = schedule_create(user=operator, spec=KERNEL)
    if loss == "role":
        operator.groups.remove(Group.objects.get(name="operator"))
        operator.groups.add(Group.objects.get(name="viewer"))
    else:
        operator.delete()
    assert schedule_fire(schedule_id=schedule.pk).startswith("skipped")
    assert not ActionRun.objects.exists()
    schedule.refresh_from_db()
    assert ("operator role" if loss == "role" else "deleted") in schedule.skip_reason


def test_an_admin_only_schedule_stops_when_its_owner_is_no_longer_an_admin(admin_user: Any) -> None:
    schedule = schedule_create(user=admin_user, spec=ScheduleSpec(name="chaos", target="chaos.flaky", every_s=60))
    admin_user.groups.set([Group.objects.get(name="operator")])
    assert schedule_fire(schedule_id=schedule.pk).startswith("skipped")
    assert not ActionRun.objects.exists()
    assert "admins only" in Schedule.objects.get(pk=schedule.pk).skip_reason


def test_a_paused_schedule_does_not_run(operator: Any) -> None:
    schedule = schedule_create(user=operator, spec=KERNEL)
    login(operator).post(f"/schedules/{schedule.pk}/pause/")
    assert schedule_fire(schedule_id=schedule.pk) == "paused" and not ActionRun.objects.exists()


def test_the_migration_wraps_existing_beat_entries(operator: Any) -> None:
    every = IntervalSchedule.objects.create(every=2, period=IntervalSchedule.HOURS)
    kwargs = {"agent": "kernel", "action": "info", "payload": {}, "forensic": True, "user_id": operator.pk}
    old = PeriodicTask.objects.create(
        name="agents: legacy", task="agents.scheduled_action", interval=every, kwargs=json.dumps(kwargs)
    )
    importlib.import_module("agents.migrations.0005_schedules").wrap_beat_entries(apps, None)
    schedule = Schedule.objects.get(name="legacy")
    old.refresh_from_db()
    assert (schedule.target, schedule.every_s, schedule.forensic, schedule.owner) == (
        "kernel.info",
        7200,
        True,
        operator,
    )
    assert old.task == "agents.scheduled_run" and json.loads(old.kwargs) == {"schedule_id": str(schedule.pk)}
