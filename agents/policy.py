"""The effective policy of an action: its coded defaults, overridden by an admin's ActionPolicy row."""

from __future__ import annotations

from django.conf import settings
from pydantic import BaseModel

from agents.manifest import ActionSpec, RetryPolicy
from agents.models import ActionPolicy


class EffectivePolicy(BaseModel):
    enabled: bool
    requires_approval: bool
    approvals_required: int
    max_attempts: int
    backoff_base_s: float
    backoff_cap_s: float
    jitter: bool
    run_timeout_s: float
    approval_timeout_s: int
    max_concurrent: int | None
    overridden: list[str] = []  # which fields an admin changed

    @property
    def retry(self) -> RetryPolicy:
        return RetryPolicy(
            max_attempts=self.max_attempts,
            backoff_base_s=self.backoff_base_s,
            backoff_cap_s=self.backoff_cap_s,
            jitter=self.jitter,
        )


OVERRIDABLE = (
    "requires_approval",
    "approvals_required",
    "max_attempts",
    "run_timeout_s",
    "approval_timeout_s",
    "max_concurrent",
)


def effective_policy(spec: ActionSpec, override: ActionPolicy | bool | None = False) -> EffectivePolicy:
    """`override`: the ActionPolicy row if the caller already has it (None: there is none)."""
    if override is False:
        override = ActionPolicy.objects.filter(agent=spec.agent, action=spec.name).first()
    values = {
        "enabled": True,
        "requires_approval": spec.requires_approval,
        "approvals_required": spec.approvals_required,
        "max_attempts": spec.retry.max_attempts,
        "backoff_base_s": spec.retry.backoff_base_s,
        "backoff_cap_s": spec.retry.backoff_cap_s,
        "jitter": spec.retry.jitter,
        "run_timeout_s": spec.run_timeout_s,
        "approval_timeout_s": spec.approval_timeout_s,
        "max_concurrent": spec.max_concurrent,
    }
    overridden = []
    if override is not None:
        if not override.enabled:
            values["enabled"] = False
            overridden.append("enabled")
        for field in OVERRIDABLE:
            value = getattr(override, field)
            if value is not None and value != values[field]:
                values[field] = value
                overridden.append(field)
    return EffectivePolicy(**values, overridden=overridden)


def policies_by_action() -> dict[tuple[str, str], ActionPolicy]:
    return {(p.agent, p.action): p for p in ActionPolicy.objects.all()}


def forensic_forced() -> bool:
    return bool(settings.AIOS_FORENSIC_MODE)
