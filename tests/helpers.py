"""Helpers for tests: logged-in clients, and environments for subprocesses of this run."""

from __future__ import annotations

import os
from typing import Any
from urllib.parse import quote

from django.db import connection
from django.test import Client


def login(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


def database_url() -> str:
    """A URL for the test database, for subprocesses (workers, servers) of this test run."""
    s = connection.settings_dict
    user = quote(s["USER"] or "", safe="")
    password = quote(s["PASSWORD"] or "", safe="")
    host = s["HOST"] or s.get("OPTIONS", {}).get("host", "")
    if host.startswith("/"):
        return f"postgres://{user}:{password}@/{s['NAME']}?host={host}"
    return f"postgres://{user}:{password}@{host}:{s['PORT'] or 5432}/{s['NAME']}"


def subprocess_env(**extra: str) -> dict[str, str]:
    return {**os.environ, "DATABASE_URL": database_url(), "PYTHONUNBUFFERED": "1", **extra}
