"""Routing tasks: retention of routing decisions, the sweep of expired cache entries."""

from __future__ import annotations

from datetime import timedelta

from celery import shared_task
from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone


@shared_task(name="routing.retention")
def retention() -> int:
    """Delete routing decisions older than AIOS_DECISION_RETENTION_DAYS, in batches."""
    cutoff = timezone.now() - timedelta(days=settings.AIOS_DECISION_RETENTION_DAYS)
    total = 0
    while True:
        with transaction.atomic(), connection.cursor() as cur:
            cur.execute(
                "DELETE FROM routing_routingdecision WHERE id IN "
                "(SELECT id FROM routing_routingdecision WHERE created_at < %s LIMIT 10000)",
                [cutoff],
            )
            total += cur.rowcount
            if cur.rowcount < 10000:
                return total


@shared_task(name="routing.cache_sweep")
def cache_sweep() -> int:
    """Delete expired cache entries in every namespace (stores only evict their own namespace's)."""
    from routing.response_cache import sweep_expired

    return sweep_expired()
