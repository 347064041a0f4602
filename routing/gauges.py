"""Cache and routing gauges for /metrics, read at scrape time (shared state, not per process)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import timedelta

from observability.prometheus import register_db_gauge


def _cache_hit_rate() -> Iterable[tuple[dict[str, str], float]]:
    from routing.response_cache import get_stats

    for namespace, s in get_stats(window=timedelta(minutes=15))["by_namespace"].items():
        if s["hit_rate"] is not None:
            yield {"namespace": namespace}, float(s["hit_rate"])


def _cache_entries() -> Iterable[tuple[dict[str, str], float]]:
    from django.db.models import Count

    from routing.models import CacheEntry

    for row in CacheEntry.objects.values("namespace").annotate(n=Count("id")):
        yield {"namespace": row["namespace"]}, float(row["n"])


register_db_gauge("aios_cache_hit_rate", "Cache hit rate over the last 15 minutes", ["namespace"], _cache_hit_rate)
register_db_gauge("aios_cache_entries", "Cached answers stored", ["namespace"], _cache_entries)
