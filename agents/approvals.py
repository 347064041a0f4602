"""Human checkpoints (issue 6): approval requests, four-eyes decisions, expiry, notifications.

A run whose effective policy requires approval is created at `awaiting_approval`; inside that
transaction `services.approval_checkpoint_open` calls `approval_open` here. The request is
decided by approvers (never the requester), row-locked so concurrent clicks give one outcome;
the last required approval releases the run (queued and sent on commit), any rejection or the
deadline denies it. Every request, decision and expiry is audited and traced.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any
from uuid import UUID

from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from agents.manifest import registry
from agents.models import (
    ActionRun,
    ApprovalDecision,
    ApprovalRequest,
    ApprovalStatus,
    ApprovalWebhook,
    RunStatus,
)
from agents.runtime.tracing import under_run_trace
from aios_core.access import ADMIN, APPROVER, has_role
from aios_core.errors import ConflictError
from aios_core.live import role_group, send_now
from observability import get_observability
from observability.audit import audit_append

log = logging.getLogger(__name__)
PUBLISH_RETRY = {"max_retries": 2, "interval_start": 0.05, "interval_step": 0.2, "interval_max": 0.5}
# The relay re-sends a task that was never queued, or queued this long ago without finishing:
# previews take at most their action's run timeout; a webhook's retries wait at most
# WEBHOOK_BACKOFF_MAX_S between attempts, and each attempt refreshes dispatched_at.
PREVIEW_REDISPATCH_S = 300
WEBHOOK_REDISPATCH_S = 900
WEBHOOK_BACKOFF_MAX_S = 300


def _username(user: Any) -> str:
    return user.get_username() if user is not None else "system"


def waiting_count_for(user: Any) -> int:
    """Pending requests waiting for `user`'s decision (the navigation badge): those they may see
    (admin-only agents for admins only), did not request themselves and have not decided on yet.
    One query once the user's roles are loaded."""
    if not has_role(user, APPROVER):
        return 0
    pending = approvals_for_user(user, status=ApprovalStatus.PENDING)
    return pending.exclude(requested_by=user).exclude(decisions__approver=user).count()


# --- on-commit effects: toasts, webhook, preview ---------------------------------------------------


def _audience(run: ActionRun) -> str:
    """The role group told about a request: approvers, or only admins for admin-only agents."""
    agent = registry.agents.get(run.agent)
    return role_group(ADMIN) if agent is not None and agent.admin_only else role_group(APPROVER)


def _notify_on_commit(req: ApprovalRequest, toast: str) -> None:
    """A toast for the approvers who may see the request, once committed (best effort). The
    badge count differs per person (own requests, admin-only agents), so the message only asks
    each browser to re-read its own count (`recount`)."""
    run = req.run
    message = {
        "toast": toast,
        "href": f"/approvals/{req.public_id}/",
        "recount": ["approvals"],
        "approval": {"id": str(req.public_id), "run": str(run.pk), "status": req.status},
    }
    group = _audience(run)

    def send() -> None:
        try:
            send_now(group, "notify", message)
        except Exception:  # the channel layer is at-most-once; pages re-read the DB
            log.warning("approval notification not sent", exc_info=True)

    transaction.on_commit(send, robust=True)


def _webhook_on_commit(req: ApprovalRequest, event: str, text: str) -> None:
    """Slack-compatible JSON to AIOS_APPROVAL_WEBHOOK_URL: an outbox row written in this
    transaction, posted by a retried Celery task queued on commit. Never blocks or fails the
    caller; a broker outage leaves the row for the relay."""
    if not settings.AIOS_APPROVAL_WEBHOOK_URL:
        return
    link = f"{settings.AIOS_PUBLIC_URL.rstrip('/')}/approvals/{req.public_id}/"
    body = {
        "text": f"{text} <{link}|Open>",
        "aios": {"event": event, "approval": str(req.public_id), "run": str(req.run_id), "status": req.status},
    }
    hook = ApprovalWebhook.objects.create(request=req, event=event, body=body, dispatched_at=timezone.now())
    transaction.on_commit(lambda: _queue_webhooks([hook.pk]), robust=True)


def _queue_webhooks(ids: list[int]) -> None:
    from agents.tasks import approval_webhook

    for pk in ids:
        try:
            approval_webhook.apply_async(args=[pk], retry_policy=PUBLISH_RETRY)
        except Exception:  # broker down: the relay re-sends it from the database
            log.warning("approval webhook %s not queued: left for agents.approvals_relay", pk, exc_info=True)
            ApprovalWebhook.objects.filter(pk=pk, sent_at__isnull=True).update(dispatched_at=None)


def _preview_on_commit(req: ApprovalRequest) -> None:
    transaction.on_commit(lambda: _queue_previews([req.pk]), robust=True)


def _queue_previews(ids: list[int]) -> None:
    from agents.tasks import approval_preview

    for pk in ids:
        try:
            approval_preview.apply_async(args=[pk], retry_policy=PUBLISH_RETRY)
        except Exception:  # broker down: the relay re-sends it from the database
            log.warning("approval preview %s not queued: left for agents.approvals_relay", pk, exc_info=True)
            ApprovalRequest.objects.filter(pk=pk).update(preview_dispatched_at=None)


# --- spans: the human wait -----------------------------------------------------------------------


def _wait_span(req: ApprovalRequest, name: str, attributes: dict[str, Any]) -> None:
    """A kind=approval span in the run's trace from the request's creation to now: its latency is
    the time the run waited for humans, so the dashboard's approval percentiles are that wait."""
    run = req.run
    waited_s = (timezone.now() - req.created_at).total_seconds()
    with under_run_trace(run), get_observability().trace_span(name, kind="approval", agent_name=run.agent) as span:
        span.start_at(req.created_at)
        span.set_attributes(
            {
                "aios.run_id": str(run.pk),
                "aios.approval_id": str(req.public_id),
                "aios.action": f"{run.agent}.{run.action}",
                "aios.waited_s": round(waited_s, 3),
                "aios.approval_status": req.status,
                **attributes,
            }
        )


# --- opening a checkpoint ---------------------------------------------------------------------


def approval_open(*, run: ActionRun, timeout_s: int) -> ApprovalRequest:
    """Inside the transaction that created `run` at awaiting_approval."""
    spec = registry.action(run.agent, run.action)
    risk = spec.risk if spec is not None else "high"
    description = spec.description if spec is not None else ""
    summary = f"{run.agent}.{run.action}: {description}".strip()
    if run.payload:
        summary += f" Payload: {run.payload}"
    # kind "internal": this span lasts milliseconds, and kind=approval latency is the human wait
    with get_observability().trace_span("approval.request", agent_name=run.agent, kind="internal") as span:
        req = ApprovalRequest.objects.create(
            run=run,
            requested_by=run.requested_by,
            risk=risk,
            summary=summary[:4000],
            approvals_required=2 if run.approvals_required >= 2 else 1,
            expires_at=timezone.now() + timedelta(seconds=timeout_s),
            preview_dispatched_at=timezone.now(),
        )
        span.set_attributes(
            {
                "aios.approval_id": str(req.public_id),
                "aios.run_id": str(run.pk),
                "aios.action": f"{run.agent}.{run.action}",
            }
        )
        audit_append(
            action="agents.approval_requested",
            object_type="approval",
            object_id=req.public_id,
            data={
                "run": str(run.pk),
                "action": f"{run.agent}.{run.action}",
                "risk": risk,
                "approvals_required": req.approvals_required,
                "expires_at": req.expires_at,
            },
            actor=run.requested_by,
        )
    _preview_on_commit(req)
    toast = f"{_username(run.requested_by)} asks to run {run.agent}.{run.action} ({risk} risk)"
    _notify_on_commit(req, toast)
    _webhook_on_commit(req, "requested", f"Approval needed: {toast}.")
    return req


def approval_preview_attach(*, request_id: int) -> bool:
    """Run the action forensically (read-only) and store its result on the request."""
    from agents.services import run_forensic_preview

    req = ApprovalRequest.objects.select_related("run").filter(pk=request_id).first()
    if req is None or req.forensic_preview is not None:
        return False
    run = req.run
    try:
        result = run_forensic_preview(agent=run.agent, action=run.action, payload=run.payload)
        preview = result.model_dump(mode="json")
    except Exception as exc:  # a preview that fails is shown as such
        log.warning("forensic preview of %s failed", run.pk, exc_info=True)
        preview = {"success": False, "message": f"preview failed: {exc}"[:500], "metadata": {}}
    ApprovalRequest.objects.filter(pk=req.pk, forensic_preview__isnull=True).update(forensic_preview=preview)
    return True


# --- deciding ---------------------------------------------------------------------------------


def _close(req: ApprovalRequest, status: str, reason: str, actor: Any) -> None:
    """Inside the locked transaction: mark the request closed and deny its run."""
    from agents.services import run_deny

    req.status, req.decided_at = status, timezone.now()
    req.save(update_fields=["status", "decided_at"])
    if req.run.status == RunStatus.AWAITING_APPROVAL:
        run_deny(run=req.run, status=status, reason=reason)


def approval_decide(*, request: ApprovalRequest, user: Any, approve: bool, comment: str = "") -> ApprovalRequest:
    """One approver's decision. Raises PermissionDenied (not an approver, or approving one's own
    request), ValidationError (a rejection without a reason) or ConflictError (already decided,
    expired, or this approver already approved)."""
    comment = (comment or "").strip()
    if not has_role(user, APPROVER):
        raise PermissionDenied("deciding on approvals needs the approver role")
    if not approve and not comment:
        raise ValidationError({"comment": "a rejection needs a reason"})
    late: str | None = None
    with transaction.atomic():
        req = ApprovalRequest.objects.select_for_update().select_related("run").get(pk=request.pk)
        if approve and req.requested_by_id is not None and req.requested_by_id == user.pk:
            raise PermissionDenied("you cannot approve your own request: another approver must")
        if req.status != ApprovalStatus.PENDING:
            raise ConflictError(
                f"this request was already {req.status}", status=req.status, approval=str(req.public_id)
            )
        if req.run.status != RunStatus.AWAITING_APPROVAL:
            req.status, req.decided_at = ApprovalStatus.CANCELLED, timezone.now()
            req.save(update_fields=["status", "decided_at"])
            late = f"the run is {req.run.status}; the request was closed"
        elif req.expires_at <= timezone.now():
            _expire(req)
            late = "this request expired before the decision"
        else:
            if req.decisions.filter(approver=user).exists():
                raise ConflictError(
                    "you already decided on this request", status=req.status, approval=str(req.public_id)
                )
            _record_decision(req, user, approve, comment)
    if late is not None:
        raise ConflictError(late, status=req.status, approval=str(req.public_id))
    request.status, request.decided_at = req.status, req.decided_at
    return req


def _record_decision(req: ApprovalRequest, user: Any, approve: bool, comment: str) -> None:
    from agents.services import run_release_after_approval

    run = req.run
    ApprovalDecision.objects.create(
        request=req, approver=user, decision=ApprovalDecision.APPROVE if approve else ApprovalDecision.REJECT,
        comment=comment,
    )  # fmt: skip
    approvals = req.decisions.filter(decision=ApprovalDecision.APPROVE).count()
    if not approve:
        _close(req, ApprovalStatus.REJECTED, f"rejected by {_username(user)}: {comment}", user)
    elif approvals >= req.approvals_required:
        req.status, req.decided_at = ApprovalStatus.APPROVED, timezone.now()
        req.save(update_fields=["status", "decided_at"])
        run_release_after_approval(run=run)
    waited_s = (timezone.now() - req.created_at).total_seconds()
    audit_append(
        action="agents.approval_decided",
        object_type="approval",
        object_id=req.public_id,
        data={
            "run": str(run.pk),
            "action": f"{run.agent}.{run.action}",
            "decision": "approve" if approve else "reject",
            "comment": comment,
            "approvals": approvals,
            "approvals_required": req.approvals_required,
            "status": req.status,
            "waited_s": round(waited_s, 3),
        },
        actor=user,
    )
    # after every write: a refused or failed decision leaves no wait span behind
    _wait_span(
        req, "approval.decide", {"aios.decision": "approve" if approve else "reject", "aios.approvals": approvals}
    )
    verb = {"approved": "approved", "rejected": "rejected"}.get(req.status, f"approved ({approvals}/2)")
    text = f"{_username(user)} {verb} {run.agent}.{run.action}"
    _notify_on_commit(req, text)
    _webhook_on_commit(req, "decided", f"{text}." + (f" “{comment}”" if comment else ""))


# --- expiry (beat) ----------------------------------------------------------------------------


def _expire(req: ApprovalRequest) -> None:
    """Inside the locked transaction: the deadline passed; the run is denied, never approved."""
    _close(req, ApprovalStatus.EXPIRED, "the approval request expired", None)
    audit_append(
        action="agents.approval_expired",
        object_type="approval",
        object_id=req.public_id,
        data={"run": str(req.run_id), "action": f"{req.run.agent}.{req.run.action}", "expires_at": req.expires_at},
    )
    _wait_span(req, "approval.expire", {})
    _notify_on_commit(req, f"approval of {req.run.agent}.{req.run.action} expired")
    _webhook_on_commit(req, "expired", f"Approval of {req.run.agent}.{req.run.action} expired.")


def approvals_expire(limit: int = 500) -> dict[str, int]:
    """Close overdue requests as expired, and requests whose run went away (cancelled)."""
    now, expired, closed = timezone.now(), 0, 0
    ids = list(
        ApprovalRequest.objects.filter(status=ApprovalStatus.PENDING, expires_at__lte=now)
        .order_by("expires_at")
        .values_list("pk", flat=True)[:limit]
    )
    for pk in ids:
        with transaction.atomic():
            req = (
                ApprovalRequest.objects.select_for_update(skip_locked=True, of=("self",))
                .select_related("run")
                .filter(pk=pk, status=ApprovalStatus.PENDING, expires_at__lte=now)
                .first()
            )
            if req is None:
                continue  # decided meanwhile, or being decided now
            _expire(req)
            expired += 1
    stale = ApprovalRequest.objects.filter(status=ApprovalStatus.PENDING).exclude(
        run__status=RunStatus.AWAITING_APPROVAL
    )
    closed = stale.update(status=ApprovalStatus.CANCELLED, decided_at=now)
    return {"expired": expired, "cancelled": closed}


# --- the relay (beat): what a broker outage left unsent -------------------------------------------


def approvals_relay(limit: int = 200) -> dict[str, int]:
    """Queue again the preview and webhook tasks that were never queued (broker down at commit)
    or went missing. Only queues: the work itself runs in those tasks, so a slow preview never
    holds up this beat task or expiry. Each row is claimed by a conditional UPDATE first, so two
    relays never queue it twice."""
    now = timezone.now()
    previews = _claim(
        ApprovalRequest.objects.filter(status=ApprovalStatus.PENDING, forensic_preview__isnull=True),
        "preview_dispatched_at",
        now - timedelta(seconds=PREVIEW_REDISPATCH_S),
        now,
        limit,
    )
    hooks = _claim(
        ApprovalWebhook.objects.filter(sent_at__isnull=True, failed_at__isnull=True),
        "dispatched_at",
        now - timedelta(seconds=WEBHOOK_REDISPATCH_S),
        now,
        limit,
    )
    _queue_previews(previews)
    _queue_webhooks(hooks)
    return {"previews": len(previews), "webhooks": len(hooks)}


def _claim(qs: Any, field: str, stale_before: Any, now: Any, limit: int) -> list[int]:
    due = Q(**{f"{field}__isnull": True}) | Q(**{f"{field}__lt": stale_before})
    claimed = []
    for pk in qs.filter(due).order_by("pk").values_list("pk", flat=True)[:limit]:
        if qs.filter(due, pk=pk).update(**{field: now}):
            claimed.append(pk)
    return claimed


def approval_webhook_send(*, webhook_id: int, last_try: bool) -> str:
    """One attempt at posting a webhook row: "sent", "retry" (the task retries), "failed" (the
    last try failed: logged as an error and marked), or "done" (already sent or abandoned).
    At least once: a worker killed after the POST and before the mark posts it again."""
    import httpx

    hook = ApprovalWebhook.objects.filter(pk=webhook_id, sent_at__isnull=True, failed_at__isnull=True).first()
    url = settings.AIOS_APPROVAL_WEBHOOK_URL
    if hook is None or not url:
        return "done"
    ApprovalWebhook.objects.filter(pk=hook.pk).update(dispatched_at=timezone.now(), attempts=F("attempts") + 1)
    try:
        httpx.post(url, json=hook.body, timeout=10.0).raise_for_status()
    except httpx.HTTPError as exc:
        error = f"{type(exc).__name__}: {exc}"[:2000]
        if not last_try:
            ApprovalWebhook.objects.filter(pk=hook.pk).update(last_error=error)
            return "retry"
        log.error("approval webhook %s abandoned after %d attempts: %s", hook.pk, hook.attempts + 1, error)
        ApprovalWebhook.objects.filter(pk=hook.pk).update(last_error=error, failed_at=timezone.now())
        return "failed"
    ApprovalWebhook.objects.filter(pk=hook.pk).update(sent_at=timezone.now(), last_error="")
    return "sent"


# --- reads ------------------------------------------------------------------------------------


def approvals_for_user(user: Any, *, status: str | None = None, agent: str | None = None) -> Any:
    """Approval requests `user` may see (approver role; admin-only agents for admins only)."""
    from agents.selectors import hidden_agents_for

    if not has_role(user, APPROVER):
        raise PermissionDenied("this needs the approver role")
    qs = ApprovalRequest.objects.select_related("run", "requested_by").exclude(run__agent__in=hidden_agents_for(user))
    if status:
        qs = qs.filter(status=status)
    if agent:
        qs = qs.filter(run__agent=agent)
    return qs


def get_approval_for_user(user: Any, public_id: UUID) -> ApprovalRequest:
    """The request named `public_id`, if `user` may see it (404 otherwise)."""
    from django.http import Http404

    req = approvals_for_user(user).filter(public_id=public_id).first()
    if req is None:
        raise Http404("no such approval request")
    return req
