"""Evaluation pages (their data arrives with the evaluation issue)."""

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from aios_core.access import VIEWER, role_required


@role_required(VIEWER)
def home(request: HttpRequest) -> HttpResponse:
    return render(request, "section_empty.html", {"title": "Evaluation", "message": "No datasets or eval runs yet."})
