"""application: this control plane's own health, processes and configuration."""

from __future__ import annotations

import os
import platform
import time

import django
import psutil
from django.conf import settings
from django.core.cache import cache
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from pydantic import BaseModel

from agents.handlers._util import fail, has_key, ok
from agents.manifest import ActionResult, Agent
from agents.runtime.context import ExecutionContext

agent = Agent("application", "Health, processes and configuration of this control plane.")


def _timed(fn: object) -> tuple[bool, float, str]:
    started = time.perf_counter()
    try:
        fn()  # type: ignore[operator]
        return True, (time.perf_counter() - started) * 1000, ""
    except Exception as exc:  # noqa: BLE001 - a failed check is a finding, not a crash
        return False, (time.perf_counter() - started) * 1000, str(exc)[:300]


def _broker_ping() -> None:
    from celery import current_app

    with current_app.connection_for_write() as conn:
        conn.ensure_connection(max_retries=1, timeout=2)


def _pending_migrations() -> int:
    executor = MigrationExecutor(connection)
    return len(executor.migration_plan(executor.loader.graph.leaf_nodes()))


@agent.action(critical=True, forensic_safe=True, gate=has_key("checks"))
def health(ctx: ExecutionContext, payload: BaseModel) -> ActionResult:
    """Database, cache (Redis), broker and migrations, with their latencies."""
    checks = {}
    for name, fn in (
        ("database", lambda: connection.ensure_connection() or connection.cursor().execute("SELECT 1")),
        ("cache", lambda: cache.get("aios:health")),
        ("broker", _broker_ping),
    ):
        up, ms, error = _timed(fn)
        checks[name] = {"ok": up, "ms": round(ms, 2), "error": error}
    pending = _pending_migrations()
    checks["migrations"] = {"ok": pending == 0, "pending": pending}
    bad = [k for k, v in checks.items() if not v["ok"]]
    if "database" in bad or "broker" in bad:
        # Dependencies down: a transient condition worth retrying.
        return fail(f"unhealthy: {', '.join(bad)}", "dependency_unavailable", {"checks": checks})
    return ok("healthy" if not bad else f"degraded: {', '.join(bad)}", {"checks": checks}, confidence=1.0)


@agent.action(forensic_safe=True, gate=has_key("processes"))
def processes(ctx: ExecutionContext, payload: BaseModel) -> ActionResult:
    """This installation's processes (web, workers, beat, Postgres, Redis): memory and CPU."""
    markers = ("celery", "uvicorn", "daphne", "manage.py", "postgres", "redis-server", "aios_site")
    rows = []
    for proc in psutil.process_iter(["pid", "name", "cmdline", "memory_info", "cpu_times", "create_time"]):
        cmd = " ".join(proc.info["cmdline"] or [])
        if any(m in cmd for m in markers):
            mem = proc.info["memory_info"]
            cpu = proc.info["cpu_times"]
            rows.append(
                {
                    "pid": proc.info["pid"],
                    "name": proc.info["name"],
                    "cmd": cmd[:200],
                    "rss_mb": round(mem.rss / 2**20, 1) if mem else None,
                    "cpu_s": round(cpu.user + cpu.system, 1) if cpu else None,
                    "age_s": int(time.time() - proc.info["create_time"]),
                }
            )
    rows.sort(key=lambda r: -(r["rss_mb"] or 0))
    total = sum(r["rss_mb"] or 0 for r in rows)
    return ok(f"{len(rows)} process(es), {total:.0f} MB RSS", {"processes": rows[:100], "rss_mb_total": total})


@agent.action(forensic_safe=True, gate=has_key("settings"))
def config_report(ctx: ExecutionContext, payload: BaseModel) -> ActionResult:
    """Effective configuration (no secrets) and versions."""
    report = {
        "debug": settings.DEBUG,
        "allowed_hosts": settings.ALLOWED_HOSTS,
        "executor": settings.AIOS_EXECUTOR,
        "forensic_mode": settings.AIOS_FORENSIC_MODE,
        "database_embedded": settings.DATABASE_EMBEDDED,
        "redis_embedded": settings.REDIS_EMBEDDED,
        "task_soft_time_limit": settings.CELERY_TASK_SOFT_TIME_LIMIT,
        "task_time_limit": settings.CELERY_TASK_TIME_LIMIT,
        "run_lease_s": settings.AIOS_RUN_LEASE_S,
        "celery_queue": settings.CELERY_TASK_DEFAULT_QUEUE,
    }
    warnings = []
    if settings.DEBUG:
        warnings.append("DEBUG is on")
    if settings.AIOS_EXECUTOR == "host":
        warnings.append("the host executor is active: approved actions change this machine")
    versions = {"python": platform.python_version(), "django": django.get_version(), "pid": os.getpid()}
    return ok(f"{len(warnings)} warning(s)", {"settings": report, "warnings": warnings, "versions": versions})
