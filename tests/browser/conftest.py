"""Browser tests: Playwright driving Debian's Chromium against a real server process.

They run in their own pytest session (`pytest -m browser`): a sync Playwright test leaves an
event loop running in the thread, which breaks later async_to_sync calls (../shared/STACK.md).
The server is the same ASGI entry point `make up` runs, pointed at this run's test database.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import subprocess_env

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--no-first-run", "--disable-sync", "--disable-quic",
]  # fmt: skip


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/browser/" in str(item.fspath):
            item.add_marker(pytest.mark.browser)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_http(url: str, proc: subprocess.Popen[bytes], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"{url} did not answer")


@pytest.fixture(scope="session")
def live_server_url(django_db_setup: None, django_db_blocker: Any) -> Iterator[str]:
    port = _free_port()
    with django_db_blocker.unblock():
        env = subprocess_env()
    proc = subprocess.Popen([sys.executable, "-m", "aios_site.serve", "--port", str(port)], env=env, cwd=ROOT)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_http(f"{url}/healthz", proc)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    # The test thread touches the database while Playwright's event loop runs in it.
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture
def artifacts_dir(request: pytest.FixtureRequest) -> Path:
    path = ROOT / "test-results" / request.node.name
    path.mkdir(parents=True, exist_ok=True)
    return path


def log_in(browser: Any, base_url: str, username: str, password: str) -> Any:
    """A new browser context, logged in through the real login form; returns its page."""
    context = browser.new_context(viewport={"width": 1366, "height": 768}, base_url=base_url)
    page = context.new_page()
    page.goto("/accounts/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", password)
    page.click("button[type=submit]")
    page.wait_for_url(f"{base_url}/")
    return page
