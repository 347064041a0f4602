"""Writes: requesting, executing, cancelling and retrying runs; workflows; policies.

Flow 1 of ../shared/DESIGN.md. Services own their transactions; tasks are sent and websocket
events published only on commit (robustly: a broker or channel-layer outage never fails the
caller, the outbox relay re-sends what was not sent).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import signal
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any
from uuid import UUID

from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, connection, transaction
from django.db.models import F
from django.db.models.expressions import RawSQL
from django.utils import timezone
from pydantic import BaseModel
from pydantic import ValidationError as PydanticValidationError

from agents.consumers import RUNS_ADMIN_GROUP, RUNS_GROUP
from agents.live import sender as live_sender
from agents.manifest import ActionResult, ActionSpec, RetryPolicy, WorkflowStep, registry
from agents.models import TERMINAL, ActionPolicy, ActionRun, RunStatus, WorkflowRun, WorkflowStatus
from agents.policy import (
    OVERRIDABLE,
    concurrency_limited,
    effective_policy,
    forensic_forced,
    policies_by_action,
    policies_changed,
    policies_forget_local,
)
from agents.runtime import doorbell
from agents.runtime.backoff import backoff_delay
from agents.runtime.claims import LeaseKeeper, claim_next, claim_run, claim_within_limit, record_if_owner
from agents.runtime.context import ExecutionContext
from agents.runtime.errors import (
    PERMANENT,
    RETRYABLE,
    ActionTimeout,
    GateFailed,
    PermanentError,
    classify_error_type,
    classify_exception,
    error_type_of,
)
from agents.runtime.executor import executor_for
from agents.runtime.guard import forensic_guard
from agents.runtime.relay import due_for_redispatch, expire_leases
from agents.runtime.tracing import under_run_trace
from aios_core.access import ADMIN, has_role
from aios_core.errors import ConflictError
from observability import get_observability
from observability.audit import audit_append

log = logging.getLogger(__name__)
HOST = socket.gethostname()
PUBLISH_RETRY = {"max_retries": 2, "interval_start": 0.05, "interval_step": 0.2, "interval_max": 0.5}


# --- lookups and validation -------------------------------------------------------------------


def action_spec_for_user(*, agent: str, action: str, user: Any) -> ActionSpec:
    """The action, if it exists and `user` may see it (None: the system, e.g. a schedule)."""
    agent_spec = registry.agents.get(agent)
    if agent_spec is None or (agent_spec.admin_only and user is not None and not has_role(user, ADMIN)):
        raise ValidationError({"agent": f"no agent named {agent!r}"})
    spec = agent_spec.actions.get(action)
    if spec is None:
        raise ValidationError({"action": f"agent {agent!r} has no action {action!r}"})
    return spec


def payload_validate(spec: ActionSpec, payload: Any) -> BaseModel:
    """The payload as its pydantic model, or a 422-shaped ValidationError naming each field."""
    try:
        return spec.payload.model_validate(payload if payload is not None else {})
    except PydanticValidationError as exc:
        errors: dict[str, list[str]] = {}
        for err in exc.errors():
            field = ".".join(["payload", *(str(p) for p in err["loc"])])
            errors.setdefault(field, []).append(err["msg"])
        raise ValidationError(errors) from exc


def _request_hash(agent: str, action: str, payload: Any, forensic: bool) -> str:
    body = json.dumps([agent, action, payload, forensic], sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(body.encode()).hexdigest()


# --- on-commit effects: dispatch and live events --------------------------------------------------


Wake = tuple[UUID, float]  # a run to send: its id and its run timeout (the message's time limits)


def _time_limits(run_timeout_s: float) -> dict[str, float]:
    """Per-message Celery limits from the run's own timeout, under the global ceilings: the
    handler's alarm fires at the timeout; the soft limit (retryable) a little later, the hard
    limit (the pool process is killed, the lease sweeper takes over) later still."""
    soft = min(run_timeout_s + settings.AIOS_RUN_TIME_LIMIT_MARGIN_S, settings.CELERY_TASK_SOFT_TIME_LIMIT)
    hard = min(soft + settings.AIOS_RUN_TIME_LIMIT_MARGIN_S, settings.CELERY_TASK_TIME_LIMIT)
    return {"soft_time_limit": soft, "time_limit": max(hard, soft)}


def _publish(runs: list[Wake], countdown: float | None = None) -> None:
    """Send one message per run. A failure leaves `dispatched_at` cleared for the relay."""
    from agents.tasks import execute_run

    failed = []
    for run_id, timeout_s in runs:
        try:
            execute_run.apply_async(
                args=[str(run_id)], countdown=countdown, retry_policy=PUBLISH_RETRY, **_time_limits(timeout_s)
            )
        except Exception:  # noqa: BLE001 - broker down: the relay re-sends from the database
            failed.append(run_id)
    _left_for_relay(failed)


def _left_for_relay(run_ids: list[UUID]) -> None:
    if not run_ids:
        return
    log.warning("broker unavailable: %d run(s) left for the outbox relay", len(run_ids))
    try:
        ActionRun.objects.filter(pk__in=run_ids).update(dispatched_at=None)
    except Exception:
        log.exception("could not mark runs undispatched")


def _drains(run: ActionRun) -> bool:
    """Whether a drain may take this run (else it gets a message of its own)."""
    return (
        settings.AIOS_RUN_COALESCE_WAKEUPS
        and run.run_timeout_s <= settings.AIOS_RUN_DRAIN_MAX_TIMEOUT_S
        and f"{run.agent}.{run.action}" not in _limited_keys()
    )


def _limited_keys() -> list[str]:
    return [f"{agent}.{action}" for agent, action in concurrency_limited()]


def _wake(runs: list[ActionRun]) -> None:
    """Wake a worker for new runs: the doorbell for those a drain may take, a message each for
    the rest."""
    rung = [r.pk for r in runs if _drains(r)]
    if rung:
        try:
            doorbell.ring()
        except Exception:  # noqa: BLE001 - Redis or the broker down: the relay re-sends
            _left_for_relay(rung)
    _publish([(r.pk, r.run_timeout_s) for r in runs if r.pk not in rung])


def _wake_on_commit(runs: list[ActionRun]) -> None:
    if runs:
        transaction.on_commit(lambda: _wake(runs), robust=True)


def _live_on_commit(run: ActionRun) -> None:
    if not settings.AIOS_RUN_LIVE_EVENTS:
        return
    agent = registry.agents.get(run.agent)
    group = RUNS_ADMIN_GROUP if agent is not None and agent.admin_only else RUNS_GROUP
    payload = run.summary()
    transaction.on_commit(lambda: live_sender.send(group, payload), robust=True)


# --- requesting a run -------------------------------------------------------------------------


def run_request(
    *,
    agent: str,
    action: str,
    payload: Any,
    user: Any,
    forensic: bool = False,
    idempotency_key: str = "",
    workflow: WorkflowRun | None = None,
    step_index: int | None = None,
) -> tuple[ActionRun, bool]:
    """Validate and create a run; returns (run, created). The same user's same idempotency key
    returns the first run (created=False), or raises ConflictError if the request differs."""
    spec = action_spec_for_user(agent=agent, action=action, user=user)
    policy = effective_policy(spec)
    if not policy.enabled:
        raise ValidationError({"action": f"{spec.key} is switched off by its policy"})
    data = payload_validate(spec, payload).model_dump(mode="json")
    forensic = bool(forensic or forensic_forced())
    key = (idempotency_key or "").strip()
    request_hash = _request_hash(agent, action, data, forensic)
    owner = user if getattr(user, "is_authenticated", False) else None
    if key:
        existing = _idempotent_match(owner, key, request_hash)
        if existing is not None:
            return existing, False
    needs_approval = policy.requires_approval and not forensic  # a forensic run changes nothing
    with get_observability().trace_span("agent.run.request", agent_name=agent, kind="internal") as span:
        span.set_attributes({"aios.action": spec.key, "aios.forensic": forensic})
        run = ActionRun(
            agent=agent,
            action=action,
            payload=data,
            forensic=forensic,
            requested_by=owner,
            idempotency_key=key,
            request_hash=request_hash,
            workflow=workflow,
            step_index=step_index,
            status=RunStatus.AWAITING_APPROVAL if needs_approval else RunStatus.QUEUED,
            max_attempts=policy.max_attempts,
            backoff_base_s=policy.backoff_base_s,
            backoff_cap_s=policy.backoff_cap_s,
            run_timeout_s=policy.run_timeout_s,
            requires_approval=policy.requires_approval,
            approvals_required=policy.approvals_required,
            trace_id=span.trace_id,
            root_span_id=span.span_id,
            dispatched_at=None if needs_approval else timezone.now(),
        )
        try:
            if needs_approval or connection.in_atomic_block:
                with transaction.atomic():
                    run.save(force_insert=True)
                    if needs_approval:
                        approval_checkpoint_open(run=run, policy_timeout_s=policy.approval_timeout_s)
                    else:
                        _wake_on_commit([run])
                    _live_on_commit(run)
            else:
                # One INSERT, committed on its own (synchronously: an accepted run is never
                # lost); the on-commit effects then run at once. Saves BEGIN and COMMIT.
                run.save(force_insert=True)
                _wake_on_commit([run])
                _live_on_commit(run)
        except IntegrityError:
            if not key:
                raise
            existing = _idempotent_match(owner, key, request_hash)  # a concurrent twin won the insert
            if existing is None:
                raise
            return existing, False
        span.set_attribute("aios.run_id", str(run.pk))
    return run, True


def _idempotent_match(owner: Any, key: str, request_hash: str) -> ActionRun | None:
    return _idempotent_twin(ActionRun, owner, key, request_hash, what="request", detail="run")


def _idempotent_twin(model: Any, owner: Any, key: str, request_hash: str, *, what: str, detail: str) -> Any:
    """The owner's earlier row under this idempotency key (a run or a workflow), or None; a 409
    if that row was asked for with a different body."""
    existing = model.objects.filter(requested_by=owner, idempotency_key=key).first()
    if existing is not None and existing.request_hash != request_hash:
        raise ConflictError(
            f"this idempotency key was used for a different {what}",
            **{detail: str(existing.pk)},
            field="idempotency_key",
        )
    return existing


# --- the human checkpoint: hooks for the approvals issue ---------------------------------------


def approval_checkpoint_open(*, run: ActionRun, policy_timeout_s: int) -> None:
    """Called inside the transaction that creates a run whose policy requires approval.

    The run waits at `awaiting_approval` and never executes until `run_release_after_approval`.
    The approvals issue creates its ApprovalRequest here (with `run_forensic_preview`)."""
    from agents.approvals import approval_open

    approval_open(run=run, timeout_s=policy_timeout_s)


def run_release_after_approval(*, run: ActionRun) -> ActionRun:
    """The approvals issue calls this when the last required approval is given: the run is queued
    and sent on commit. Conditional, so a double release never runs it twice."""
    with transaction.atomic():
        now = timezone.now()
        changed = ActionRun.objects.filter(pk=run.pk, status=RunStatus.AWAITING_APPROVAL).update(
            status=RunStatus.QUEUED, dispatched_at=now
        )
        if not changed:
            raise ConflictError(f"run {run.pk} is not awaiting approval")
        run.refresh_from_db()
        _wake_on_commit([run])
        _live_on_commit(run)
    return run


def run_deny(*, run: ActionRun, status: str = RunStatus.REJECTED, reason: str = "") -> ActionRun:
    """Rejection or expiry of the checkpoint: closes the run (and fails or degrades its workflow)."""
    if status not in (RunStatus.REJECTED, RunStatus.EXPIRED):
        raise ValueError("status must be rejected or expired")
    with transaction.atomic():
        changed = ActionRun.objects.filter(pk=run.pk, status=RunStatus.AWAITING_APPROVAL).update(
            status=status,
            message=reason[:2000],
            error_class=PERMANENT,
            error_type=f"approval_{status}",
            finished_at=timezone.now(),
        )
        if not changed:
            raise ConflictError(f"run {run.pk} is not awaiting approval")
        run.refresh_from_db()
        _after_terminal(run)
    return run


def run_forensic_preview(*, agent: str, action: str, payload: Any, user: Any = None) -> ActionResult:
    """Run the action now, in this process, in forensic mode; nothing changes. The planned
    changes are in `metadata["planned_changes"]`. For the approvals issue's previews."""
    spec = action_spec_for_user(agent=agent, action=action, user=user)
    data = payload_validate(spec, payload)
    executor = executor_for(forensic=True)
    ctx = ExecutionContext(
        agent=agent, action=action, executor=executor, forensic=True, deadline=time.monotonic() + spec.run_timeout_s
    )
    started = time.perf_counter()
    with get_observability().trace_span("agent.preview", agent_name=agent, kind="action") as span:
        result, exc = _invoke(spec, data, ctx, spec.run_timeout_s)
        if exc is not None:
            span.record_error(exc)
            result = ActionResult(
                success=False, message=str(exc)[:500], error=str(exc)[:2000], error_type=error_type_of(exc)
            )
    assert result is not None
    result.metadata["planned_changes"] = executor.changes
    result.latency_ms = result.latency_ms or (time.perf_counter() - started) * 1000
    return result


# --- executing a run (the worker) -------------------------------------------------------------


class _Outcome(BaseModel):
    status: str
    result: dict[str, Any] | None = None
    message: str = ""
    error: str = ""
    error_class: str = ""
    error_type: str = ""
    delay_s: float | None = None


@contextmanager
def _alarm(seconds: float) -> Iterator[None]:
    """The run timeout, as SIGALRM in a worker's main thread (elsewhere, ctx.check_deadline)."""
    if threading.current_thread() is not threading.main_thread() or seconds <= 0:
        yield
        return

    def _timeout(signum: int, frame: Any) -> None:
        raise ActionTimeout(f"ran past its run timeout of {seconds:g} s")

    previous = signal.signal(signal.SIGALRM, _timeout)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _invoke(
    spec: ActionSpec, payload: BaseModel | dict[str, Any], ctx: ExecutionContext, timeout_s: float
) -> tuple[ActionResult | None, Exception | None]:
    """Call the handler under the forensic guard and the timeout; then the validation gate."""
    result: ActionResult | None = None
    try:
        if not isinstance(payload, BaseModel):
            payload = spec.payload.model_validate(payload)
        started = time.perf_counter()
        with forensic_guard(ctx.forensic), _alarm(timeout_s):
            result = spec.handler(ctx, payload)
        if not isinstance(result, ActionResult):
            raise PermanentError(f"{spec.key} returned {type(result).__name__}, not an ActionResult")
        result.latency_ms = result.latency_ms or (time.perf_counter() - started) * 1000
        if result.success and spec.gate is not None:
            reason = spec.gate(result, payload)
            if reason:
                raise GateFailed(f"validation gate: {reason}", error_type="validation_gate")
        return result, None
    except Exception as exc:  # noqa: BLE001 - every failure is classified and recorded
        return result, exc


def _decide(run: ActionRun, spec: ActionSpec, result: ActionResult | None, exc: Exception | None) -> _Outcome:
    dumped = result.model_dump(mode="json") if result is not None else None
    if exc is None and result is not None and result.success:
        return _Outcome(status=RunStatus.SUCCEEDED, result=dumped, message=result.message)
    if exc is not None:
        error_class, error_type, error = classify_exception(exc), error_type_of(exc), str(exc)
    else:
        assert result is not None
        error_type = result.error_type or "action_failed"
        error_class, error = classify_error_type(error_type), result.error or result.message
    message = (result.message if result is not None and result.message else error)[:2000]
    budget_left = (run.attempt - run.crashes) < run.max_attempts
    if error_class == RETRYABLE and budget_left and not run.cancel_requested:
        delay = backoff_delay(_retry_policy(run, spec), run.attempt - run.crashes)
        return _Outcome(
            status=RunStatus.RETRYING,
            result=dumped,
            message=message,
            error=error[:4000],
            error_class=error_class,
            error_type=error_type[:200],
            delay_s=delay,
        )
    return _Outcome(
        status=RunStatus.FAILED,
        result=dumped,
        message=message,
        error=error[:4000],
        error_class=error_class,
        error_type=error_type[:200],
    )


def _retry_policy(run: ActionRun, spec: ActionSpec) -> RetryPolicy:
    """The backoff snapshotted on the run when it was requested (coded default + admin override);
    rows from before the snapshot existed fall back to the action's coded policy."""
    base = run.backoff_base_s or spec.retry.backoff_base_s
    cap = max(run.backoff_cap_s or spec.retry.backoff_cap_s, base)
    return RetryPolicy(max_attempts=run.max_attempts, backoff_base_s=base, backoff_cap_s=cap, jitter=spec.retry.jitter)


def run_execute(*, run_id: UUID) -> str:
    """Claim and run one attempt of `run_id`; record the outcome. Idempotent: a redelivered
    message finds the run claimed or finished and does nothing. Returns what happened."""
    claimed = _claim(run_id)
    if isinstance(claimed, str):
        return claimed
    return _execute_claimed(*claimed)


DRAIN_POLL_S = 0.005  # how often a lingering drain looks for new runs


def runs_drain() -> int:
    """Answer the doorbell: claim due runs one by one, oldest first, and execute them, until
    none is left or AIOS_RUN_DRAIN_S has passed. Returns how many attempts it ran.

    The doorbell key stays set while the drain works, so the runs committed meanwhile ring
    into it and cost no message: the drain's next claim finds them. With nothing left, it
    lingers AIOS_RUN_DRAIN_LINGER_S (a steady stream of runs keeps one drain going instead of
    a message per run), then deletes the key and claims once more: a run whose ring the key
    absorbed was committed before that delete, so that last claim sees it; a run committed
    after it rings a new message."""
    deadline = time.monotonic() + settings.AIOS_RUN_DRAIN_S
    done, idle_since = 0, None
    while time.monotonic() < deadline:
        claimed = _claim_for_drain()
        if claimed is None:
            now = time.monotonic()
            idle_since = idle_since or now
            if now - idle_since < settings.AIOS_RUN_DRAIN_LINGER_S:
                time.sleep(DRAIN_POLL_S)
                continue
            doorbell.answer()
            claimed = _claim_for_drain()
            if claimed is None:
                return done
        idle_since = None
        if done == 0:
            _send_drain_quietly()  # there is work: an idle worker process joins in
        _execute_claimed(*claimed)
        done += 1
    doorbell.answer()  # past the budget: a fresh message carries on (a drain's limits stay bounded)
    _ring_quietly()
    return done


def _claim_for_drain() -> tuple[ActionRun, str] | None:
    return claim_next(skip_actions=_limited_keys(), max_timeout_s=settings.AIOS_RUN_DRAIN_MAX_TIMEOUT_S)


def _ring_quietly() -> None:
    try:
        doorbell.ring()
    except Exception:  # noqa: BLE001 - the broker is away: the relay re-sends what is left
        log.warning("could not ring the doorbell; the outbox relay will send what is left")


def _send_drain_quietly() -> None:
    try:
        doorbell.send_drain()
    except Exception:  # noqa: BLE001 - the broker is away: this drain carries on alone
        log.warning("could not send a second drain")


def _execute_claimed(run: ActionRun, token: str) -> str:
    spec = registry.action(run.agent, run.action)
    forensic = run.forensic or forensic_forced()
    executor = executor_for(forensic=forensic)
    ctx = ExecutionContext(
        agent=run.agent,
        action=run.action,
        executor=executor,
        forensic=forensic,
        run_id=run.pk,
        attempt=run.attempt,
        user_id=run.requested_by_id,
        deadline=time.monotonic() + run.run_timeout_s,
    )
    started_at = timezone.now()
    with (
        under_run_trace(run),
        get_observability().trace_span("agent.action", agent_name=run.agent, kind="action") as span,
    ):
        ctx.span = span
        span.set_attributes(
            {
                "aios.action": f"{run.agent}.{run.action}",
                "aios.run_id": str(run.pk),
                "aios.attempt": run.attempt,
                "aios.forensic": forensic,
            }
        )
        if spec is None:
            result, exc = None, PermanentError(f"no action {run.agent}.{run.action} in the manifest")
            spec_for_retry = None
        else:
            with LeaseKeeper(run.pk, token):
                result, exc = _invoke(spec, run.payload, ctx, run.run_timeout_s)
            spec_for_retry = spec
        outcome = (
            _decide(run, spec_for_retry, result, exc)
            if spec_for_retry
            else _Outcome(status=RunStatus.FAILED, error=str(exc), error_class=PERMANENT, error_type="unknown_action")
        )
        span.set_attributes({"aios.status": outcome.status, "aios.error_class": outcome.error_class})
        if outcome.status != RunStatus.SUCCEEDED:
            span.set_error(outcome.error_type or "failed", outcome.error or outcome.message)
        entry = {
            "attempt": run.attempt,
            "started_at": started_at.isoformat(),
            "ended_at": timezone.now().isoformat(),
            "latency_ms": round(span.elapsed_ms, 3),
            "outcome": outcome.status,
            "error_class": outcome.error_class,
            "error_type": outcome.error_type,
            "error": outcome.error[:500],
            "span_id": f"{span.span_id & (2**64 - 1):016x}",
            "worker": f"{HOST}:{os.getpid()}",
            "forensic": forensic,
            "delay_s": outcome.delay_s,
        }
    _record(run, token, outcome, entry, executor.changes, result)
    return outcome.status


def _claim(run_id: UUID) -> tuple[ActionRun, str] | str:
    """Claim by id. An action with a maximum of concurrent runs (its current effective policy)
    is claimed under its per-action lock; when full, the run waits and tries again (a finishing
    run wakes the next one at once, see _wake_next_waiting)."""
    limited = _limited_keys()
    claimed = claim_run(run_id, unless_action_in=limited)
    if claimed is not None:
        return claimed
    if not limited:
        return "not_claimed"
    row = ActionRun.objects.filter(pk=run_id).values_list("agent", "action", "run_timeout_s").first()
    limit = _max_concurrent(row[0], row[1]) if row else None
    if not limit:
        return "not_claimed"
    within = claim_within_limit(run_id, limit)
    if within is None:
        return "not_claimed"
    if within == "full":
        _postpone(run_id, row[2])
        return "postponed"
    return within


def _max_concurrent(agent: str, action: str) -> int | None:
    spec = registry.action(agent, action)
    if spec is None:
        return None
    return effective_policy(spec, policies_by_action().get((agent, action))).max_concurrent


def _postpone(run_id: UUID, run_timeout_s: float) -> None:
    """No slot free: not an attempt. The run waits AIOS_RUN_CONCURRENCY_WAIT_S at most (a
    finishing run of its action wakes it sooner); its message carries that countdown."""
    wait = settings.AIOS_RUN_CONCURRENCY_WAIT_S
    now = timezone.now()
    changed = ActionRun.objects.filter(pk=run_id, status=RunStatus.QUEUED, next_attempt_at__isnull=True).update(
        next_attempt_at=now + timedelta(seconds=wait), dispatched_at=now
    )
    if not changed:  # a retrying run keeps its backoff; claim again when it is due
        ActionRun.objects.filter(pk=run_id, status__in=[RunStatus.QUEUED, RunStatus.RETRYING]).update(dispatched_at=now)
    _publish([(run_id, run_timeout_s)], countdown=wait)


def _wake_next_waiting(agent: str, action: str) -> None:
    """A run of a concurrency-limited action finished: the oldest run waiting for a slot may
    start now rather than at the end of its wait."""
    table = ActionRun._meta.db_table
    with connection.cursor() as cur:
        cur.execute(
            f"UPDATE {table} SET next_attempt_at = NULL, dispatched_at = now() WHERE id = ("
            f"SELECT id FROM {table} WHERE agent = %s AND action = %s AND status = %s "
            "AND next_attempt_at IS NOT NULL ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED) "
            "RETURNING id, run_timeout_s",
            [agent, action, RunStatus.QUEUED],
        )
        row = cur.fetchone()
    if row is not None:
        _publish([(row[0], row[1])])


def _record(
    run: ActionRun,
    token: str,
    outcome: _Outcome,
    entry: dict[str, Any],
    changes: list[dict[str, Any]],
    result: ActionResult | None,
) -> None:
    now = timezone.now()
    fields: dict[str, Any] = {
        "status": outcome.status,
        "result": outcome.result,
        "message": outcome.message,
        "error": outcome.error,
        "error_class": outcome.error_class,
        "error_type": outcome.error_type,
        "preview": changes,
        "attempts_log": RawSQL("attempts_log || %s::jsonb", [json.dumps([entry], default=str)]),
        "lease_token": "",
        "lease_expires_at": None,
        "latency_ms": entry["latency_ms"],
    }
    if result is not None:
        fields["confidence"] = result.confidence
        fields["cost_usd"] = F("cost_usd") + round(result.cost_usd, 6)
    if outcome.status == RunStatus.RETRYING:
        delay = outcome.delay_s or 0.0
        fields["next_attempt_at"] = now + timedelta(seconds=delay)
        # Short waits ride on a broker countdown (far below the visibility timeout); long ones
        # wait in the database for the relay.
        fields["dispatched_at"] = now if delay <= settings.AIOS_RUN_MAX_ETA_S else None
    else:
        fields["finished_at"] = now
    if outcome.status == RunStatus.RETRYING or run.workflow_id:
        with transaction.atomic():
            _async_commit()
            if outcome.status == RunStatus.RETRYING and _cancel_requested(run.pk):
                fields.update(status=RunStatus.CANCELLED, finished_at=now, next_attempt_at=None)
            if not _write_outcome(run, token, fields):
                return
            if run.status == RunStatus.RETRYING and fields.get("dispatched_at"):
                countdown = outcome.delay_s
                transaction.on_commit(lambda: _publish([(run.pk, run.run_timeout_s)], countdown), robust=True)
            _after_outcome(run)
    else:
        # A final outcome outside a workflow: one conditional UPDATE, its own (asynchronous) commit.
        if not _write_outcome(run, token, fields, async_commit=True):
            return
        _after_outcome(run)
    if f"{run.agent}.{run.action}" in _limited_keys():
        _wake_next_waiting(run.agent, run.action)


def _write_outcome(run: ActionRun, token: str, fields: dict[str, Any], *, async_commit: bool = False) -> bool:
    if not record_if_owner(run.pk, token, async_commit=async_commit, **fields):
        log.warning("run %s: lease lost before recording attempt %s; outcome dropped", run.pk, run.attempt)
        return False
    # Keep the in-memory row in step with what was written (no re-read on the hot path).
    for name in ("status", "message", "error", "error_class", "error_type", "finished_at", "next_attempt_at"):
        if name in fields:
            setattr(run, name, fields[name])
    return True


def _after_outcome(run: ActionRun) -> None:
    if run.is_terminal:
        _after_terminal(run)
    else:
        _live_on_commit(run)


def _async_commit() -> None:
    """This transaction commits without waiting for the WAL flush. Safe here: if a database
    crash loses it, the run is still `running` under an expiring lease and is executed again,
    which the runtime must absorb anyway (side effects are idempotent by the run's key). Run
    requests are never committed this way."""
    with connection.cursor() as cur:
        cur.execute("SELECT set_config('synchronous_commit', 'off', true)")


def _cancel_requested(run_id: UUID) -> bool:
    return ActionRun.objects.filter(pk=run_id, cancel_requested=True).exists()


def _after_terminal(run: ActionRun) -> None:
    """Inside the transaction that made `run` terminal: advance its workflow, tell the pages."""
    _live_on_commit(run)
    if run.workflow_id:
        _workflow_step_finished(run)


# --- cancel / retry ---------------------------------------------------------------------------


def run_cancel(*, run: ActionRun, user: Any) -> ActionRun:
    with transaction.atomic():
        locked = ActionRun.objects.select_for_update().get(pk=run.pk)
        if locked.is_terminal:
            raise ConflictError(f"run is already {locked.status}")
        if locked.status == RunStatus.RUNNING:
            # The handler cannot be interrupted safely: it finishes its attempt, then no retry.
            locked.cancel_requested = True
            locked.save(update_fields=["cancel_requested"])
        else:
            locked.status, locked.finished_at = RunStatus.CANCELLED, timezone.now()
            locked.message = f"cancelled by {user.get_username()}"
            locked.save(update_fields=["status", "finished_at", "message"])
            _after_terminal(locked)
    return locked


def run_retry(*, run: ActionRun, user: Any) -> ActionRun:
    """A new run with the same inputs (the old one stays as history)."""
    if not run.can_retry:
        raise ConflictError(f"a {run.status} run cannot be retried")
    if run.workflow_id:
        raise ConflictError("this run is a workflow step: resume the workflow instead")
    new, _ = run_request(agent=run.agent, action=run.action, payload=run.payload, user=user, forensic=run.forensic)
    return new


# --- workflows --------------------------------------------------------------------------------


def workflow_steps_validate(steps: list[dict[str, Any]], user: Any) -> list[dict[str, Any]]:
    out = []
    for i, raw in enumerate(steps):
        try:
            step = WorkflowStep.model_validate(raw)
        except PydanticValidationError as exc:
            raise ValidationError({f"steps.{i}": str(exc.errors()[0]["msg"])}) from exc
        try:
            spec = action_spec_for_user(agent=step.agent, action=step.action, user=user)
            data = payload_validate(spec, step.payload).model_dump(mode="json")
        except ValidationError as exc:
            raise ValidationError({f"steps.{i}.{k}": v for k, v in exc.message_dict.items()}) from exc
        critical = spec.critical if step.critical is None else step.critical
        out.append({"agent": step.agent, "action": step.action, "payload": data, "critical": critical})
    return out


def workflow_start(
    *, user: Any, name: str | None = None, steps: list[dict[str, Any]] | None = None, forensic: bool = False
) -> WorkflowRun:
    return workflow_request(user=user, name=name, steps=steps, forensic=forensic)[0]


def workflow_request(
    *,
    user: Any,
    name: str | None = None,
    steps: list[dict[str, Any]] | None = None,
    forensic: bool = False,
    idempotency_key: str = "",
) -> tuple[WorkflowRun, bool]:
    """Start a workflow; returns (workflow, created). Like run_request, the same user's same
    idempotency key returns the first workflow (created=False), or ConflictError if it differs."""
    if name and steps is None:
        spec = registry.workflows.get(name)
        if spec is None:
            raise ValidationError({"workflow": f"no workflow named {name!r}"})
        steps = [s.model_dump() for s in spec.steps]
    if not steps:
        raise ValidationError({"steps": "a workflow needs at least one step"})
    checked = workflow_steps_validate(steps, user)
    owner = user if getattr(user, "is_authenticated", False) else None
    forensic = bool(forensic or forensic_forced())
    key = (idempotency_key or "").strip()
    request_hash = _request_hash("workflow", name or "", checked, forensic)
    if key and (existing := _idempotent_workflow(owner, key, request_hash)) is not None:
        return existing, False
    try:
        with transaction.atomic():
            wf = WorkflowRun.objects.create(
                name=(name or "ad hoc")[:100],
                steps=checked,
                requested_by=owner,
                forensic=forensic,
                idempotency_key=key,
                request_hash=request_hash,
            )
            _workflow_step_start(wf, 0)
    except IntegrityError:
        existing = _idempotent_workflow(owner, key, request_hash) if key else None
        if existing is None:
            raise
        return existing, False  # a concurrent twin won the insert
    return wf, True


def _idempotent_workflow(owner: Any, key: str, request_hash: str) -> WorkflowRun | None:
    return _idempotent_twin(WorkflowRun, owner, key, request_hash, what="workflow", detail="workflow")


def _workflow_step_start(wf: WorkflowRun, index: int) -> ActionRun:
    step = wf.steps[index]
    run, _ = run_request(
        agent=step["agent"],
        action=step["action"],
        payload=step["payload"],
        user=wf.requested_by,
        forensic=wf.forensic,
        workflow=wf,
        step_index=index,
    )
    return run


def _workflow_step_finished(run: ActionRun) -> None:
    """Inside the transaction that finished a step's run. The workflow row lock serializes this."""
    wf = WorkflowRun.objects.select_for_update().get(pk=run.workflow_id)
    if run.step_index != wf.current_step:
        return  # a stale step
    if wf.is_terminal:
        # Stopped (cancelled) while this step's attempt was running, and the attempt then
        # succeeded: the step is done, so a resume starts at the next one, never re-runs it.
        if run.status == RunStatus.SUCCEEDED and wf.current_step < len(wf.steps):
            wf.current_step += 1
            wf.save(update_fields=["current_step"])
        return
    index, now = wf.current_step, timezone.now()
    if run.status == RunStatus.CANCELLED:
        wf.status, wf.finished_at = WorkflowStatus.CANCELLED, now
    elif run.status != RunStatus.SUCCEEDED and wf.steps[index]["critical"]:
        wf.status, wf.finished_at = WorkflowStatus.FAILED, now  # stopped; resumable from this step
    else:
        if run.status != RunStatus.SUCCEEDED:
            wf.failed_steps = [*wf.failed_steps, index]
        if index + 1 >= len(wf.steps):
            wf.current_step = len(wf.steps)
            wf.status = WorkflowStatus.DEGRADED if wf.failed_steps else WorkflowStatus.SUCCEEDED
            wf.finished_at = now
        else:
            wf.current_step = index + 1
            wf.save(update_fields=["current_step", "failed_steps"])
            _workflow_step_start(wf, index + 1)
            return
    wf.save(update_fields=["status", "finished_at", "current_step", "failed_steps"])


def workflow_cancel(*, workflow: WorkflowRun, user: Any) -> WorkflowRun:
    with transaction.atomic():
        wf = WorkflowRun.objects.select_for_update().get(pk=workflow.pk)
        if wf.is_terminal:
            raise ConflictError(f"workflow is already {wf.status}")
        wf.status, wf.finished_at = WorkflowStatus.CANCELLED, timezone.now()
        wf.save(update_fields=["status", "finished_at"])
        for run in wf.runs.filter(step_index=wf.current_step).exclude(status__in=TERMINAL):
            run_cancel(run=run, user=user)
    return wf


def workflow_resume(*, workflow: WorkflowRun, user: Any) -> WorkflowRun:
    """Start again from the step that stopped it (a failed critical step, or where it was cancelled)."""
    with transaction.atomic():
        wf = WorkflowRun.objects.select_for_update().get(pk=workflow.pk)
        if not wf.can_resume:
            raise ConflictError(f"a {wf.status} workflow cannot be resumed")
        # The stopped step's run may still be finishing an attempt (cancelled while running):
        # starting the step again now would run it twice. Its outcome decides where to resume.
        if wf.runs.filter(step_index=wf.current_step).exclude(status__in=TERMINAL).exists():
            raise ConflictError("the stopped step is still finishing its attempt; resume when it has ended")
        wf.status, wf.finished_at = WorkflowStatus.RUNNING, None
        wf.save(update_fields=["status", "finished_at"])
        _workflow_step_start(wf, wf.current_step)
    return wf


# --- relay and sweeper (beat) --------------------------------------------------------------------


def runs_relay() -> int:
    """Re-send committed runs whose message never left or was lost."""
    ids = due_for_redispatch()
    if ids:
        log.info("outbox relay: re-sending %d run(s)", len(ids))
        _publish(ids)
    return len(ids)


def runs_sweep() -> dict[str, int]:
    """Runs whose worker died: back to the queue, or dead-lettered after too many lost attempts."""
    requeue, dead = expire_leases()
    if requeue:
        log.warning("lease sweeper: %d run(s) lost their worker; re-sending", len(requeue))
        _publish(requeue)
    for run_id in dead:
        _dead_letter(run_id)
    return {"requeued": len(requeue), "dead_letter": len(dead)}


def _dead_letter(run_id: UUID) -> None:
    with transaction.atomic():
        run = ActionRun.objects.select_for_update(skip_locked=True).filter(pk=run_id).first()
        if run is None or run.status != RunStatus.RUNNING or not run.lease_expires_at:
            return
        if run.lease_expires_at >= timezone.now():
            return
        run.status, run.finished_at, run.crashes = RunStatus.DEAD_LETTER, timezone.now(), run.crashes + 1
        run.error_class, run.error_type = PERMANENT, "worker_lost"
        run.error = f"lost its worker {run.crashes} times; moved to the dead-letter state"
        run.message, run.lease_token, run.lease_expires_at = run.error, "", None
        run.save(
            update_fields=[
                "status",
                "finished_at",
                "crashes",
                "error_class",
                "error_type",
                "error",
                "message",
                "lease_token",
                "lease_expires_at",
            ]
        )
        _after_terminal(run)


# --- policies (admins) ---------------------------------------------------------------------------


def policy_set(*, agent: str, action: str, user: Any, **values: Any) -> ActionPolicy:
    """Create or change an action's policy override; audited with the before and after."""
    if not has_role(user, ADMIN):
        raise PermissionDenied("changing an action policy needs the admin role")
    spec = registry.action(agent, action)
    if spec is None:
        raise ValidationError({"action": f"no action {agent}.{action}"})
    unknown = set(values) - {"enabled", *OVERRIDABLE}
    if unknown:
        raise ValidationError({sorted(unknown)[0]: "not a policy field"})
    if values.get("approvals_required") not in (None, 1, 2):
        raise ValidationError({"approvals_required": "must be 1 or 2"})
    for field in (
        "max_attempts",
        "backoff_base_s",
        "backoff_cap_s",
        "run_timeout_s",
        "approval_timeout_s",
        "max_concurrent",
    ):
        if values.get(field) is not None and values[field] <= 0:
            raise ValidationError({field: "must be positive"})
    with transaction.atomic():
        policy, _ = ActionPolicy.objects.select_for_update().get_or_create(agent=agent, action=action)
        before = {f: getattr(policy, f) for f in ("enabled", *OVERRIDABLE)}
        for field, value in values.items():
            setattr(policy, field, value)
        policy.updated_by = user
        policy.save()
        after = {f: getattr(policy, f) for f in ("enabled", *OVERRIDABLE)}
        effective = effective_policy(spec, policy)
        if effective.backoff_cap_s < effective.backoff_base_s:
            raise ValidationError({"backoff_cap_s": "the backoff cap must be at least the base"})
        audit_append(
            action="agents.policy_changed",
            object_type="action_policy",
            object_id=spec.key,
            data={"before": before, "after": after},
            actor=user,
        )
        transaction.on_commit(policies_changed)  # every process reloads the overrides
    policies_forget_local()  # this process at once, not only after the version moves
    return policy
