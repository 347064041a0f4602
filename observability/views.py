"""Observability pages. The overview's live charts and the traces explorer arrive with the
dashboard issue; until then these pages show their designed empty states."""

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from aios_core.access import VIEWER, role_required


@role_required(VIEWER)
def overview(request: HttpRequest) -> HttpResponse:
    return render(request, "observability/overview.html")


@role_required(VIEWER)
def traces(request: HttpRequest) -> HttpResponse:
    return render(request, "section_empty.html", {"title": "Traces", "message": "No traces recorded yet."})
