"""Audit receivers for Django's auth events, and the role-permission sync after migrate.

Signals are used only where Django offers no other hook (logins happen inside
django.contrib.auth; group changes may come from the admin); each receiver calls a service.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.signals import user_logged_in, user_logged_out, user_login_failed
from django.db.models.signals import m2m_changed, post_migrate
from django.dispatch import receiver

from observability.audit import audit_append

User = get_user_model()


@receiver(user_logged_in)
def _audit_login(sender: Any, request: Any, user: Any, **_: Any) -> None:
    audit_append(action="auth.login", object_type="user", object_id=user.pk, actor=user)


@receiver(user_logged_out)
def _audit_logout(sender: Any, request: Any, user: Any, **_: Any) -> None:
    if user is not None:
        audit_append(action="auth.logout", object_type="user", object_id=user.pk, actor=user)


@receiver(user_login_failed)
def _audit_failed_login(sender: Any, credentials: dict[str, Any], request: Any = None, **_: Any) -> None:
    # Django has already masked the password in `credentials`; keep only the username.
    username = str(credentials.get("username", ""))[:150]
    audit_append(action="auth.login_failed", object_type="user", object_id=username, data={"username": username})


@receiver(m2m_changed, sender=User.groups.through)
def _audit_role_change(
    sender: Any, instance: Any, action: str, reverse: bool, pk_set: set[int] | None, **_: Any
) -> None:
    if action not in ("post_add", "post_remove", "post_clear") or reverse:
        return
    from django.contrib.auth.models import Group

    names = sorted(Group.objects.filter(pk__in=pk_set or []).values_list("name", flat=True))
    verb = {"post_add": "added", "post_remove": "removed", "post_clear": "cleared"}[action]
    audit_append(
        action=f"auth.roles_{verb}", object_type="user", object_id=instance.pk,
        data={"user": instance.get_username(), "roles": names},
    )  # fmt: skip


@receiver(post_migrate)
def _sync_roles(sender: Any, **kwargs: Any) -> None:
    if getattr(sender, "name", None) != "aios_site":
        return
    from aios_site.roles import sync_role_groups

    sync_role_groups()
