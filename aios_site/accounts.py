"""User and role services for scripts and the seed (the admin site edits users directly)."""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.exceptions import ValidationError
from django.db import transaction

from aios_core.access import ADMIN, ROLES


def user_create(*, username: str, role: str, password: str | None = None, email: str = "") -> tuple[Any, str]:
    """Create a user holding `role`; returns the user and the password (generated if None)."""
    if role not in ROLES:
        raise ValidationError({"role": f"Unknown role {role!r}; choose from {', '.join(ROLES)}."})
    User = get_user_model()
    if User.objects.filter(username=username).exists():
        raise ValidationError({"username": f"User {username!r} already exists."})
    password = password or secrets.token_urlsafe(12)
    with transaction.atomic():
        user = User.objects.create_user(username=username, email=email, password=password, is_staff=role == ADMIN)
        user.groups.add(Group.objects.get(name=role))
    return user, password


def admin_ensure(*, password_from_env: str | None, password_file: Path) -> tuple[Any, str | None]:
    """Make sure the `admin` superuser exists. Returns it and its password when this call
    created it or changed it (to print once); None when nothing changed."""
    User = get_user_model()
    user = User.objects.filter(username="admin").first()
    if user is not None:
        if password_from_env and not user.check_password(password_from_env):
            user.set_password(password_from_env)
            user.save(update_fields=["password"])
            return user, password_from_env
        return user, None
    password = password_from_env or secrets.token_urlsafe(12)
    with transaction.atomic():
        user = User.objects.create_superuser(username="admin", email="", password=password)
        user.groups.add(Group.objects.get(name=ADMIN))
    if not password_from_env:
        password_file.write_text(password + "\n")
        password_file.chmod(0o600)
    return user, password
