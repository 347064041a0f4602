"""chaos: fault injection for tests and benchmarks (admins only). Actions fail with a configured
probability and error class; `effect` performs a side effect idempotent by the run's key."""

from __future__ import annotations

import os
import random
import signal
import time
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from agents.handlers._util import fail, ok
from agents.manifest import ActionResult, Agent
from agents.runtime.context import ExecutionContext

agent = Agent("chaos", "Fault injection for tests and benchmarks.", admin_only=True)
_rng = random.Random()


class FlakyIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    p_fail: float = Field(default=0.05, ge=0, le=1)
    error_class: Literal["retryable", "permanent"] = "retryable"
    sleep_ms: int = Field(default=0, ge=0, le=600_000)
    fail_first: int = Field(default=0, ge=0, le=20, description="fail the first N attempts, then follow p_fail")


def _maybe_fail(ctx: ExecutionContext, payload: FlakyIn) -> ActionResult | None:
    if payload.sleep_ms:
        time.sleep(payload.sleep_ms / 1000)
    if ctx.attempt <= payload.fail_first or _rng.random() < payload.p_fail:
        kind = "transient_fault" if payload.error_class == "retryable" else "injected_permanent_fault"
        return fail(f"injected {payload.error_class} fault (attempt {ctx.attempt})", kind)
    return None


@agent.action(payload=FlakyIn, forensic_safe=True)
def flaky(ctx: ExecutionContext, payload: FlakyIn) -> ActionResult:
    """Succeed, or fail with the configured probability and error class."""
    return _maybe_fail(ctx, payload) or ok("ok", {"attempt": ctx.attempt})


class EffectIn(FlakyIn):
    after_ms: int = Field(default=0, ge=0, le=600_000, description="sleep after acting, before returning")


@agent.action(payload=EffectIn)
def effect(ctx: ExecutionContext, payload: EffectIn) -> ActionResult:
    """Perform one side effect, idempotent by the run's key, then maybe fail."""
    failure = _maybe_fail(ctx, payload)
    if failure:
        return failure
    change = ctx.executor.apply_effect(ctx.idempotency_key, "chaos.effect", {"attempt": ctx.attempt})
    if payload.after_ms:
        time.sleep(payload.after_ms / 1000)  # the window where a worker dies after acting, before recording
    return ok("effect applied" if change["applied"] else "effect planned", {"change": change})


class GateIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    value: int = 0
    minimum: int = 1


def _at_least_minimum(result: ActionResult, payload: GateIn) -> str | None:
    return None if result.payload.get("value", 0) >= payload.minimum else f"value below {payload.minimum}"


@agent.action(payload=GateIn, forensic_safe=True, gate=_at_least_minimum)
def gated(ctx: ExecutionContext, payload: GateIn) -> ActionResult:
    """Return `value`; the validation gate demands at least `minimum`."""
    return ok(f"value {payload.value}", {"value": payload.value})


class CrashIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    times: int = Field(default=100, ge=0, le=100, description="kill the worker process on the first N attempts")


@agent.action(payload=CrashIn, run_timeout_s=30)
def crash(ctx: ExecutionContext, payload: CrashIn) -> ActionResult:
    """Kill the worker process running it (SIGKILL), on the first N attempts."""
    if ctx.attempt <= payload.times:
        os.kill(os.getpid(), signal.SIGKILL)  # refused by the forensic guard in forensic runs
    return ok("survived")
