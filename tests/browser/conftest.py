"""Browser tests: Playwright driving Debian's Chromium against a real server process.

They run in their own pytest session (`pytest -m browser`): a sync Playwright test leaves an
event loop running in the thread, which breaks later async_to_sync calls (../shared/STACK.md).
The server is the same ASGI entry point `make up` runs, pointed at this run's test database.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

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


@pytest.fixture(scope="session")
def live_server_url(asgi_server: str) -> str:
    return asgi_server


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
