"""Agents JSON API: runs, workflows, the catalog and policies (mounted at /api/)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal
from uuid import UUID

from django.core.exceptions import ValidationError
from django.http import HttpRequest
from ninja import Router, Schema, Status
from pydantic import Field

from agents import selectors, services
from agents.models import ActionRun, ApprovalStatus, RunStatus, WorkflowRun
from aios_core.access import ADMIN, APPROVER, OPERATOR, VIEWER
from aios_core.api import Page, paginate, require_role

router = Router(tags=["agents"])


class RunIn(Schema):
    agent: str = Field(min_length=1, max_length=64)
    action: str = Field(min_length=1, max_length=64)
    payload: Any = None  # validated against the action's own schema by the service
    forensic: bool = False
    idempotency_key: str | None = Field(default=None, max_length=200)


class RunOut(Schema):
    id: UUID
    agent: str
    action: str
    status: str
    payload: Any
    forensic: bool
    attempt: int
    max_attempts: int
    crashes: int
    requires_approval: bool
    result: Any
    preview: Any
    message: str
    confidence: float | None
    error: str
    error_class: str
    error_type: str
    attempts: Any
    idempotency_key: str
    requested_by: str | None
    workflow: UUID | None
    step_index: int | None
    trace_id: str | None
    latency_ms: float | None
    cost_usd: str
    next_attempt_at: datetime | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None

    @staticmethod
    def resolve_attempts(obj: ActionRun) -> Any:
        return obj.attempts_log

    @staticmethod
    def resolve_requested_by(obj: ActionRun) -> str | None:
        return obj.requested_by.get_username() if obj.requested_by_id else None

    @staticmethod
    def resolve_workflow(obj: ActionRun) -> UUID | None:
        return obj.workflow_id

    @staticmethod
    def resolve_trace_id(obj: ActionRun) -> str | None:
        return obj.trace_id.hex if obj.trace_id else None

    @staticmethod
    def resolve_cost_usd(obj: ActionRun) -> str:
        return str(obj.cost_usd)


@router.post("/runs", response={200: RunOut, 201: RunOut})
def runs_create(request: HttpRequest, payload: RunIn) -> Status:
    """Request a run. The same user's same `idempotency_key` answers 200 with the first run (409 if
    the request differs)."""
    require_role(request, OPERATOR)
    run, created = services.run_request(
        agent=payload.agent,
        action=payload.action,
        payload=payload.payload,
        user=request.user,
        forensic=payload.forensic,
        idempotency_key=payload.idempotency_key or "",
    )
    return Status(201 if created else 200, run)


@router.get("/runs", response=Page[RunOut])
def runs_list(
    request: HttpRequest,
    status: RunStatus | None = None,
    agent: str | None = None,
    action: str | None = None,
    workflow: UUID | None = None,
    cursor: str | None = None,
    limit: int | None = None,
) -> dict[str, Any]:
    qs = selectors.runs_for_user(request.user, status=status, agent=agent, action=action, workflow=workflow)
    rows, nxt = paginate(qs, cursor=cursor, limit=limit)
    return {"items": rows, "next": nxt}


@router.get("/runs/{run_id}", response=RunOut)
def runs_detail(request: HttpRequest, run_id: UUID) -> ActionRun:
    return selectors.get_run_for_user(request.user, run_id)


@router.post("/runs/{run_id}/cancel", response=RunOut)
def runs_cancel(request: HttpRequest, run_id: UUID) -> ActionRun:
    require_role(request, OPERATOR)
    return services.run_cancel(run=selectors.get_run_for_user(request.user, run_id), user=request.user)


@router.post("/runs/{run_id}/retry", response={201: RunOut})
def runs_retry(request: HttpRequest, run_id: UUID) -> Status:
    require_role(request, OPERATOR)
    new = services.run_retry(run=selectors.get_run_for_user(request.user, run_id), user=request.user)
    return Status(201, new)


# --- workflows ----------------------------------------------------------------------------------


class StepIn(Schema):
    agent: str
    action: str
    payload: dict[str, Any] = {}
    critical: bool | None = None


class WorkflowIn(Schema):
    workflow: str | None = Field(default=None, max_length=100, description="a workflow of the manifest")
    steps: list[StepIn] | None = Field(default=None, max_length=200, description="or ad-hoc steps")
    forensic: bool = False
    idempotency_key: str | None = Field(default=None, max_length=200)


class StepOut(Schema):
    index: int
    agent: str
    action: str
    critical: bool
    status: str
    run_id: str | None


class WorkflowOut(Schema):
    id: UUID
    name: str
    status: str
    current_step: int
    failed_steps: list[int]
    forensic: bool
    created_at: datetime
    finished_at: datetime | None
    steps: list[StepOut]


def _workflow_out(wf: WorkflowRun) -> dict[str, Any]:
    return {
        **{
            f: getattr(wf, f)
            for f in ("id", "name", "status", "current_step", "failed_steps", "forensic", "created_at", "finished_at")
        },
        "steps": selectors.workflow_steps(wf),
    }


@router.post("/workflows", response={200: WorkflowOut, 201: WorkflowOut})
def workflows_create(request: HttpRequest, payload: WorkflowIn) -> Status:
    """Start a workflow. The same user's same `idempotency_key` answers 200 with the first
    workflow (409 if the request differs), as for runs."""
    require_role(request, OPERATOR)
    if not payload.workflow and not payload.steps:
        raise ValidationError({"workflow": "name a workflow or give steps"})
    steps = [s.dict() for s in payload.steps] if payload.steps else None
    wf, created = services.workflow_request(
        user=request.user,
        name=payload.workflow,
        steps=steps,
        forensic=payload.forensic,
        idempotency_key=payload.idempotency_key or "",
    )
    return Status(201 if created else 200, _workflow_out(wf))


@router.get("/workflows", response=Page[WorkflowOut])
def workflows_list(request: HttpRequest, cursor: str | None = None, limit: int | None = None) -> dict[str, Any]:
    rows, nxt = paginate(selectors.workflows_for_user(request.user), cursor=cursor, limit=min(limit or 20, 100))
    return {"items": [_workflow_out(w) for w in rows], "next": nxt}


@router.get("/workflows/{workflow_id}", response=WorkflowOut)
def workflows_detail(request: HttpRequest, workflow_id: UUID) -> dict[str, Any]:
    return _workflow_out(selectors.get_workflow_for_user(request.user, workflow_id))


@router.post("/workflows/{workflow_id}/cancel", response=WorkflowOut)
def workflows_cancel(request: HttpRequest, workflow_id: UUID) -> dict[str, Any]:
    require_role(request, OPERATOR)
    wf = services.workflow_cancel(
        workflow=selectors.get_workflow_for_user(request.user, workflow_id), user=request.user
    )
    return _workflow_out(wf)


@router.post("/workflows/{workflow_id}/resume", response=WorkflowOut)
def workflows_resume(request: HttpRequest, workflow_id: UUID) -> dict[str, Any]:
    require_role(request, OPERATOR)
    wf = services.workflow_resume(
        workflow=selectors.get_workflow_for_user(request.user, workflow_id), user=request.user
    )
    return _workflow_out(wf)


# --- catalog and policies -------------------------------------------------------------------------


@router.get("/agents")
def agents_catalog(request: HttpRequest) -> list[dict[str, Any]]:
    """Agents, actions, payload JSON schemas and effective policies."""
    require_role(request, VIEWER)
    return selectors.catalog_for_user(request.user)


class PolicyIn(Schema):
    enabled: bool | None = None
    requires_approval: bool | None = None
    approvals_required: int | None = Field(default=None, ge=1, le=2)
    max_attempts: int | None = Field(default=None, ge=1, le=20)
    backoff_base_s: float | None = Field(default=None, gt=0, le=3600)
    backoff_cap_s: float | None = Field(default=None, gt=0, le=86400)
    run_timeout_s: float | None = Field(default=None, gt=0, le=3600)
    approval_timeout_s: int | None = Field(default=None, ge=60)
    max_concurrent: int | None = Field(default=None, ge=1)


@router.put("/policies/{agent}/{action}")
def policies_set(request: HttpRequest, agent: str, action: str, payload: PolicyIn) -> dict[str, Any]:
    """Override an action's policy (admins; audited). Fields sent as null return to the default."""
    require_role(request, ADMIN)
    values = payload.dict(exclude_unset=True)
    if values.get("enabled") is None:
        values.pop("enabled", None)
    services.policy_set(agent=agent, action=action, user=request.user, **values)
    spec = services.action_spec_for_user(agent=agent, action=action, user=request.user)
    from agents.policy import effective_policy

    return effective_policy(spec).model_dump()


# --- approvals (issue 6) --------------------------------------------------------------------------


class ApprovalDecisionOut(Schema):
    approver: str
    decision: str
    comment: str
    created_at: datetime

    @staticmethod
    def resolve_approver(obj: Any) -> str:
        return obj.approver.get_username()


class ApprovalOut(Schema):
    id: UUID
    run: UUID
    agent: str
    action: str
    payload: Any
    requested_by: str | None
    risk: str
    summary: str
    forensic_preview: Any
    approvals_required: int
    status: str
    created_at: datetime
    expires_at: datetime
    decided_at: datetime | None
    decisions: list[ApprovalDecisionOut]

    @staticmethod
    def resolve_id(obj: Any) -> UUID:
        return obj.public_id

    @staticmethod
    def resolve_run(obj: Any) -> UUID:
        return obj.run_id

    @staticmethod
    def resolve_agent(obj: Any) -> str:
        return obj.run.agent

    @staticmethod
    def resolve_action(obj: Any) -> str:
        return obj.run.action

    @staticmethod
    def resolve_payload(obj: Any) -> Any:
        return obj.run.payload

    @staticmethod
    def resolve_requested_by(obj: Any) -> str | None:
        return obj.requested_by.get_username() if obj.requested_by_id else None

    @staticmethod
    def resolve_decisions(obj: Any) -> list[Any]:
        return list(obj.decisions.all())


class DecideIn(Schema):
    decision: Literal["approve", "reject"]
    comment: str = Field(default="", max_length=4000)


@router.get("/approvals", response=Page[ApprovalOut])
def approvals_list(
    request: HttpRequest,
    status: ApprovalStatus | None = None,
    agent: str | None = None,
    cursor: str | None = None,
    limit: int | None = None,
) -> dict[str, Any]:
    """Approval requests, newest first (approvers); `status=pending` is the queue."""
    from agents.approvals import approvals_for_user

    require_role(request, APPROVER)
    qs = approvals_for_user(request.user, status=status, agent=agent).prefetch_related("decisions__approver")
    rows, nxt = paginate(qs, cursor=cursor, limit=limit)
    return {"items": rows, "next": nxt}


@router.get("/approvals/{approval_id}", response=ApprovalOut)
def approvals_detail(request: HttpRequest, approval_id: UUID) -> Any:
    from agents.approvals import get_approval_for_user

    require_role(request, APPROVER)
    return get_approval_for_user(request.user, approval_id)


@router.post("/approvals/{approval_id}/decide", response=ApprovalOut)
def approvals_decide(request: HttpRequest, approval_id: UUID, payload: DecideIn) -> Any:
    """Approve or reject (a reason is required to reject: 422). 409 if already decided or expired;
    403 for your own request or without the approver role."""
    from agents.approvals import approval_decide, get_approval_for_user

    require_role(request, APPROVER)
    req = get_approval_for_user(request.user, approval_id)
    approval_decide(request=req, user=request.user, approve=payload.decision == "approve", comment=payload.comment)
    return get_approval_for_user(request.user, approval_id)
