"""Thin Celery tasks: take ids, call one service."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from celery import shared_task


@shared_task(name="agents.execute_run")
def execute_run(run_id: str) -> str:
    from django.db import close_old_connections

    from agents.services import run_execute

    close_old_connections()  # a connection reused across tasks (AIOS_CELERY_DB_REUSE_MAX) may be broken or old

    return run_execute(run_id=UUID(run_id))


@shared_task(name="agents.drain")
def drain_runs() -> int:
    """The doorbell's message (agents/runtime/doorbell.py): execute due runs until none is left."""
    from django.db import close_old_connections

    from agents.services import runs_drain

    close_old_connections()
    return runs_drain()


@shared_task(name="agents.relay")
def relay() -> int:
    from agents.services import runs_relay

    return runs_relay()


@shared_task(name="agents.sweep_leases")
def sweep_leases() -> dict[str, int]:
    from agents.services import runs_sweep

    return runs_sweep()


@shared_task(name="agents.scheduled_run")
def scheduled_run(schedule_id: str) -> str:
    """A beat firing of a Schedule: starts its run or workflow as the owner, or skips."""
    from agents.schedules import schedule_fire

    return schedule_fire(schedule_id=UUID(schedule_id))


# --- approvals (issue 6) -------------------------------------------------------------------------


@shared_task(name="agents.approvals_expire")
def approvals_expire() -> dict[str, int]:
    from agents.approvals import approvals_expire as expire

    return expire()


@shared_task(name="agents.approval_preview")
def approval_preview(request_id: int) -> bool:
    from agents.approvals import approval_preview_attach

    return approval_preview_attach(request_id=request_id)


@shared_task(name="agents.approvals_relay")
def approvals_relay() -> dict[str, int]:
    from agents.approvals import approvals_relay as relay_

    return relay_()


@shared_task(name="agents.approval_webhook", bind=True, max_retries=8)
def approval_webhook(self: Any, webhook_id: int) -> str:
    """POST one outbox row to AIOS_APPROVAL_WEBHOOK_URL; retried with jittered exponential backoff."""
    import random

    from agents.approvals import WEBHOOK_BACKOFF_MAX_S, approval_webhook_send

    outcome = approval_webhook_send(webhook_id=webhook_id, last_try=self.request.retries >= self.max_retries)
    if outcome == "retry":
        wait = min(WEBHOOK_BACKOFF_MAX_S, 5 * 2**self.request.retries)
        raise self.retry(countdown=random.uniform(wait / 2, wait))
    return outcome
