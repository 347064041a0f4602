"""Reads: routing statistics, savings over time, decisions, and what other apps need to label routed requests."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from django.db.models import Count, QuerySet, Sum
from django.db.models.functions import TruncHour, TruncMinute
from django.utils import timezone

from routing.models import CacheEntry, CachePolicy, ModelEndpoint, RoutingDecision, Tier


def routing_stats(*, since: datetime | None = None) -> dict[str, Any]:
    """Decisions, estimated cost, by complexity / model / decider, and savings vs the baseline."""
    qs = RoutingDecision.objects.all()
    if since:
        qs = qs.filter(created_at__gte=since)
    totals = qs.aggregate(n=Count("id"), cost=Sum("estimated_cost_usd"), baseline=Sum("baseline_cost_usd"))
    cost, baseline = float(totals["cost"] or 0), float(totals["baseline"] or 0)

    def counts(field: str) -> dict[str, int]:
        return {row[field]: row["n"] for row in qs.values(field).annotate(n=Count("id")).order_by("-n")}

    return {
        "total_decisions": totals["n"],
        "total_estimated_cost_usd": round(cost, 10),
        "baseline_cost_usd": round(baseline, 10),
        "savings_usd": round(baseline - cost, 10),
        "savings_pct": (baseline - cost) / baseline if baseline else None,
        "by_complexity": counts("complexity"),
        "by_model": counts("chosen_model"),
        "by_decider": counts("decided_by"),
    }


def savings_series(*, window: timedelta, now: datetime | None = None) -> dict[str, list[Any]]:
    """Estimated cost and baseline cost per minute (windows up to 6 h) or hour."""
    end = now or timezone.now()
    trunc = TruncMinute if window <= timedelta(hours=6) else TruncHour
    rows = (
        RoutingDecision.objects.filter(created_at__gte=end - window)
        .annotate(t=trunc("created_at"))
        .values("t")
        .annotate(cost=Sum("estimated_cost_usd"), baseline=Sum("baseline_cost_usd"), n=Count("id"))
        .order_by("t")
    )
    return {
        "t": [r["t"].isoformat() for r in rows],
        "cost": [float(r["cost"] or 0) for r in rows],
        "baseline": [float(r["baseline"] or 0) for r in rows],
        "decisions": [r["n"] for r in rows],
    }


def decisions_search(*, complexity: str = "", model: str = "", decided_by: str = "", text: str = "") -> QuerySet:
    qs = RoutingDecision.objects.all()
    if complexity:
        qs = qs.filter(complexity=complexity)
    if model:
        qs = qs.filter(chosen_model=model)
    if decided_by:
        qs = qs.filter(decided_by=decided_by)
    if text:
        qs = qs.filter(reason__icontains=text)
    return qs


# --- labelling routed requests (evaluation writes scores back through services.training_example_add) -------

# The learned router compares a weak and a strong model (routing/learned_router.py): an answer from the simple
# tier labels the weak side, one from the complex tier the strong side. A medium-tier answer is neither, so it
# labels nothing.
TRAINING_SIDE = {Tier.SIMPLE: "weak", Tier.COMPLEX: "strong"}


@dataclass(frozen=True)
class RoutedDecision:
    id: int
    trace_id: UUID
    created_at: datetime
    complexity: str
    decided_by: str
    chosen_model: str


def decision_for_trace(trace_id: UUID, *, at: datetime | None = None) -> RoutedDecision | None:
    """The routing decision behind a call in this trace: the newest one made at or before `at` (when the call
    started; a trace may route several calls), or without `at` the trace's first. Only decisions the router made:
    a caller naming its model ("explicit") routed nothing."""
    qs = RoutingDecision.objects.filter(trace_id=trace_id).exclude(decided_by="explicit")
    row = (
        qs.filter(created_at__lte=at).order_by("-created_at", "-id") if at else qs.order_by("created_at", "id")
    ).first()
    if row is None:
        return None
    return RoutedDecision(row.id, trace_id, row.created_at, row.complexity, row.decided_by, row.chosen_model)


def model_tier(model: str) -> str | None:
    """The catalog tier of a model named as spans name it (`sim/simple`, `gpt-4o`) or as `provider/model`."""
    provider, _, name = model.partition("/")
    for endpoint in ModelEndpoint.objects.filter(model__in={model, name}).only("provider", "model", "tier"):
        if endpoint.model == model or endpoint.provider == provider:
            return endpoint.tier
    return None


def training_side(tier: str | None) -> str | None:
    """ "weak", "strong" or None (see TRAINING_SIDE)."""
    return TRAINING_SIDE.get(tier) if tier else None


def cache_namespaces(*, with_lookups: Iterable[str] = ()) -> list[dict[str, Any]]:
    """Every namespace with entries, a policy, or lookups in the window (`with_lookups`): what
    the cache page lists and an admin may purge."""
    rows = {
        row["namespace"]: {"namespace": row["namespace"], "entries": row["n"], "bytes": row["size"] or 0}
        for row in CacheEntry.objects.values("namespace").annotate(n=Count("id"), size=Sum("size_bytes"))
    }
    policies = set(CachePolicy.objects.values_list("namespace", flat=True))
    for namespace in {*policies, *with_lookups} - set(rows):
        rows[namespace] = {"namespace": namespace, "entries": 0, "bytes": 0}
    for row in rows.values():
        row["policy"] = row["namespace"] in policies
    return sorted(rows.values(), key=lambda r: r["namespace"])


def cache_top_entries(*, namespace: str | None = None, limit: int = 20) -> QuerySet:
    qs = CacheEntry.objects.order_by("-hit_count", "-created_at")
    return (qs.filter(namespace=namespace) if namespace else qs)[:limit]
