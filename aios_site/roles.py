"""Which model permissions each role's group holds. Synced by a data migration and again
after every migrate, so permissions of models added by later migrations join their roles."""

from __future__ import annotations

from fnmatch import fnmatchcase
from typing import Any

from aios_core.access import ADMIN, ANNOTATOR, APPROVER, OPERATOR, ROLES, VIEWER

_VIEW = ["observability.view_*", "routing.view_*", "agents.view_*", "evaluation.view_*"]

ROLE_PERMISSIONS: dict[str, list[str]] = {
    VIEWER: _VIEW,
    OPERATOR: [*_VIEW, "agents.add_actionrun", "agents.change_actionrun", "agents.add_workflowrun",
               "agents.change_workflowrun", "evaluation.add_evalrun", "evaluation.change_evalrun"],
    APPROVER: [*_VIEW, "agents.change_approvalrequest", "agents.add_approvaldecision"],
    ANNOTATOR: [*_VIEW, "evaluation.add_annotation", "evaluation.change_annotationitem"],
    ADMIN: ["*"],
}  # fmt: skip


def sync_role_groups(apps: Any = None) -> None:
    """Create the role groups and give each exactly the permissions its patterns match."""
    if apps is None:
        from django.apps import apps as global_apps

        apps = global_apps
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    perms = [
        (f"{p.content_type.app_label}.{p.codename}", p.pk) for p in Permission.objects.select_related("content_type")
    ]
    for role in ROLES:
        group, _ = Group.objects.get_or_create(name=role)
        patterns = ROLE_PERMISSIONS[role]
        wanted = [pk for label, pk in perms if any(fnmatchcase(label, pat) for pat in patterns)]
        group.permissions.set(wanted)
