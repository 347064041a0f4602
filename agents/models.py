"""Agent runs, workflows, admin policy overrides, integrity baselines and the side-effect ledger.

The database is the source of truth for every run: the broker only carries wake-up calls.
"""

from __future__ import annotations

import uuid
from typing import Any

from django.conf import settings
from django.db import models
from django.db.models import Q

from agents.manifest import ActionResult
from aios_core.ids import uuid7


class RunStatus(models.TextChoices):
    QUEUED = "queued"
    AWAITING_APPROVAL = "awaiting_approval"
    RUNNING = "running"
    RETRYING = "retrying"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    REJECTED = "rejected"
    EXPIRED = "expired"
    CANCELLED = "cancelled"
    DEAD_LETTER = "dead_letter"


TERMINAL = frozenset(
    {
        RunStatus.SUCCEEDED,
        RunStatus.FAILED,
        RunStatus.REJECTED,
        RunStatus.EXPIRED,
        RunStatus.CANCELLED,
        RunStatus.DEAD_LETTER,
    }
)
CLAIMABLE = (RunStatus.QUEUED, RunStatus.RETRYING)

# The state machine: every status change the runtime makes is one of these.
TRANSITIONS: dict[str, frozenset[str]] = {
    RunStatus.QUEUED: frozenset({RunStatus.RUNNING, RunStatus.CANCELLED}),
    RunStatus.AWAITING_APPROVAL: frozenset(
        {RunStatus.QUEUED, RunStatus.REJECTED, RunStatus.EXPIRED, RunStatus.CANCELLED}
    ),
    RunStatus.RUNNING: frozenset(
        {
            RunStatus.SUCCEEDED,
            RunStatus.FAILED,
            RunStatus.RETRYING,
            RunStatus.CANCELLED,
            RunStatus.QUEUED,
            RunStatus.DEAD_LETTER,
        }
    ),
    RunStatus.RETRYING: frozenset({RunStatus.RUNNING, RunStatus.CANCELLED}),
    **{s: frozenset() for s in TERMINAL},
}


def can_transition(current: str, new: str) -> bool:
    return new in TRANSITIONS.get(current, frozenset())


class ActionPolicy(models.Model):
    """Admin overrides of an action's coded defaults; a null field keeps the default."""

    agent = models.CharField(max_length=64)
    action = models.CharField(max_length=64)
    enabled = models.BooleanField(default=True)
    requires_approval = models.BooleanField(null=True, blank=True)
    approvals_required = models.PositiveSmallIntegerField(null=True, blank=True, choices=[(1, "1"), (2, "2")])
    max_attempts = models.PositiveSmallIntegerField(null=True, blank=True)
    backoff_base_s = models.FloatField(null=True, blank=True)
    backoff_cap_s = models.FloatField(null=True, blank=True)
    run_timeout_s = models.FloatField(null=True, blank=True)
    approval_timeout_s = models.PositiveIntegerField(null=True, blank=True)
    max_concurrent = models.PositiveIntegerField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)
    updated_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["agent", "action"], name="agents_policy_unique_action")]
        verbose_name_plural = "action policies"

    def __str__(self) -> str:
        return f"{self.agent}.{self.action}"


class WorkflowStatus(models.TextChoices):
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    DEGRADED = "degraded"  # finished; some non-critical step failed
    FAILED = "failed"  # a critical step failed: stopped
    CANCELLED = "cancelled"


WORKFLOW_TERMINAL = frozenset(
    {WorkflowStatus.SUCCEEDED, WorkflowStatus.DEGRADED, WorkflowStatus.FAILED, WorkflowStatus.CANCELLED}
)


class WorkflowRun(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid7, editable=False)
    name = models.CharField(max_length=100)
    status = models.CharField(max_length=16, choices=WorkflowStatus.choices, default=WorkflowStatus.RUNNING)
    steps = models.JSONField()  # [{"agent", "action", "payload", "critical"}], fixed at start
    current_step = models.PositiveIntegerField(default=0)
    failed_steps = models.JSONField(default=list, blank=True)  # indexes of non-critical failures
    forensic = models.BooleanField(default=False)
    requested_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    idempotency_key = models.CharField(max_length=200, blank=True)
    request_hash = models.CharField(max_length=64, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [models.Index(fields=["status", "-created_at"])]
        constraints = [
            models.UniqueConstraint(
                fields=["requested_by", "idempotency_key"],
                condition=~Q(idempotency_key=""),
                name="agents_workflow_idempotency_per_user",
            )
        ]

    def __str__(self) -> str:
        return f"{self.name} {self.id}"

    @property
    def is_terminal(self) -> bool:
        return self.status in WORKFLOW_TERMINAL

    @property
    def can_resume(self) -> bool:
        return self.status in (WorkflowStatus.FAILED, WorkflowStatus.CANCELLED) and self.current_step < len(self.steps)


class ActionRun(models.Model):
    # time-ordered: inserts append to the index, and the drain claims in creation order
    id = models.UUIDField(primary_key=True, default=uuid7, editable=False)
    agent = models.CharField(max_length=64)
    action = models.CharField(max_length=64)
    payload = models.JSONField(default=dict, blank=True)
    status = models.CharField(max_length=20, choices=RunStatus.choices, default=RunStatus.QUEUED)
    forensic = models.BooleanField(default=False)
    requested_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    idempotency_key = models.CharField(max_length=200, blank=True)
    request_hash = models.CharField(max_length=64, blank=True)
    workflow = models.ForeignKey(WorkflowRun, null=True, blank=True, on_delete=models.CASCADE, related_name="runs")
    step_index = models.PositiveIntegerField(null=True, blank=True)
    # policy snapshot, taken when the run was requested
    max_attempts = models.PositiveSmallIntegerField(default=3)
    backoff_base_s = models.FloatField(null=True, blank=True)  # null: the action's coded default
    backoff_cap_s = models.FloatField(null=True, blank=True)
    run_timeout_s = models.FloatField(default=60.0)
    requires_approval = models.BooleanField(default=False)
    approvals_required = models.PositiveSmallIntegerField(default=1)
    root_span_id = models.BigIntegerField(null=True, blank=True)  # the request span; attempts are its children
    # delivery bookkeeping: the outbox (dispatched_at), claims (attempt, lease), retry waits, crashes
    attempt = models.PositiveSmallIntegerField(default=0)  # claims so far
    crashes = models.PositiveSmallIntegerField(default=0)  # attempts lost with their worker (lease expired)
    dispatched_at = models.DateTimeField(null=True, blank=True)  # last time a task message was sent
    next_attempt_at = models.DateTimeField(null=True, blank=True)  # retry wait, kept here, not in the broker
    lease_token = models.CharField(max_length=32, blank=True)
    lease_expires_at = models.DateTimeField(null=True, blank=True)
    cancel_requested = models.BooleanField(default=False)
    # outcome
    result = models.JSONField(null=True, blank=True)  # the last ActionResult
    preview = models.JSONField(default=list, blank=True)  # changes made (or, forensic, that would be made)
    message = models.TextField(blank=True)
    confidence = models.FloatField(null=True, blank=True)
    error = models.TextField(blank=True)
    error_class = models.CharField(max_length=16, blank=True)  # retryable / permanent
    error_type = models.CharField(max_length=200, blank=True)
    attempts_log = models.JSONField(default=list, blank=True)  # the attempts timeline
    trace_id = models.UUIDField(null=True, blank=True)
    latency_ms = models.FloatField(null=True, blank=True)
    cost_usd = models.DecimalField(max_digits=14, decimal_places=6, default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [
            models.Index(fields=["-created_at"], name="agents_run_created"),
            models.Index(fields=["status", "-created_at"], name="agents_run_status_created"),
            models.Index(fields=["agent", "action", "status"], name="agents_run_action_status"),
            models.Index(fields=["workflow", "step_index"], name="agents_run_workflow_step"),
            # the relay and the sweeper scan only live runs
            models.Index(
                fields=["dispatched_at"], name="agents_run_undispatched", condition=Q(status__in=["queued", "retrying"])
            ),
            models.Index(fields=["lease_expires_at"], name="agents_run_leases", condition=Q(status="running")),
            # the drain claims the oldest claimable run (ids are time-ordered)
            models.Index(fields=["id"], name="agents_run_claimable", condition=Q(status__in=["queued", "retrying"])),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["requested_by", "idempotency_key"],
                condition=~Q(idempotency_key=""),
                name="agents_run_idempotency_per_user",
            )
        ]

    def __str__(self) -> str:
        return f"{self.agent}.{self.action} {self.id}"

    @property
    def is_terminal(self) -> bool:
        return self.status in TERMINAL

    @property
    def action_result(self) -> ActionResult | None:
        return ActionResult.model_validate(self.result) if self.result else None

    @property
    def can_cancel(self) -> bool:
        return not self.is_terminal

    @property
    def can_retry(self) -> bool:
        return self.status in (RunStatus.FAILED, RunStatus.DEAD_LETTER, RunStatus.CANCELLED, RunStatus.EXPIRED)

    def summary(self) -> dict[str, Any]:
        """The live-update shape (websocket)."""
        return {
            "id": str(self.id),
            "agent": self.agent,
            "action": self.action,
            "status": self.status,
            "attempt": self.attempt,
            "forensic": self.forensic,
            "error_class": self.error_class,
            "message": self.message[:200],
            "workflow": str(self.workflow_id) if self.workflow_id else None,
        }


class IntegrityBaseline(models.Model):
    """SHA-256 of a configured path, for security.integrity_survey."""

    path = models.CharField(max_length=1000, unique=True)
    sha256 = models.CharField(max_length=64)
    size = models.BigIntegerField()
    recorded_at = models.DateTimeField()

    def __str__(self) -> str:
        return self.path


class SideEffect(models.Model):
    """The ledger of application-level side effects, unique by key (see Executor.apply_effect)."""

    key = models.CharField(max_length=200, unique=True)
    kind = models.CharField(max_length=64)
    detail = models.JSONField(default=dict)
    applied_at = models.DateTimeField()
    replays = models.PositiveIntegerField(default=0)  # later calls with the same key, absorbed

    def __str__(self) -> str:
        return self.key


# --- human checkpoints (issue 6) -----------------------------------------------------------------


class ApprovalStatus(models.TextChoices):
    PENDING = "pending"
    APPROVED = "approved"
    REJECTED = "rejected"
    EXPIRED = "expired"
    CANCELLED = "cancelled"  # the run was cancelled while it waited


class ApprovalRequest(models.Model):
    """The checkpoint of one run at `awaiting_approval` (see agents/approvals.py). URLs, the API,
    notifications and the audit log name it by `public_id`; the integer key stays internal."""

    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    run = models.OneToOneField(ActionRun, on_delete=models.CASCADE, related_name="approval")
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    risk = models.CharField(max_length=16, default="low")
    summary = models.TextField(blank=True)  # what will happen
    forensic_preview = models.JSONField(null=True, blank=True)  # the forensic run's result; null: not yet
    # the preview's outbox: when its task was last sent (null: not sent, the relay sends it)
    preview_dispatched_at = models.DateTimeField(null=True, blank=True)
    approvals_required = models.PositiveSmallIntegerField(default=1, choices=[(1, "1"), (2, "2")])
    status = models.CharField(max_length=16, choices=ApprovalStatus.choices, default=ApprovalStatus.PENDING)
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField()
    decided_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [
            models.Index(fields=["status", "-created_at"], name="agents_approval_status"),
            models.Index(fields=["expires_at"], name="agents_approval_pending_exp", condition=Q(status="pending")),
        ]

    def __str__(self) -> str:
        return f"approval of {self.run_id}"


class ApprovalWebhook(models.Model):
    """The outbox of the approval webhook: one row per message, written in the transaction of
    the event it reports, so a broker outage at commit cannot lose it (agents.approvals_relay
    re-sends rows whose task was never queued or went missing)."""

    request = models.ForeignKey(ApprovalRequest, on_delete=models.CASCADE, related_name="webhooks")
    event = models.CharField(max_length=16)  # requested / decided / expired
    body = models.JSONField()  # Slack-compatible: {"text": ..., "aios": {...}}
    created_at = models.DateTimeField(auto_now_add=True)
    dispatched_at = models.DateTimeField(null=True, blank=True)  # task sent or attempt started; null: not sent
    attempts = models.PositiveSmallIntegerField(default=0)
    sent_at = models.DateTimeField(null=True, blank=True)
    failed_at = models.DateTimeField(null=True, blank=True)  # gave up after the last retry
    last_error = models.TextField(blank=True)

    class Meta:
        indexes = [
            models.Index(
                fields=["dispatched_at"],
                name="agents_webhook_unsent",
                condition=Q(sent_at__isnull=True, failed_at__isnull=True),
            )
        ]

    def __str__(self) -> str:
        return f"{self.event} webhook of {self.request_id}"


class ApprovalDecision(models.Model):
    APPROVE, REJECT = "approve", "reject"

    request = models.ForeignKey(ApprovalRequest, on_delete=models.CASCADE, related_name="decisions")
    approver = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    decision = models.CharField(max_length=8, choices=[(APPROVE, "approve"), (REJECT, "reject")])
    comment = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["request", "approver"], name="agents_approval_one_decision_each")
        ]

    def __str__(self) -> str:
        return f"{self.decision} by {self.approver_id}"


# --- schedules ---------------------------------------------------------------------------------


class Schedule(models.Model):
    """A periodic action or workflow (agents/schedules.py). Beat fires the django-celery-beat
    PeriodicTask it wraps, whose kwargs name only this row's UUID; each firing re-checks that
    the owner may still run the target, and skips (flagged on the page) when not."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(max_length=100, unique=True)
    agent = models.CharField(max_length=64, blank=True)  # an action (agent, action, payload) ...
    action = models.CharField(max_length=64, blank=True)
    payload = models.JSONField(default=dict, blank=True)
    workflow = models.CharField(max_length=100, blank=True)  # ... or a workflow of the manifest
    forensic = models.BooleanField(default=False)
    every_s = models.PositiveIntegerField(null=True, blank=True)  # an interval, or
    crontab = models.CharField(max_length=100, blank=True)  # "minute hour day-of-month month day-of-week" (UTC)
    enabled = models.BooleanField(default=True)
    # runs on the owner's behalf (the last person who saved it); null: the account was deleted
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    periodic_task = models.OneToOneField(
        "django_celery_beat.PeriodicTask", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    last_run_at = models.DateTimeField(null=True, blank=True)
    last_run_ref = models.CharField(max_length=64, blank=True)  # the run or workflow it started
    skipped_at = models.DateTimeField(null=True, blank=True)  # set while firings are being skipped
    skip_reason = models.CharField(max_length=300, blank=True)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=(Q(every_s__isnull=False) & Q(crontab="")) | (Q(every_s__isnull=True) & ~Q(crontab="")),
                name="agents_schedule_one_timing",
            )
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def target(self) -> str:
        return f"workflow:{self.workflow}" if self.workflow else f"{self.agent}.{self.action}"

    @property
    def timing(self) -> str:
        return f"every {self.every_s} s" if self.every_s else f"cron {self.crontab} (UTC)"
