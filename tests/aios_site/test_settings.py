"""Settings come from the environment; production settings pass Django's deploy check."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def manage(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    base = {
        k: v
        for k, v in os.environ.items()
        if k not in ("DEBUG", "AIOS_LOCAL_HTTP", "SECRET_KEY", "ALLOWED_HOSTS", "DJANGO_ALLOW_ASYNC_UNSAFE")
    }
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env={**base, **env}, capture_output=True, text=True, timeout=120
    )


def test_production_settings_pass_the_deploy_check_with_nothing_reported() -> None:
    proc = manage(
        "check", "--deploy", "--fail-level", "DEBUG",
        DEBUG="0", SECRET_KEY="p" * 20 + "-Zx9!q" + "r" * 40, ALLOWED_HOSTS="aios.example.com",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "System check identified no issues" in proc.stdout


def test_a_secret_key_is_required_when_debug_is_off() -> None:
    proc = manage("check", DEBUG="0", ALLOWED_HOSTS="x")
    assert proc.returncode != 0
    assert "SECRET_KEY" in proc.stderr


def test_local_http_relaxes_only_the_https_settings() -> None:
    code = (
        "from django.conf import settings as s;"
        "print(s.SESSION_COOKIE_SECURE, s.SECURE_SSL_REDIRECT, s.DEBUG, s.X_FRAME_OPTIONS)"
    )
    proc = manage("shell", "-c", code, DEBUG="0", AIOS_LOCAL_HTTP="1", SECRET_KEY="s" * 60, ALLOWED_HOSTS="x")
    assert proc.stdout.strip().splitlines()[-1] == "False False False DENY"


def test_sqlite_urls_are_refused() -> None:
    proc = manage("check", DATABASE_URL="sqlite:///x.db", DEBUG="1")
    assert proc.returncode != 0 and "PostgreSQL" in proc.stderr


def test_local_http_leaves_allowed_hosts_to_the_environment() -> None:
    code = "from django.conf import settings as s; print(s.ALLOWED_HOSTS)"
    local_http = manage("shell", "-c", code, DEBUG="0", AIOS_LOCAL_HTTP="1", SECRET_KEY="s" * 60)
    development = manage("shell", "-c", code, DEBUG="1")
    assert local_http.stdout.strip().splitlines()[-1] == "[]", local_http.stderr
    assert development.stdout.strip().splitlines()[-1] == "['127.0.0.1', 'localhost', '[::1]']", development.stderr


def test_logs_are_json_lines_on_stdout_not_stderr() -> None:
    code = "import logging; logging.getLogger('aios.test').warning('to stdout')"
    proc = manage("shell", "-c", code, DEBUG="1")
    lines = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    assert any(entry["msg"] == "to stdout" and entry["logger"] == "aios.test" for entry in lines), proc.stdout
    assert "to stdout" not in proc.stderr
