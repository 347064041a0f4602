"""Schedule: our own row (UUID) around each beat entry. Existing "agents: ..." entries, which
carried the target and the owner's id in their kwargs, are wrapped and rewritten to name the row."""

import json
import uuid

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models

PERIOD_S = {"seconds": 1, "minutes": 60, "hours": 3600, "days": 86400}


def wrap_beat_entries(apps, schema_editor):
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    Schedule = apps.get_model("agents", "Schedule")
    User = apps.get_model(*settings.AUTH_USER_MODEL.split("."))
    old_tasks = ("agents.scheduled_action", "agents.scheduled_workflow")
    for task in PeriodicTask.objects.filter(task__in=old_tasks).select_related("interval", "crontab"):
        kwargs = json.loads(task.kwargs or "{}")
        if task.interval_id:
            timing = {"every_s": task.interval.every * PERIOD_S.get(task.interval.period, 1), "crontab": ""}
        elif task.crontab_id:
            c = task.crontab
            cron = f"{c.minute} {c.hour} {c.day_of_month} {c.month_of_year} {c.day_of_week}"
            timing = {"every_s": None, "crontab": cron}
        else:
            continue
        if task.task == "agents.scheduled_workflow":
            target = {"workflow": kwargs.get("name", "")}
        else:
            target = {
                "agent": kwargs.get("agent", ""),
                "action": kwargs.get("action", ""),
                "payload": kwargs.get("payload") or {},
            }
        schedule = Schedule.objects.create(
            name=task.name.removeprefix("agents: ")[:100],
            forensic=bool(kwargs.get("forensic")),
            enabled=task.enabled,
            owner=User.objects.filter(pk=kwargs.get("user_id")).first() if kwargs.get("user_id") else None,
            periodic_task=task,
            **target,
            **timing,
        )
        task.task, task.kwargs = "agents.scheduled_run", json.dumps({"schedule_id": str(schedule.pk)})
        task.save(update_fields=["task", "kwargs"])


class Migration(migrations.Migration):
    dependencies = [
        ("agents", "0004_approval_outbox"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name="Schedule",
            fields=[
                ("id", models.UUIDField(default=uuid.uuid4, editable=False, primary_key=True, serialize=False)),
                ("name", models.CharField(max_length=100, unique=True)),
                ("agent", models.CharField(blank=True, max_length=64)),
                ("action", models.CharField(blank=True, max_length=64)),
                ("payload", models.JSONField(blank=True, default=dict)),
                ("workflow", models.CharField(blank=True, max_length=100)),
                ("forensic", models.BooleanField(default=False)),
                ("every_s", models.PositiveIntegerField(blank=True, null=True)),
                ("crontab", models.CharField(blank=True, max_length=100)),
                ("enabled", models.BooleanField(default=True)),
                ("created_at", models.DateTimeField(auto_now_add=True)),
                ("updated_at", models.DateTimeField(auto_now=True)),
                ("last_run_at", models.DateTimeField(blank=True, null=True)),
                ("last_run_ref", models.CharField(blank=True, max_length=64)),
                ("skipped_at", models.DateTimeField(blank=True, null=True)),
                ("skip_reason", models.CharField(blank=True, max_length=300)),
                (
                    "owner",
                    models.ForeignKey(
                        blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, to=settings.AUTH_USER_MODEL
                    ),
                ),
                (
                    "periodic_task",
                    models.OneToOneField(
                        blank=True,
                        null=True,
                        on_delete=django.db.models.deletion.SET_NULL,
                        related_name="+",
                        to="django_celery_beat.periodictask",
                    ),
                ),
            ],
            options={
                "constraints": [
                    models.CheckConstraint(
                        condition=models.Q(
                            models.Q(("every_s__isnull", False), ("crontab", "")),
                            models.Q(("every_s__isnull", True), models.Q(("crontab", ""), _negated=True)),
                            _connector="OR",
                        ),
                        name="agents_schedule_one_timing",
                    )
                ],
            },
        ),
        migrations.RunPython(wrap_beat_entries, migrations.RunPython.noop),
    ]
