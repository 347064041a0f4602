"""Routing pages: decisions, stats by tier and model, savings over time, the catalog."""

from __future__ import annotations

from datetime import timedelta

from django.contrib import messages
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_POST

from aios_core.access import ADMIN, VIEWER, has_role, role_required
from observability.audit import audit_append
from routing import catalog, response_cache
from routing.models import ModelEndpoint, RouterModel, Tier
from routing.selectors import cache_namespaces, cache_top_entries, decisions_search, routing_stats, savings_series

WINDOWS = {"1h": timedelta(hours=1), "24h": timedelta(hours=24), "7d": timedelta(days=7)}


@role_required(VIEWER)
def home(request: HttpRequest) -> HttpResponse:
    window = request.GET.get("window", "24h")
    span = WINDOWS.get(window, WINDOWS["24h"])
    filters = {k: request.GET.get(k, "")[:200] for k in ("complexity", "model", "decided_by", "q")}
    decisions = decisions_search(complexity=filters["complexity"], model=filters["model"],
                                 decided_by=filters["decided_by"], text=filters["q"])[:100]  # fmt: skip
    available = catalog.available_endpoints()
    context = {
        "window": window,
        "windows": list(WINDOWS),
        "filters": filters,
        "tiers": Tier.values,
        "stats": routing_stats(since=timezone.now() - span),
        "series": savings_series(window=span),
        "decisions": decisions,
        "catalog": ModelEndpoint.objects.all(),
        "available": {e.model_id for e in available},
        "learned": RouterModel.objects.filter(active=True).first(),
    }
    return render(request, "routing/home.html", context)


@role_required(VIEWER)
def cache(request: HttpRequest) -> HttpResponse:
    """Hit rate and savings over time, per namespace, top entries; admins purge and set policies."""
    window = request.GET.get("window", "24h")
    span = WINDOWS.get(window, WINDOWS["24h"])
    namespace = request.GET.get("ns", "")[:150] or None
    all_stats = response_cache.get_stats(window=span)
    context = {
        "window": window,
        "windows": list(WINDOWS),
        "namespace": namespace or "",
        "stats": response_cache.get_stats(window=span, namespace=namespace) if namespace else all_stats,
        "namespaces": [
            {**row, "stats": all_stats["by_namespace"].get(row["namespace"])}
            for row in cache_namespaces(with_lookups=all_stats["by_namespace"])
        ],
        "top": cache_top_entries(namespace=namespace),
        "can_purge": has_role(request.user, ADMIN),
    }
    return render(request, "routing/cache.html", context)


@role_required(VIEWER)
def cache_stats(request: HttpRequest) -> JsonResponse:
    """The cache page's live data (polled every few seconds), for every namespace or one (`ns`)."""
    span = WINDOWS.get(request.GET.get("window", "24h"), WINDOWS["24h"])
    namespace = request.GET.get("ns", "")[:150] or None
    return JsonResponse(response_cache.get_stats(window=span, namespace=namespace))


@role_required(ADMIN)
@require_POST
def cache_purge(request: HttpRequest) -> HttpResponse:
    namespace = request.POST.get("namespace") or None
    entry = request.POST.get("entry")
    removed = response_cache.purge(namespace=namespace, entry_id=int(entry) if entry and entry.isdigit() else None)
    audit_append(
        action="cache.purged",
        object_type="cache",
        object_id=namespace or entry or "all",
        data={"namespace": namespace, "entry": entry, "removed": removed},
        actor=request.user,
    )
    messages.success(request, f"Purged {removed} cache entries.")
    return redirect("routing-cache")
