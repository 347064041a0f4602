"""Test data builders shared by every app's tests."""

from __future__ import annotations

import itertools
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group

from aios_site.roles import sync_role_groups

_seq = itertools.count(1)
PASSWORD = "correct-horse-battery-staple"


def make_user(role: str | None = "viewer", *, username: str | None = None, **fields: Any) -> Any:
    User = get_user_model()
    if role and not Group.objects.filter(name=role).exists():
        sync_role_groups()
    user = User.objects.create_user(username=username or f"user{next(_seq)}", password=PASSWORD, **fields)
    if role:
        user.groups.add(Group.objects.get(name=role))
        if role == "admin":
            user.is_staff = True
            user.save(update_fields=["is_staff"])
    return user
