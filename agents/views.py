"""Agent pages: catalog, run form, runs list and detail, workflows, schedules (approvals: issue 6)."""

from __future__ import annotations

from uuid import UUID

from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from agents import schedules as scheduling
from agents import selectors, services
from agents.forms import RunActionForm, ScheduleForm, WorkflowStartForm
from agents.manifest import registry
from agents.models import RunStatus
from aios_core.access import APPROVER, OPERATOR, VIEWER, has_role, role_required
from aios_core.api import paginate
from aios_core.errors import ConflictError


@role_required(VIEWER)
def home(request: HttpRequest) -> HttpResponse:
    """The runs list, filtered, newest first, updated live."""
    status, agent = request.GET.get("status") or None, request.GET.get("agent") or None
    qs = selectors.runs_for_user(request.user, status=status, agent=agent)
    rows, nxt = paginate(qs, cursor=request.GET.get("cursor"), limit=50)
    if request.GET.get("partial"):  # the rows alone, for the live page's re-read
        return render(request, "agents/_run_rows.html", {"runs": rows})
    hidden = selectors.hidden_agents_for(request.user)
    return render(
        request,
        "agents/runs.html",
        {
            "runs": rows,
            "next": nxt,
            "statuses": RunStatus.values,
            "status": status,
            "agent": agent,
            "agents": [a for a in sorted(registry.agents) if a not in hidden],
            "live": {"status": status, "agent": agent},
        },
    )


@role_required(VIEWER)
def run_detail(request: HttpRequest, run_id: UUID) -> HttpResponse:
    run = selectors.get_run_for_user(request.user, run_id)
    return render(
        request,
        "agents/run_detail.html",
        {
            "run": run,
            "spans": selectors.run_spans(run),
            "can_operate": has_role(request.user, OPERATOR),
            "live": {"run": str(run.pk), "status": run.status},
        },
    )


@role_required(OPERATOR)
@require_POST
def run_cancel(request: HttpRequest, run_id: UUID) -> HttpResponse:
    run = selectors.get_run_for_user(request.user, run_id)
    try:
        services.run_cancel(run=run, user=request.user)
        messages.success(request, "Cancel requested." if run.status == RunStatus.RUNNING else "Run cancelled.")
    except ConflictError as exc:
        messages.error(request, exc.message)
    return redirect("agents-run-detail", run_id=run.pk)


@role_required(OPERATOR)
@require_POST
def run_retry(request: HttpRequest, run_id: UUID) -> HttpResponse:
    run = selectors.get_run_for_user(request.user, run_id)
    try:
        new = services.run_retry(run=run, user=request.user)
    except (ConflictError, ValidationError) as exc:
        messages.error(request, getattr(exc, "message", None) or "; ".join(exc.messages))  # type: ignore[union-attr]
        return redirect("agents-run-detail", run_id=run.pk)
    messages.success(request, "Retry queued as a new run.")
    return redirect("agents-run-detail", run_id=new.pk)


@role_required(VIEWER)
def catalog(request: HttpRequest) -> HttpResponse:
    return render(
        request,
        "agents/catalog.html",
        {"agents": selectors.catalog_for_user(request.user), "can_operate": has_role(request.user, OPERATOR)},
    )


@role_required(OPERATOR)
def run_new(request: HttpRequest, agent: str, action: str) -> HttpResponse:
    """The "Run action" form, generated from the payload schema."""
    try:
        spec = services.action_spec_for_user(agent=agent, action=action, user=request.user)
    except ValidationError as exc:
        raise Http404("no such action") from exc
    form = RunActionForm(request.POST or None, spec=spec)
    if request.method == "POST" and form.is_valid():
        payload = form.payload()
        if form.is_valid():  # payload() may add JSON errors
            try:
                run, _ = services.run_request(
                    agent=agent,
                    action=action,
                    payload=payload,
                    user=request.user,
                    forensic=form.cleaned_data["forensic"],
                )
                return redirect("agents-run-detail", run_id=run.pk)
            except ValidationError as exc:
                form.apply_service_errors(exc)
    policy = next(a["policy"] for a in _catalog_actions(request, agent) if a["name"] == action)
    return render(request, "agents/run_new.html", {"spec": spec, "form": form, "policy": policy})


def _catalog_actions(request: HttpRequest, agent: str) -> list[dict]:
    return next(a["actions"] for a in selectors.catalog_for_user(request.user) if a["name"] == agent)


@role_required(VIEWER)
def workflows(request: HttpRequest) -> HttpResponse:
    form = WorkflowStartForm(request.POST or None)
    if request.method == "POST":
        if not has_role(request.user, OPERATOR):
            return render(request, "403.html", status=403)
        if form.is_valid():
            wf = services.workflow_start(
                user=request.user, name=form.cleaned_data["workflow"], forensic=form.cleaned_data["forensic"]
            )
            return redirect("agents-workflow-detail", workflow_id=wf.pk)
    rows, nxt = paginate(selectors.workflows_for_user(request.user), cursor=request.GET.get("cursor"), limit=50)
    return render(
        request,
        "agents/workflows.html",
        {
            "workflows": rows,
            "next": nxt,
            "form": form,
            "can_operate": has_role(request.user, OPERATOR),
            "definitions": sorted(registry.workflows.values(), key=lambda w: w.name),
        },
    )


@role_required(VIEWER)
def workflow_detail(request: HttpRequest, workflow_id: UUID) -> HttpResponse:
    wf = selectors.get_workflow_for_user(request.user, workflow_id)
    return render(
        request,
        "agents/workflow_detail.html",
        {
            "wf": wf,
            "steps": selectors.workflow_steps(wf),
            "can_operate": has_role(request.user, OPERATOR),
            "live": {"workflow": str(wf.pk)},
        },
    )


@role_required(OPERATOR)
@require_POST
def workflow_cancel(request: HttpRequest, workflow_id: UUID) -> HttpResponse:
    wf = selectors.get_workflow_for_user(request.user, workflow_id)
    try:
        services.workflow_cancel(workflow=wf, user=request.user)
        messages.success(request, "Workflow cancelled.")
    except ConflictError as exc:
        messages.error(request, exc.message)
    return redirect("agents-workflow-detail", workflow_id=wf.pk)


@role_required(OPERATOR)
@require_POST
def workflow_resume(request: HttpRequest, workflow_id: UUID) -> HttpResponse:
    wf = selectors.get_workflow_for_user(request.user, workflow_id)
    try:
        services.workflow_resume(workflow=wf, user=request.user)
        messages.success(request, f"Resumed from step {wf.current_step + 1}.")
    except ConflictError as exc:
        messages.error(request, exc.message)
    return redirect("agents-workflow-detail", workflow_id=wf.pk)


def _schedule_targets(request: HttpRequest) -> list[str]:
    hidden = selectors.hidden_agents_for(request.user)
    actions = [s.key for s in registry.all_actions() if s.agent not in hidden]
    workflows = [n for n, w in registry.workflows.items() if not any(s.agent in hidden for s in w.steps)]
    return [f"workflow:{n}" for n in sorted(workflows)] + sorted(actions)


@role_required(VIEWER)
def schedules(request: HttpRequest) -> HttpResponse:
    """Periodic actions and workflows (django-celery-beat), managed here."""
    form = ScheduleForm(request.POST or None, targets=_schedule_targets(request))
    if request.method == "POST":
        if not has_role(request.user, OPERATOR):
            raise PermissionDenied("Managing schedules needs the operator role.")
        if form.is_valid():
            try:
                scheduling.schedule_create(user=request.user, spec=form.spec())
                messages.success(request, "Schedule created.")
                return redirect("agents-schedules")
            except ValidationError as exc:
                form.apply_service_errors(exc)
    return render(
        request,
        "agents/schedules.html",
        {
            "schedules": scheduling.schedules_for_user(request.user),
            "form": form,
            "can_operate": has_role(request.user, OPERATOR),
        },
    )


@role_required(OPERATOR)
def schedule_edit(request: HttpRequest, schedule_id: UUID) -> HttpResponse:
    schedule = scheduling.get_schedule_for_user(request.user, schedule_id)
    initial = ScheduleForm.initial_for(schedule)
    form = ScheduleForm(request.POST or None, initial=initial, targets=_schedule_targets(request))
    if request.method == "POST" and form.is_valid():
        try:
            scheduling.schedule_update(schedule=schedule, user=request.user, spec=form.spec())
            messages.success(request, f"Schedule saved; it now runs as {request.user.get_username()}.")
            return redirect("agents-schedules")
        except ValidationError as exc:
            form.apply_service_errors(exc)
    return render(request, "agents/schedule_edit.html", {"schedule": schedule, "form": form})


@role_required(OPERATOR)
@require_POST
def schedule_pause(request: HttpRequest, schedule_id: UUID) -> HttpResponse:
    schedule = scheduling.get_schedule_for_user(request.user, schedule_id)
    scheduling.schedule_set_enabled(schedule=schedule, user=request.user, enabled=False)
    messages.success(request, f"Schedule {schedule.name} paused.")
    return redirect("agents-schedules")


@role_required(OPERATOR)
@require_POST
def schedule_resume(request: HttpRequest, schedule_id: UUID) -> HttpResponse:
    schedule = scheduling.get_schedule_for_user(request.user, schedule_id)
    scheduling.schedule_set_enabled(schedule=schedule, user=request.user, enabled=True)
    messages.success(request, f"Schedule {schedule.name} resumed.")
    return redirect("agents-schedules")


@role_required(OPERATOR)
@require_POST
def schedule_delete(request: HttpRequest, schedule_id: UUID) -> HttpResponse:
    schedule = scheduling.get_schedule_for_user(request.user, schedule_id)
    scheduling.schedule_delete(schedule=schedule, user=request.user)
    messages.success(request, "Schedule deleted.")
    return redirect("agents-schedules")


# --- approvals (issue 6) -----------------------------------------------------------------------


@role_required(APPROVER)
def approvals(request: HttpRequest) -> HttpResponse:
    """The queue (pending, newest first, live) and the history tab with filters."""
    from agents.approvals import approvals_for_user
    from agents.models import ApprovalStatus

    tab = "history" if request.GET.get("tab") == "history" else "pending"
    agent = request.GET.get("agent") or None
    status = request.GET.get("status") or None
    if tab == "pending":
        qs = approvals_for_user(request.user, status=ApprovalStatus.PENDING, agent=agent)
    else:
        qs = approvals_for_user(request.user, status=status, agent=agent).exclude(status=ApprovalStatus.PENDING)
    rows, nxt = paginate(qs.prefetch_related("decisions__approver"), cursor=request.GET.get("cursor"), limit=50)
    context = {
        "tab": tab,
        "rows": rows,
        "next": nxt,
        "agent": agent,
        "status": status,
        "agents": [a for a in sorted(registry.agents) if a not in selectors.hidden_agents_for(request.user)],
        "statuses": [s for s in ApprovalStatus.values if s != ApprovalStatus.PENDING],
    }
    if request.GET.get("partial"):
        return render(request, "agents/approvals_list.html", context)
    return render(request, "agents/approvals.html", context)


@role_required(APPROVER)
def approvals_count(request: HttpRequest) -> JsonResponse:
    """The navigation badge: requests waiting for this user's decision (re-read on notifications)."""
    from agents.approvals import waiting_count_for

    return JsonResponse({"approvals": waiting_count_for(request.user)})


@role_required(APPROVER)
def approval_detail(request: HttpRequest, approval_id: UUID) -> HttpResponse:
    """Payload, forensic preview, context and requester; Approve, or Reject with a reason."""
    from agents.approvals import approval_decide, get_approval_for_user

    req = get_approval_for_user(request.user, approval_id)
    errors: dict[str, list[str]] = {}
    status = 200
    if request.method == "POST":
        decision = request.POST.get("decision")
        comment = request.POST.get("comment", "")
        if decision not in ("approve", "reject"):
            errors["decision"] = ["choose approve or reject"]
            status = 422
        else:
            try:
                approval_decide(request=req, user=request.user, approve=decision == "approve", comment=comment)
                messages.success(request, f"Request {req.status}." if req.status != "pending" else "Approval recorded.")
                return redirect("agents-approval-detail", approval_id=req.public_id)
            except ValidationError as exc:
                errors, status = exc.message_dict, 422
            except PermissionDenied as exc:
                errors, status = {"decision": [str(exc)]}, 403
            except ConflictError as exc:
                messages.error(request, exc.message)
                return redirect("agents-approval-detail", approval_id=req.public_id)
    req.refresh_from_db()
    run = req.run
    preview = req.forensic_preview or None
    is_requester = req.requested_by_id is not None and req.requested_by_id == request.user.pk
    already = req.decisions.filter(approver=request.user).exists()
    return render(
        request,
        "agents/approval_detail.html",
        {
            "req": req,
            "run": run,
            "decisions": req.decisions.select_related("approver").order_by("created_at"),
            "preview": preview,
            "planned": (preview or {}).get("metadata", {}).get("planned_changes", []),
            "workflow": run.workflow,
            "is_requester": is_requester,
            "can_decide": req.status == "pending" and not already,
            "errors": errors,
            "comment": request.POST.get("comment", "") if request.method == "POST" else "",
        },
        status=status,
    )
