"""The navigation bar: only the sections the user's role may open."""

from __future__ import annotations

from functools import cache
from typing import Any

from django.http import HttpRequest
from django.urls import NoReverseMatch, reverse

from aios_core.access import ADMIN, APPROVER, VIEWER, has_role

# (label, url name, role needed, the URL prefix that marks the item active)
NAV_ITEMS: list[tuple[str, str, str]] = [
    ("Overview", "obs-overview", VIEWER),
    ("Runs", "agents-home", VIEWER),
    ("Approvals", "agents-approvals", APPROVER),
    ("Traces", "obs-traces", VIEWER),
    ("Routing", "routing-home", VIEWER),
    ("Cache", "routing-cache", VIEWER),
    ("Evaluation", "evaluation-home", VIEWER),
]


def _approvals_waiting(user: Any) -> Any:
    """The badge count, computed only if a template shows it (one query), at most once."""
    from agents.approvals import waiting_count_for

    return cache(lambda: waiting_count_for(user))


def navigation(request: HttpRequest) -> dict[str, Any]:
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {"nav_items": []}
    items = []
    for label, url_name, role in NAV_ITEMS:
        if not has_role(user, role):
            continue
        try:
            url = reverse(url_name)
        except NoReverseMatch:
            continue
        active = request.path == url if url == "/" else request.path.startswith(url)
        item: dict[str, Any] = {"label": label, "url": url, "active": active}
        if url_name == "agents-approvals":
            item["count"], item["count_url"] = _approvals_waiting(user), reverse("agents-approvals-count")
        items.append(item)
    if user.is_staff and has_role(user, ADMIN):
        items.append({"label": "Admin", "url": reverse("admin:index"), "active": request.path.startswith("/admin/")})
    return {"nav_items": items}
