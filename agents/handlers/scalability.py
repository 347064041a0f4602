"""scalability: Celery queue depth, workers, and a scale recommendation."""

from __future__ import annotations

import math
from datetime import timedelta

from celery import current_app
from django.conf import settings
from django.db.models import Avg, Count
from django.utils import timezone
from pydantic import BaseModel, ConfigDict, Field

from agents.handlers._util import has_key, ok
from agents.manifest import ActionResult, Agent
from agents.runtime.context import ExecutionContext

agent = Agent("scalability", "Celery queue depth, workers and scaling advice.")


def queue_depth_now() -> int:
    queue = settings.CELERY_TASK_DEFAULT_QUEUE
    with current_app.connection_for_read() as conn:
        return int(conn.default_channel.client.llen(queue))


def _backlog() -> dict[str, int]:
    from agents.models import ActionRun

    rows = (
        ActionRun.objects.filter(status__in=["queued", "retrying", "running"]).values("status").annotate(n=Count("id"))
    )
    return {r["status"]: r["n"] for r in rows}


@agent.action(forensic_safe=True, gate=has_key("depth"))
def queue_depth(ctx: ExecutionContext, payload: BaseModel) -> ActionResult:
    """Messages waiting in the broker queue, and runs waiting in the database."""
    depth = queue_depth_now()
    return ok(
        f"{depth} message(s) in {settings.CELERY_TASK_DEFAULT_QUEUE}",
        {"depth": depth, "runs": _backlog(), "queue": settings.CELERY_TASK_DEFAULT_QUEUE},
    )


class WorkersIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    timeout_s: float = Field(default=1.0, gt=0, le=10)


@agent.action(payload=WorkersIn, forensic_safe=True, gate=has_key("workers"))
def workers(ctx: ExecutionContext, payload: WorkersIn) -> ActionResult:
    """Live Celery workers, their pool sizes and tasks in progress."""
    inspect = current_app.control.inspect(timeout=payload.timeout_s)
    stats = inspect.stats() or {}
    active = inspect.active() or {}
    rows = [
        {
            "name": name,
            "processes": len(s.get("pool", {}).get("processes", [])),
            "active": len(active.get(name, [])),
            "pid": s.get("pid"),
        }
        for name, s in stats.items()
    ]
    return ok(
        f"{len(rows)} worker(s), {sum(r['processes'] for r in rows)} process(es)",
        {"workers": rows},
        confidence=1.0 if rows else 0.5,
    )


class RecommendIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    drain_target_s: int = Field(default=60, ge=5, le=3600)
    processes_per_worker: int = Field(default=2, ge=1, le=64)


@agent.action(payload=RecommendIn, forensic_safe=True, gate=has_key("recommended_workers"))
def recommend(ctx: ExecutionContext, payload: RecommendIn) -> ActionResult:
    """Workers needed to drain the backlog within the target, from the recent run rate and duration."""
    from agents.models import ActionRun

    since = timezone.now() - timedelta(minutes=5)
    done = ActionRun.objects.filter(finished_at__gte=since).aggregate(n=Count("id"), ms=Avg("latency_ms"))
    backlog = sum(_backlog().values())
    avg_s = max((done["ms"] or 100.0) / 1000, 0.001)
    per_process_rate = 1 / avg_s
    needed_processes = backlog / (per_process_rate * payload.drain_target_s) if backlog else 0
    workers_needed = max(1, math.ceil(needed_processes / payload.processes_per_worker))
    return ok(
        f"backlog {backlog}; recommend {workers_needed} worker(s)",
        {
            "backlog": backlog,
            "finished_last_5m": done["n"],
            "avg_run_s": round(avg_s, 4),
            "recommended_workers": workers_needed,
            "drain_target_s": payload.drain_target_s,
        },
        confidence=0.9 if done["n"] else 0.4,
    )
