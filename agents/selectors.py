"""Reads, with the one permission-checked getter per main object."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import Http404

from agents.manifest import registry
from agents.models import ActionRun, WorkflowRun
from agents.policy import effective_policy, policies_by_action
from aios_core.access import ADMIN, VIEWER, has_role


def hidden_agents_for(user: Any) -> list[str]:
    """Agents a user may not see (admin-only agents, for non-admins)."""
    if has_role(user, ADMIN):
        return []
    return [name for name, spec in registry.agents.items() if spec.admin_only]


def _require_viewer(user: Any) -> None:
    if not has_role(user, VIEWER):
        raise PermissionDenied("this needs the viewer role")


def runs_for_user(
    user: Any,
    *,
    status: str | None = None,
    agent: str | None = None,
    action: str | None = None,
    workflow: UUID | None = None,
) -> QuerySet[ActionRun]:
    _require_viewer(user)
    qs = ActionRun.objects.exclude(agent__in=hidden_agents_for(user)).select_related("requested_by")
    if status:
        qs = qs.filter(status=status)
    if agent:
        qs = qs.filter(agent=agent)
    if action:
        qs = qs.filter(action=action)
    if workflow:
        qs = qs.filter(workflow_id=workflow)
    return qs


def get_run_for_user(user: Any, run_id: UUID) -> ActionRun:
    """The run, if `user` may see it (404 for runs of agents hidden from them)."""
    _require_viewer(user)
    run = ActionRun.objects.select_related("requested_by").filter(pk=run_id).first()
    if run is None or run.agent in hidden_agents_for(user):
        raise Http404("no such run")
    return run


def workflows_for_user(user: Any) -> QuerySet[WorkflowRun]:
    """Workflows `user` may see: none with a step of an agent hidden from them (jsonb containment)."""
    _require_viewer(user)
    qs = WorkflowRun.objects.select_related("requested_by")
    for agent in hidden_agents_for(user):
        qs = qs.exclude(steps__contains=[{"agent": agent}])
    return qs


def get_workflow_for_user(user: Any, workflow_id: UUID) -> WorkflowRun:
    wf = workflows_for_user(user).filter(pk=workflow_id).first()
    if wf is None:
        raise Http404("no such workflow")
    return wf


def workflow_steps(wf: WorkflowRun) -> list[dict[str, Any]]:
    """Each step with its latest run (one query)."""
    latest: dict[int, ActionRun] = {}
    for run in wf.runs.order_by("step_index", "created_at"):
        latest[run.step_index] = run  # later runs (a resume) replace earlier ones
    steps = []
    for i, step in enumerate(wf.steps):
        run = latest.get(i)
        status = run.status if run else ("skipped" if wf.is_terminal and i > wf.current_step else "pending")
        steps.append({**step, "index": i, "status": status, "run": run, "run_id": str(run.pk) if run else None})
    return steps


def catalog_for_user(user: Any) -> list[dict[str, Any]]:
    """Agents, their actions, payload schemas and effective policies (one policy query)."""
    _require_viewer(user)
    hidden = set(hidden_agents_for(user))
    overrides = policies_by_action()
    agents = []
    for name, agent in sorted(registry.agents.items()):
        if name in hidden:
            continue
        actions = []
        for spec in agent.actions.values():
            policy = effective_policy(spec, overrides.get((spec.agent, spec.name)))
            actions.append(
                {
                    "name": spec.name,
                    "key": spec.key,
                    "description": spec.description,
                    "critical": spec.critical,
                    "forensic_safe": spec.forensic_safe,
                    "risk": spec.risk,
                    "policy": policy.model_dump(),
                    "schema": spec.payload_schema(),
                }
            )
        agents.append(
            {"name": name, "description": agent.description, "admin_only": agent.admin_only, "actions": actions}
        )
    return agents


def run_spans(run: ActionRun) -> list[Any]:
    if not run.trace_id:
        return []
    from observability.models import Span

    return list(Span.objects.filter(trace_id=run.trace_id).order_by("started_at")[:200])
