"""orchestration: lists and starts workflows, reports their status."""

from __future__ import annotations

from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

from agents.handlers._util import has_key, ok
from agents.manifest import ActionResult, Agent, registry
from agents.runtime.context import ExecutionContext

agent = Agent("orchestration", "Starts workflows and reports on them.")


@agent.action(forensic_safe=True, gate=has_key("workflows"))
def list_workflows(ctx: ExecutionContext, payload: BaseModel) -> ActionResult:
    """The workflows defined in the manifest and their steps."""
    rows = [
        {"name": w.name, "description": w.description, "steps": [f"{s.agent}.{s.action}" for s in w.steps]}
        for w in registry.workflows.values()
    ]
    return ok(f"{len(rows)} workflow(s)", {"workflows": rows})


class StartIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(default="boot_sequence", max_length=100)
    forensic: bool = False


@agent.action(payload=StartIn, gate=has_key("started"))
def start_workflow(ctx: ExecutionContext, payload: StartIn) -> ActionResult:
    """Start a manifest workflow (forensic runs only plan it)."""
    from django.contrib.auth import get_user_model

    from agents.services import workflow_start

    if payload.name not in registry.workflows:
        raise ValueError(f"payload.name: no workflow named {payload.name!r}")
    user = get_user_model().objects.filter(pk=ctx.user_id).first() if ctx.user_id else None
    started: dict[str, str] = {}

    def start() -> None:
        started["id"] = str(workflow_start(user=user, name=payload.name, forensic=payload.forensic).pk)

    ctx.executor.apply("workflow_start", payload.name, {"forensic": payload.forensic}, start)
    return ok(f"workflow {payload.name} " + ("started" if started else "would start"), {"started": started or None})


class StatusIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    workflow_id: UUID | None = None
    latest: int = Field(default=10, ge=1, le=100)


@agent.action(payload=StatusIn, forensic_safe=True, gate=has_key("workflows"))
def workflow_status(ctx: ExecutionContext, payload: StatusIn) -> ActionResult:
    """Status and current step of one workflow, or of the latest ones."""
    from agents.models import WorkflowRun

    qs = WorkflowRun.objects.order_by("-created_at")
    if payload.workflow_id:
        qs = qs.filter(pk=payload.workflow_id)
    rows = [
        {
            "id": str(w.pk),
            "name": w.name,
            "status": w.status,
            "step": w.current_step,
            "steps": len(w.steps),
            "failed_steps": w.failed_steps,
        }
        for w in qs[: payload.latest]
    ]
    return ok(f"{len(rows)} workflow(s)", {"workflows": rows})
