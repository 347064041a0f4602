"""The effective policy of an action: its coded defaults, overridden by an admin's ActionPolicy row.

The override rows are read on every run request and claim, so each process keeps them in memory
(`aios_core.versioned`): `policy_set` bumps the shared version on commit and every process sees
an admin's change within AIOS_CONFIG_RECHECK_S.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from pydantic import BaseModel

from agents.manifest import ActionSpec, RetryPolicy
from agents.models import ActionPolicy
from aios_core.versioned import VersionedValue


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
    "backoff_base_s",
    "backoff_cap_s",
    "run_timeout_s",
    "approval_timeout_s",
    "max_concurrent",
)


def effective_policy(spec: ActionSpec, override: ActionPolicy | bool | None = False) -> EffectivePolicy:
    """`override`: the ActionPolicy row if the caller already has it (None: there is none;
    False: look it up in this process's copy of the overrides)."""
    if override is False:
        override = policies_by_action().get((spec.agent, spec.name))
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


def _load_policies() -> dict[tuple[str, str], ActionPolicy]:
    return {(p.agent, p.action): p for p in ActionPolicy.objects.all()}


_policies: VersionedValue[dict[tuple[str, str], ActionPolicy]] = VersionedValue("agents:policy_version", _load_policies)


def policies_by_action() -> dict[tuple[str, str], ActionPolicy]:
    """Every override row, by (agent, action): this process's copy, at most a recheck period old."""
    return _policies.get()


def policies_changed() -> None:
    """Call on commit of a policy change: every process reloads the overrides."""
    _policies.bump()


def policies_forget_local() -> None:
    _policies.invalidate()


def concurrency_limited() -> list[tuple[str, str]]:
    """Actions with a maximum of concurrent runs (coded or overridden): the drain leaves their
    runs to per-run messages, whose claim counts the running ones under a lock."""
    from agents.manifest import registry

    overrides = policies_by_action()
    if _limited_memo and _limited_memo[0] is overrides:
        return _limited_memo[1]
    limited = []
    for agent in registry.agents.values():
        for spec in agent.actions.values():
            if effective_policy(spec, overrides.get((spec.agent, spec.name))).max_concurrent:
                limited.append((spec.agent, spec.name))
    _limited_memo[:] = [overrides, limited]
    return limited


_limited_memo: list[Any] = []  # [the overrides it was computed from, the result]


def forensic_forced() -> bool:
    return bool(settings.AIOS_FORENSIC_MODE)
