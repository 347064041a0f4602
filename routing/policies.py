"""Routing policies: a weighted split of `model: "auto"` gateway traffic between variants (live A/B tests).

Evaluation starts a live A/B test by writing a policy through `routing.services.routing_policy_set`
(routing never imports evaluation). While a policy is active, every gateway request for `auto` is
assigned a variant by hashing its trace id with the policy's name, so the assignment is deterministic
and can be recomputed from the trace alone. The request is rewritten to the variant (model, router
policy, system prompt, template), kept out of the response cache (a cached answer would hide the
variant, a stored one would leak into the other arm), and its root span, llm spans and routing
decision carry `aios.ab.test`, `aios.ab.policy` and `aios.ab.variant`.

Only gateway traffic is split: in-process callers (the LLM judge, eval runs) carry no API token and are
never rewritten, so a live test cannot change how other tests are judged.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from asgiref.sync import sync_to_async
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from aios_core.versioned import NotLoaded, VersionedValue
from routing.router import Constraints

if TYPE_CHECKING:
    from routing.completion import Caller, CompletionRequest

INPUT = "{input}"
Tier = Literal["simple", "medium", "complex"]


class PolicyVariant(BaseModel):
    """One arm: a model id or `auto` (the router, optionally with a router policy), and/or a prompt."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1, max_length=40, pattern=r"^[A-Za-z0-9][A-Za-z0-9 _.-]*$")
    model: str = Field(default="auto", min_length=1, max_length=200)
    # The router policy (model "auto" only): never below this tier, and ceilings on cost and latency.
    min_tier: Tier | None = None
    max_cost_usd: float | None = Field(default=None, gt=0)
    max_latency_ms: int | None = Field(default=None, gt=0)
    system_prompt: str = Field(default="", max_length=20_000)  # put before the conversation
    template: str = Field(default="", max_length=20_000)  # wraps the last user message: "... {input} ..."

    @field_validator("model")
    @classmethod
    def _trimmed(cls, value: str) -> str:
        return value.strip()

    @field_validator("template")
    @classmethod
    def _has_input(cls, value: str) -> str:
        if value and INPUT not in value:
            raise ValueError("the template must contain {input}, where the user's message goes")
        return value

    @model_validator(mode="after")
    def _router_policy_needs_the_router(self) -> PolicyVariant:
        if self.model != "auto" and self.router_policy:
            raise ValueError("a router policy (min_tier, max_cost_usd, max_latency_ms) needs model 'auto'")
        return self

    @property
    def router_policy(self) -> dict[str, Any]:
        fields = {"min_tier": self.min_tier, "max_cost_usd": self.max_cost_usd, "max_latency_ms": self.max_latency_ms}
        return {k: v for k, v in fields.items() if v is not None}

    def render(self, messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The conversation this variant sends: the template around the last user message's text, the
        system prompt first. The caller's list is not modified."""
        out = [dict(m) for m in messages]
        if self.template:
            last_user = next((m for m in reversed(out) if m.get("role") == "user"), None)
            if last_user is not None:
                last_user["content"] = _apply_template(self.template, last_user.get("content"))
        if self.system_prompt:
            out.insert(0, {"role": "system", "content": self.system_prompt})
        return out

    def constraints(self, base: Constraints) -> Constraints:
        """The caller's constraints, tightened by this variant's router policy."""
        return dataclasses.replace(
            base,
            min_tier=self.min_tier or base.min_tier,
            max_cost_usd=_tighter(base.max_cost_usd, self.max_cost_usd),
            max_latency_ms=_tighter(base.max_latency_ms, self.max_latency_ms),
        )


def _tighter(a: Any, b: Any) -> Any:
    return b if a is None else a if b is None else min(a, b)


def _apply_template(template: str, content: Any) -> Any:
    # str.replace, not str.format: user text full of braces must not be parsed as a format string.
    if isinstance(content, str) or content is None:
        return template.replace(INPUT, content or "")
    if isinstance(content, list):  # multimodal: the template wraps the first text part
        parts = [dict(p) if isinstance(p, dict) else p for p in content]
        for part in parts:
            if isinstance(part, dict) and part.get("type") == "text":
                part["text"] = template.replace(INPUT, str(part.get("text", "")))
                break
        return parts
    return content


class PolicySpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    variants: list[PolicyVariant] = Field(min_length=2, max_length=10)
    weights: list[float]

    @model_validator(mode="after")
    def _consistent(self) -> PolicySpec:
        if len(self.weights) != len(self.variants):
            raise ValueError("give one weight per variant")
        if not all(math.isfinite(w) and w > 0 for w in self.weights):
            raise ValueError("weights must be positive numbers")
        names = [v.name for v in self.variants]
        if len(set(names)) != len(names):
            raise ValueError("variant names must be unique")
        return self


def assign(salt: str, unit: str, weights: Sequence[float]) -> int:
    """The variant index for `unit`: SHA-256 of (salt, unit) read as a uniform number in [0, 1), placed on
    the cumulative weights. Deterministic (the same unit always gets the same variant under one salt) and
    independent across salts, so two tests never split traffic the same way."""
    digest = hashlib.sha256(f"{salt}\x1f{unit}".encode()).digest()
    u = int.from_bytes(digest[:8], "big") / 2**64
    total, cumulative = float(sum(weights)), 0.0
    for index, weight in enumerate(weights):
        cumulative += weight / total
        if u < cumulative:
            return index
    return len(weights) - 1  # rounding left u above the last cumulative sum


@dataclass(frozen=True)
class ActivePolicy:
    name: str
    label: str
    variants: tuple[PolicyVariant, ...]
    weights: tuple[float, ...]


def _load_active() -> ActivePolicy | bool:
    from routing.models import RoutingPolicy

    row = RoutingPolicy.objects.filter(active=True).first()
    if row is None:
        return False  # cached "no policy" (None would mean "not loaded yet")
    spec = row.spec
    return ActivePolicy(row.name, row.label or row.name, tuple(spec.variants), tuple(spec.weights))


active_policy: VersionedValue[ActivePolicy | bool] = VersionedValue("routing:policy_version", _load_active)


async def _current() -> ActivePolicy | bool:
    try:
        return active_policy.get()
    except NotLoaded:
        return await sync_to_async(active_policy.get, thread_sensitive=False)()


async def apply(req: CompletionRequest, caller: Caller, root: Any) -> str | None:
    """Assign and rewrite a gateway request for `auto` while a policy is active; returns the variant name.
    `root` is the request's root span: its trace id is the unit of assignment."""
    if req.model not in ("", "auto") or not caller.api_token:
        return None
    policy = await _current()
    if not isinstance(policy, ActivePolicy):
        return None
    variant = policy.variants[assign(policy.name, root.trace_id.hex, policy.weights)]
    req.messages = variant.render(req.messages)
    req.model = variant.model
    req.constraints = variant.constraints(req.constraints)
    req.cache_control = "no-store"
    attributes = {"aios.ab.test": policy.label, "aios.ab.policy": policy.name, "aios.ab.variant": variant.name}
    req.attributes.update(attributes)
    root.set_attributes(attributes)
    return variant.name
