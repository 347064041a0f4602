"""Routing pages: decisions, stats by tier and model, savings over time, the catalog."""

from __future__ import annotations

from datetime import timedelta

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone

from aios_core.access import VIEWER, role_required
from routing import catalog
from routing.models import ModelEndpoint, RouterModel, Tier
from routing.selectors import decisions_search, routing_stats, savings_series

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
        "simulated": any(e.simulated for e in available),
        "learned": RouterModel.objects.filter(active=True).first(),
    }
    return render(request, "routing/home.html", context)


@role_required(VIEWER)
def cache(request: HttpRequest) -> HttpResponse:
    return render(request, "section_empty.html", {"title": "Cache", "message": "The response cache is empty."})
