"""Admin: action policy overrides (saved through the audited service) and read-only runs."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin
from django.http import HttpRequest

from agents.manifest import registry
from agents.models import ActionPolicy, ActionRun, ApprovalDecision, ApprovalRequest, WorkflowRun
from agents.policy import OVERRIDABLE, effective_policy
from agents.services import policy_set


class ActionPolicyForm(forms.ModelForm):
    class Meta:
        model = ActionPolicy
        fields = ["agent", "action", "enabled", *OVERRIDABLE]

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        if registry.action(data.get("agent", ""), data.get("action", "")) is None:
            raise forms.ValidationError("No such action in the manifest.")
        return data


@admin.register(ActionPolicy)
class ActionPolicyAdmin(admin.ModelAdmin):
    """Overrides of the coded defaults. Every save goes through `policy_set`, which audits it."""

    form = ActionPolicyForm
    list_display = (
        "__str__",
        "enabled",
        "requires_approval",
        "approvals_required",
        "max_attempts",
        "run_timeout_s",
        "max_concurrent",
        "updated_by",
        "updated_at",
        "effective",
    )
    list_filter = ("agent", "enabled")

    @admin.display(description="effective policy")
    def effective(self, obj: ActionPolicy) -> str:
        spec = registry.action(obj.agent, obj.action)
        if spec is None:
            return "not in the manifest"
        p = effective_policy(spec, obj)
        approval = f"approval x{p.approvals_required}" if p.requires_approval else "no approval"
        return f"{'on' if p.enabled else 'OFF'}, {approval}, {p.max_attempts} attempts, {p.run_timeout_s:g} s"

    def save_model(self, request: HttpRequest, obj: ActionPolicy, form: Any, change: bool) -> None:
        values = {f: form.cleaned_data.get(f) for f in ("enabled", *OVERRIDABLE)}
        saved = policy_set(agent=obj.agent, action=obj.action, user=request.user, **values)
        obj.pk = saved.pk

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False  # switch fields back to empty instead: that change is audited


@admin.register(ActionRun)
class ActionRunAdmin(admin.ModelAdmin):
    list_display = ("id", "agent", "action", "status", "attempt", "forensic", "requested_by", "created_at")
    list_filter = ("status", "agent", "forensic")
    search_fields = ("id", "agent", "action", "idempotency_key")
    date_hierarchy = "created_at"

    def get_readonly_fields(self, request: HttpRequest, obj: object = None) -> list[str]:
        return [f.name for f in ActionRun._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


@admin.register(WorkflowRun)
class WorkflowRunAdmin(admin.ModelAdmin):
    list_display = ("id", "name", "status", "current_step", "requested_by", "created_at")
    list_filter = ("status", "name")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


class ApprovalDecisionInline(admin.TabularInline):
    model = ApprovalDecision
    extra = 0
    can_delete = False
    readonly_fields = ["approver", "decision", "comment", "created_at"]

    def has_add_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


@admin.register(ApprovalRequest)
class ApprovalRequestAdmin(admin.ModelAdmin):
    """Read-only: decisions are made on /approvals/ (the service enforces four-eyes and audits)."""

    list_display = [
        "public_id",
        "run",
        "requested_by",
        "risk",
        "approvals_required",
        "status",
        "created_at",
        "expires_at",
    ]
    search_fields = ["=public_id"]
    list_filter = ["status", "risk"]
    inlines = [ApprovalDecisionInline]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False
