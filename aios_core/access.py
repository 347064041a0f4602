"""Roles and the checks every view, API and websocket uses.

Roles are Django groups. `viewer` is the floor: anyone with any role may view. `admin`
(and superusers) pass every check. Checks are written here once and tested once.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

from django.core.exceptions import PermissionDenied

VIEWER, OPERATOR, APPROVER, ANNOTATOR, ADMIN = "viewer", "operator", "approver", "annotator", "admin"
ROLES: tuple[str, ...] = (VIEWER, OPERATOR, APPROVER, ANNOTATOR, ADMIN)

F = TypeVar("F", bound=Callable[..., Any])


def user_roles(user: Any) -> frozenset[str]:
    """The role names of `user`, cached on the instance for the rest of the request."""
    if not getattr(user, "is_authenticated", False):
        return frozenset()
    cached = getattr(user, "_aios_roles", None)
    if cached is None:
        cached = frozenset(user.groups.filter(name__in=ROLES).values_list("name", flat=True))
        user._aios_roles = cached
    return cached


def has_role(user: Any, role: str) -> bool:
    if not getattr(user, "is_authenticated", False) or not getattr(user, "is_active", False):
        return False
    if user.is_superuser:
        return True
    roles = user_roles(user)
    if ADMIN in roles:
        return True
    if role == VIEWER:
        return bool(roles)
    return role in roles


def role_required(role: str) -> Callable[[F], F]:
    """Function-view decorator: 403 (the friendly page) unless the user holds `role`.

    Anonymous users never get here: the login-required middleware redirects them first.
    """

    def decorator(view: F) -> F:
        @wraps(view)
        def wrapped(request: Any, *args: Any, **kwargs: Any) -> Any:
            if not has_role(request.user, role):
                raise PermissionDenied(f"This page needs the {role} role.")
            return view(request, *args, **kwargs)

        wrapped.aios_role = role  # type: ignore[attr-defined]
        return wrapped  # type: ignore[return-value]

    return decorator
