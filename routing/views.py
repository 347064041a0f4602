"""Routing and cache pages (their data arrives with the routing and cache issues)."""

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from aios_core.access import VIEWER, role_required


@role_required(VIEWER)
def home(request: HttpRequest) -> HttpResponse:
    return render(request, "section_empty.html", {"title": "Routing", "message": "No routing decisions yet."})


@role_required(VIEWER)
def cache(request: HttpRequest) -> HttpResponse:
    return render(request, "section_empty.html", {"title": "Cache", "message": "The response cache is empty."})
