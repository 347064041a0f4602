"""Schedules: periodic actions and workflows, managed in the UI, run by beat on the owner's behalf.

Each `Schedule` (UUID) wraps one django-celery-beat `PeriodicTask` (interval or crontab) whose
kwargs are only `{"schedule_id": ...}`: the target, payload and owner live in our row, so an
edit never leaves a stale copy in beat. Every firing re-checks the owner (exists, active,
operator, admin for admin-only agents); a firing that fails the check is skipped, never run as
"system", and the page flags it. Every change is audited.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.db.models import QuerySet
from django.http import Http404
from django.utils import timezone

from agents.manifest import registry
from agents.models import Schedule
from aios_core.access import ADMIN, OPERATOR, VIEWER, has_role
from observability.audit import audit_append

log = logging.getLogger(__name__)
TASK = "agents.scheduled_run"
MIN_EVERY_S = 10


@dataclass
class ScheduleSpec:
    """What a schedule runs and when: the fields a person edits (checked by `_validated`)."""

    name: str
    target: str  # "agent.action" or "workflow:<name>"
    payload: dict[str, Any] = field(default_factory=dict)
    forensic: bool = False
    every_s: int | None = None
    crontab: str = ""


def _crontab_fields(expression: str) -> dict[str, str]:
    """The five crontab fields, checked with django-celery-beat's own validators."""
    from django_celery_beat import validators

    parts = expression.split()
    if len(parts) != 5:
        raise ValidationError({"crontab": "five fields: minute hour day-of-month month day-of-week"})
    names = ("minute", "hour", "day_of_month", "month_of_year", "day_of_week")
    checks = (
        validators.minute_validator,
        validators.hour_validator,
        validators.day_of_month_validator,
        validators.month_of_year_validator,
        validators.day_of_week_validator,
    )
    for name, check, value in zip(names, checks, parts, strict=True):
        try:
            check(value)
        except ValidationError as exc:
            raise ValidationError({"crontab": f"{name.replace('_', ' ')}: {'; '.join(exc.messages)}"}) from exc
    return dict(zip(names, parts, strict=True))


def _target_fields(spec: ScheduleSpec, user: Any) -> dict[str, Any]:
    """The target checked as `user` would run it now (admin-only agents, payload schema)."""
    from agents.services import action_spec_for_user, payload_validate, workflow_steps_validate

    if spec.target.startswith("workflow:"):
        name = spec.target.removeprefix("workflow:")
        workflow = registry.workflows.get(name)
        if workflow is None:
            raise ValidationError({"target": f"no workflow named {name!r}"})
        try:
            workflow_steps_validate([s.model_dump() for s in workflow.steps], user)
        except ValidationError as exc:
            raise ValidationError({"target": f"you may not run workflow {name!r}"}) from exc
        return {"workflow": name, "agent": "", "action": "", "payload": {}}
    agent, _, action = spec.target.partition(".")
    action_spec = action_spec_for_user(agent=agent, action=action, user=user)
    data = payload_validate(action_spec, spec.payload).model_dump(mode="json")
    return {"workflow": "", "agent": agent, "action": action, "payload": data}


def _validated(spec: ScheduleSpec, user: Any, schedule: Schedule | None = None) -> dict[str, Any]:
    if not has_role(user, OPERATOR):
        raise PermissionDenied("managing schedules needs the operator role")
    name, crontab = spec.name.strip(), " ".join(spec.crontab.split())
    if not name or len(name) > 100:
        raise ValidationError({"name": "1 to 100 characters"})
    if (spec.every_s is None) == (not crontab):
        raise ValidationError({"every_s": "give either an interval in seconds or a crontab, not both"})
    if spec.every_s is not None and spec.every_s < MIN_EVERY_S:
        raise ValidationError({"every_s": f"at least {MIN_EVERY_S} seconds"})
    if crontab:
        _crontab_fields(crontab)
    clash = Schedule.objects.filter(name=name)
    if schedule is not None:
        clash = clash.exclude(pk=schedule.pk)
    if clash.exists():
        raise ValidationError({"name": "a schedule with this name exists"})
    return {
        "name": name,
        "forensic": spec.forensic,
        "every_s": spec.every_s,
        "crontab": crontab,
        **_target_fields(spec, user),
    }


def _timing(schedule: Schedule) -> dict[str, Any]:
    from django_celery_beat.models import CrontabSchedule, IntervalSchedule

    if schedule.every_s:
        interval, _ = IntervalSchedule.objects.get_or_create(every=schedule.every_s, period=IntervalSchedule.SECONDS)
        return {"interval": interval, "crontab": None}
    crontab, _ = CrontabSchedule.objects.get_or_create(**_crontab_fields(schedule.crontab), timezone="UTC")
    return {"interval": None, "crontab": crontab}


def _sync_periodic_task(schedule: Schedule) -> None:
    """Create or update the beat entry from our row (inside the caller's transaction)."""
    from django_celery_beat.models import PeriodicTask

    task = PeriodicTask.objects.filter(pk=schedule.periodic_task_id).first() or PeriodicTask()
    task.name = f"agents: {schedule.name}"[:200]
    task.task = TASK
    task.kwargs = json.dumps({"schedule_id": str(schedule.pk)})
    task.enabled = schedule.enabled
    for attr, value in _timing(schedule).items():
        setattr(task, attr, value)
    task.save()  # save(), not update(): it is what tells beat to reload its schedule
    if schedule.periodic_task_id != task.pk:
        schedule.periodic_task = task
        schedule.save(update_fields=["periodic_task"])


def _snapshot(schedule: Schedule) -> dict[str, Any]:
    return {
        "name": schedule.name,
        "target": schedule.target,
        "payload": schedule.payload,
        "forensic": schedule.forensic,
        "timing": schedule.timing,
        "enabled": schedule.enabled,
        "owner": schedule.owner.get_username() if schedule.owner_id else None,
    }


# --- writes -----------------------------------------------------------------------------------


def schedule_create(*, user: Any, spec: ScheduleSpec) -> Schedule:
    values = _validated(spec, user)
    with transaction.atomic():
        schedule = Schedule.objects.create(owner=user, **values)
        _sync_periodic_task(schedule)
        audit_append(
            action="agents.schedule_created",
            object_type="schedule",
            object_id=schedule.pk,
            data=_snapshot(schedule),
            actor=user,
        )
    return schedule


def schedule_update(*, schedule: Schedule, user: Any, spec: ScheduleSpec) -> Schedule:
    """Change what and when; the editor becomes the owner (the schedule now runs as them)."""
    values = _validated(spec, user, schedule)
    with transaction.atomic():
        locked = Schedule.objects.select_for_update().get(pk=schedule.pk)
        before = _snapshot(locked)
        for field, value in values.items():
            setattr(locked, field, value)
        locked.owner, locked.skipped_at, locked.skip_reason = user, None, ""
        locked.save()
        _sync_periodic_task(locked)
        audit_append(
            action="agents.schedule_updated",
            object_type="schedule",
            object_id=locked.pk,
            data={"before": before, "after": _snapshot(locked)},
            actor=user,
        )
    return locked


def schedule_set_enabled(*, schedule: Schedule, user: Any, enabled: bool) -> Schedule:
    """Pause (enabled=False) or resume; the owner stays who they were."""
    if not has_role(user, OPERATOR):
        raise PermissionDenied("managing schedules needs the operator role")
    with transaction.atomic():
        locked = Schedule.objects.select_for_update().get(pk=schedule.pk)
        locked.enabled = enabled
        locked.save(update_fields=["enabled", "updated_at"])
        _sync_periodic_task(locked)
        audit_append(
            action="agents.schedule_resumed" if enabled else "agents.schedule_paused",
            object_type="schedule",
            object_id=locked.pk,
            data={"name": locked.name},
            actor=user,
        )
    return locked


def schedule_delete(*, schedule: Schedule, user: Any) -> None:
    if not has_role(user, OPERATOR):
        raise PermissionDenied("managing schedules needs the operator role")
    with transaction.atomic():
        audit_append(
            action="agents.schedule_deleted",
            object_type="schedule",
            object_id=schedule.pk,
            data=_snapshot(schedule),
            actor=user,
        )
        if schedule.periodic_task_id:
            schedule.periodic_task.delete()
        schedule.delete()


# --- a firing (the beat task) -------------------------------------------------------------------


def _refusal(schedule: Schedule) -> str | None:
    """Why the owner may not run this schedule now, or None."""
    owner = schedule.owner
    if owner is None:
        return "its owner's account was deleted"
    name = owner.get_username()
    if not owner.is_active:
        return f"its owner {name} is deactivated"
    if not has_role(owner, OPERATOR):
        return f"its owner {name} no longer has the operator role"
    if has_role(owner, ADMIN):
        return None
    workflow = registry.workflows.get(schedule.workflow) if schedule.workflow else None
    agents = [s.agent for s in workflow.steps] if workflow is not None else [schedule.agent]
    for agent_name in agents:
        agent = registry.agents.get(agent_name)
        if agent is not None and agent.admin_only:
            return f"{agent_name} is for admins only and {name} is not an admin"
    return None


def _skip(schedule: Schedule, reason: str) -> str:
    """Flag the schedule; audit the first skip of a streak (not every firing)."""
    first = schedule.skip_reason != reason
    Schedule.objects.filter(pk=schedule.pk).update(skipped_at=timezone.now(), skip_reason=reason[:300])
    if first:
        log.warning("schedule %s skipped: %s", schedule.name, reason)
        audit_append(
            action="agents.schedule_skipped",
            object_type="schedule",
            object_id=schedule.pk,
            data={"name": schedule.name, "reason": reason},
        )
    return f"skipped: {reason}"


def schedule_fire(*, schedule_id: UUID) -> str:
    """Start the schedule's run or workflow as its owner, if the owner still may; else skip."""
    from agents.services import run_request, workflow_start

    schedule = Schedule.objects.select_related("owner").filter(pk=schedule_id).first()
    if schedule is None or not schedule.enabled:
        return "gone" if schedule is None else "paused"
    reason = _refusal(schedule)
    if reason is not None:
        return _skip(schedule, reason)
    try:
        if schedule.workflow:
            ref = str(workflow_start(user=schedule.owner, name=schedule.workflow, forensic=schedule.forensic).pk)
        else:
            run, _ = run_request(
                agent=schedule.agent,
                action=schedule.action,
                payload=schedule.payload,
                user=schedule.owner,
                forensic=schedule.forensic,
            )
            ref = str(run.pk)
    except ValidationError as exc:  # switched off by policy, a step now out of reach, ...
        return _skip(schedule, "; ".join(exc.messages)[:300])
    Schedule.objects.filter(pk=schedule.pk).update(
        last_run_at=timezone.now(), last_run_ref=ref, skipped_at=None, skip_reason=""
    )
    return ref


# --- reads ------------------------------------------------------------------------------------


def schedules_for_user(user: Any) -> QuerySet[Schedule]:
    """Schedules `user` may see: none of an agent hidden from them, nor a workflow with one."""
    from agents.selectors import hidden_agents_for

    if not has_role(user, VIEWER):
        raise PermissionDenied("this needs the viewer role")
    hidden = set(hidden_agents_for(user))
    hidden_workflows = [n for n, w in registry.workflows.items() if any(s.agent in hidden for s in w.steps)]
    qs = Schedule.objects.select_related("owner").order_by("name")
    return qs.exclude(agent__in=hidden).exclude(workflow__in=hidden_workflows)


def get_schedule_for_user(user: Any, schedule_id: UUID) -> Schedule:
    schedule = schedules_for_user(user).filter(pk=schedule_id).first()
    if schedule is None:
        raise Http404("no such schedule")
    return schedule
