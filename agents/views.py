"""Agent pages: runs and approvals (their data arrives with the agent-actions issue)."""

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from aios_core.access import APPROVER, VIEWER, role_required


@role_required(VIEWER)
def home(request: HttpRequest) -> HttpResponse:
    return render(request, "section_empty.html", {"title": "Runs", "message": "No agent runs yet."})


@role_required(APPROVER)
def approvals(request: HttpRequest) -> HttpResponse:
    return render(request, "section_empty.html", {"title": "Approvals", "message": "Nothing waits for approval."})
