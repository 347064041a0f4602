"""Shared plumbing for bench scripts: a dedicated, migrated database; Django setup; output.

Benchmarks never touch the development data: they use their own database (`aios_bench_*`) on
the embedded Postgres in var/pg, or on the server DATABASE_URL points at.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def _base_env() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "aios_site.settings")
    os.environ.setdefault("SECRET_KEY", "bench-only-" + "b" * 50)
    os.environ.setdefault("DEBUG", "0")
    os.environ.setdefault("AIOS_LOCAL_HTTP", "1")
    os.environ.setdefault("ALLOWED_HOSTS", "127.0.0.1,localhost")
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    os.environ.setdefault("LOG_LEVEL", "WARNING")


def bench_database(name: str, *, fresh: bool = False) -> str:
    """URL of a migrated database `name` (created if missing) on the embedded or given server."""
    import psycopg

    _base_env()
    server_url = os.environ.get("BENCH_SERVER_URL") or os.environ.get("DATABASE_URL")
    if not server_url:
        from aios_core import embedded

        server_url = embedded.postgres_url(ROOT / "var" / "pg")
    os.environ["BENCH_SERVER_URL"] = server_url
    base, _, query = server_url.partition("?")
    admin_url = base.rsplit("/", 1)[0] + "/postgres" + (f"?{query}" if query else "")
    url = base.rsplit("/", 1)[0] + f"/{name}" + (f"?{query}" if query else "")
    with psycopg.connect(admin_url, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone()
        if exists and fresh:
            conn.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
            exists = None
        if not exists:
            conn.execute(f'CREATE DATABASE "{name}"')
    env = {**os.environ, "DATABASE_URL": url}
    subprocess.run([sys.executable, "manage.py", "migrate", "--noinput", "-v0"], cwd=ROOT, env=env, check=True)
    return url


def setup_django(database_url: str) -> None:
    _base_env()
    os.environ["DATABASE_URL"] = database_url
    import django

    django.setup()


def emit(result: dict[str, Any]) -> None:
    """The last line of every bench: one JSON object."""
    print(json.dumps(result), flush=True)
