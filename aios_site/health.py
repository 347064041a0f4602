"""Liveness and readiness probes (public: Kubernetes and load balancers call them)."""

from __future__ import annotations

import time
from typing import Any

from django.conf import settings
from django.contrib.auth.decorators import login_not_required
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.http import HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

_migrated = False  # once true in a process it stays true; the check loads every migration file


def _check_database() -> dict[str, Any]:
    global _migrated
    with connection.cursor() as cur:
        cur.execute("SELECT 1")
        cur.execute("SELECT extversion FROM pg_extension WHERE extname = 'vector'")
        row = cur.fetchone()
    if not _migrated:
        executor = MigrationExecutor(connection)
        pending = executor.migration_plan(executor.loader.graph.leaf_nodes())
        if pending:
            return {"ok": False, "error": f"{len(pending)} migrations not applied"}
        _migrated = True
    return {"ok": True, "vector_search": "pgvector" if row else "in-process", "pgvector": row[0] if row else None}


def _check_redis() -> dict[str, Any]:
    import redis

    client = redis.Redis.from_url(settings.REDIS_URL, socket_timeout=1, socket_connect_timeout=1)
    try:
        client.ping()
    finally:
        client.close()
    return {"ok": True}


def _check_broker() -> dict[str, Any]:
    from kombu import Connection

    url = settings.CELERY_BROKER_URL
    with Connection(url, connect_timeout=2, transport_options={"socket_timeout": 2}) as conn:
        conn.ensure_connection(max_retries=1, timeout=2)
    return {"ok": True, "transport": url.split(":", 1)[0]}


CHECKS = {"database": _check_database, "redis": _check_redis, "broker": _check_broker}


@login_not_required
@never_cache
@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    """The process is alive. No dependencies: a database outage must not restart the pods."""
    return JsonResponse({"status": "ok"})


@login_not_required
@never_cache
@require_GET
def readyz(request: HttpRequest) -> JsonResponse:
    """Ready for traffic: database reachable and migrated, Redis and broker reachable."""
    checks: dict[str, Any] = {}
    for name, check in CHECKS.items():
        started = time.perf_counter()
        try:
            checks[name] = check()
        except Exception as exc:  # noqa: BLE001 - any failure means "not ready", named below
            checks[name] = {"ok": False, "error": f"{type(exc).__name__}: {exc}"[:300]}
        checks[name]["ms"] = round((time.perf_counter() - started) * 1000, 1)
    failed = [name for name, result in checks.items() if not result["ok"]]
    body = {
        "status": "unavailable" if failed else "ready",
        "failed": failed,
        "checks": checks,
        "vector_search": checks["database"].get("vector_search", "unknown"),
    }
    return JsonResponse(body, status=503 if failed else 200)
