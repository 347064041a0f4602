"""The agent manifest: agents, their actions and workflows, declared in code and validated at startup.

Handlers register with a decorator on their agent:

    security = Agent("security", "Access, encryption, firewall, threats, audit, integrity.")

    @security.action(payload=FirewallIn, requires_approval=True, description="Turn the firewall on.")
    def firewall_enable(ctx: ExecutionContext, payload: FirewallIn) -> ActionResult: ...

Defaults live here; admins override the operational policy per action in the database
(`ActionPolicy`), and `agents.policy.effective_policy` merges the two.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any, Literal

from django.core.exceptions import ImproperlyConfigured
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

RISKS = ("low", "medium", "high")


class ActionResult(BaseModel):
    """What every handler returns."""

    success: bool
    message: str = ""
    payload: dict[str, Any] = Field(default_factory=dict)
    metadata: dict[str, Any] = Field(default_factory=dict)  # "confidence" (0..1) among others
    error: str = ""
    error_type: str = ""
    latency_ms: float = 0.0
    cost_usd: float = 0.0

    @property
    def confidence(self) -> float | None:
        value = self.metadata.get("confidence")
        return float(value) if isinstance(value, int | float) else None


class RetryPolicy(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    max_attempts: int = Field(default=3, ge=1, le=20)
    backoff_base_s: float = Field(default=1.0, gt=0, le=3600)
    backoff_cap_s: float = Field(default=60.0, gt=0, le=86400)
    jitter: bool = True

    @model_validator(mode="after")
    def _cap_above_base(self) -> RetryPolicy:
        if self.backoff_cap_s < self.backoff_base_s:
            raise ValueError("backoff_cap_s must be at least backoff_base_s")
        return self


class EmptyPayload(BaseModel):
    model_config = ConfigDict(extra="forbid")


# A validation gate checks a successful result before the run counts as succeeded; it returns
# None when the result is acceptable, else the reason it is not.
Gate = Callable[[ActionResult, BaseModel], str | None]


class ActionSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True, frozen=True)

    agent: str
    name: str = Field(pattern=r"^[a-z][a-z0-9_]{1,62}$")
    description: str = Field(min_length=3)
    handler: Callable[..., ActionResult]
    payload: type[BaseModel] = EmptyPayload
    critical: bool = False
    requires_approval: bool = False
    approvals_required: Literal[1, 2] = 1
    forensic_safe: bool = False  # read-only: never changes anything, so forensic mode changes nothing
    risk: Literal["low", "medium", "high"] = "low"
    retry: RetryPolicy = RetryPolicy()
    run_timeout_s: float = Field(default=60.0, gt=0, le=3600)
    approval_timeout_s: int = Field(default=3600, ge=60, le=7 * 86400)
    max_concurrent: int | None = Field(default=None, ge=1)
    gate: Gate | None = None
    admin_only: bool = False

    @property
    def key(self) -> str:
        return f"{self.agent}.{self.name}"

    def payload_schema(self) -> dict[str, Any]:
        return self.payload.model_json_schema()


class AgentSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True)

    name: str = Field(pattern=r"^[a-z][a-z0-9_]{1,62}$")
    description: str = Field(min_length=3)
    admin_only: bool = False  # hidden from non-admin roles (the chaos agent)
    actions: dict[str, ActionSpec] = Field(default_factory=dict)


class WorkflowStep(BaseModel):
    model_config = ConfigDict(extra="forbid")

    agent: str
    action: str
    payload: dict[str, Any] = Field(default_factory=dict)
    critical: bool | None = None  # None: the action's own `critical`


class WorkflowSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=r"^[a-z][a-z0-9_]{1,62}$")
    description: str = Field(min_length=3)
    steps: list[WorkflowStep] = Field(min_length=1, max_length=200)


class Registry:
    def __init__(self) -> None:
        self.agents: dict[str, AgentSpec] = {}
        self.workflows: dict[str, WorkflowSpec] = {}

    def action(self, agent: str, action: str) -> ActionSpec | None:
        spec = self.agents.get(agent)
        return spec.actions.get(action) if spec else None

    def all_actions(self) -> list[ActionSpec]:
        return [a for agent in self.agents.values() for a in agent.actions.values()]


registry = Registry()


class Agent:
    """Declares an agent and registers its actions (see the module docstring)."""

    def __init__(self, name: str, description: str, *, admin_only: bool = False) -> None:
        try:
            self.spec = AgentSpec(name=name, description=description, admin_only=admin_only)
        except ValidationError as exc:
            raise ImproperlyConfigured(f"agent {name!r}: {exc}") from exc
        if name in registry.agents:
            raise ImproperlyConfigured(f"agent {name!r} is declared twice")
        registry.agents[name] = self.spec

    def action(self, **options: Any) -> Callable[[Callable[..., ActionResult]], Callable[..., ActionResult]]:
        def register(fn: Callable[..., ActionResult]) -> Callable[..., ActionResult]:
            name = options.pop("name", fn.__name__)
            options.setdefault("description", (fn.__doc__ or "").strip().split("\n")[0])
            if "retry" in options and isinstance(options["retry"], dict):
                options["retry"] = RetryPolicy(**options["retry"])
            try:
                spec = ActionSpec(agent=self.spec.name, name=name, handler=fn, **options)
            except ValidationError as exc:
                raise ImproperlyConfigured(f"action {self.spec.name}.{name}: {exc}") from exc
            if name in self.spec.actions:
                raise ImproperlyConfigured(f"action {self.spec.name}.{name} is declared twice")
            self.spec.actions[name] = spec
            return fn

        return register


def workflow(name: str, description: str, steps: list[dict[str, Any]]) -> None:
    try:
        spec = WorkflowSpec(name=name, description=description, steps=steps)
    except ValidationError as exc:
        raise ImproperlyConfigured(f"workflow {name!r}: {exc}") from exc
    registry.workflows[name] = spec


def validate_registry() -> None:
    """Called from AppConfig.ready: every problem found is named, all at once."""
    problems: list[str] = []
    for spec in registry.all_actions():
        problems += _action_problems(spec)
    for wf in registry.workflows.values():
        for i, step in enumerate(wf.steps):
            action = registry.action(step.agent, step.action)
            if action is None:
                problems.append(f"workflow {wf.name} step {i}: no action {step.agent}.{step.action}")
                continue
            try:
                action.payload.model_validate(step.payload)
            except ValidationError as exc:
                problems.append(f"workflow {wf.name} step {i}: bad payload for {action.key}: {exc}")
    if problems:
        raise ImproperlyConfigured("agent manifest is invalid:\n  - " + "\n  - ".join(problems))


def _action_problems(spec: ActionSpec) -> list[str]:
    problems = []
    if not (isinstance(spec.payload, type) and issubclass(spec.payload, BaseModel)):
        problems.append(f"{spec.key}: payload must be a pydantic model")
    params = list(inspect.signature(spec.handler).parameters)
    if len(params) != 2:
        problems.append(f"{spec.key}: handler must take (ctx, payload), takes {params}")
    if spec.forensic_safe and spec.requires_approval:
        problems.append(f"{spec.key}: a forensic-safe (read-only) action needs no approval")
    if spec.approvals_required == 2 and not spec.requires_approval:
        problems.append(f"{spec.key}: approvals_required=2 without requires_approval")
    try:
        spec.payload.model_validate({})
    except ValidationError:
        pass  # payloads may have required fields
    except Exception as exc:  # noqa: BLE001 - a broken model is a manifest problem
        problems.append(f"{spec.key}: payload model is broken: {exc}")
    return problems


def load_manifest() -> Registry:
    """Import every agent module (each registers itself), then validate."""
    from agents.handlers import load_all

    load_all()
    validate_registry()
    return registry
