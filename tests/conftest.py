"""Shared fixtures: users by role, a real Celery worker, database URLs for subprocesses."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.factories import make_user
from tests.helpers import subprocess_env

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def viewer(db: None) -> Any:
    return make_user("viewer")


@pytest.fixture
def operator(db: None) -> Any:
    return make_user("operator")


@pytest.fixture
def approver(db: None) -> Any:
    return make_user("approver")


@pytest.fixture
def admin_user(db: None) -> Any:
    return make_user("admin")


@pytest.fixture(scope="session")
def django_db_setup(django_db_setup: None) -> Iterator[None]:
    """pytest-django's test database, dropped WITH (FORCE) at the end: a worker or server a test
    started may reconnect between `_close_span_writer` ending its sessions and the DROP, which
    would otherwise fail and leave a test_* database behind on a shared server."""
    from django.db import connection

    creation = type(connection.creation)

    def destroy(self: Any, test_database_name: str, verbosity: int) -> None:
        with self._nodb_cursor() as cursor:
            cursor.execute(f"DROP DATABASE {self.connection.ops.quote_name(test_database_name)} WITH (FORCE)")

    creation._destroy_test_db = destroy  # type: ignore[method-assign]
    yield


@pytest.fixture(scope="session", autouse=True)
def _flush_retries_a_deadlock() -> Iterator[None]:
    """The TRUNCATE that ends a transactional test can deadlock with a span writer in another
    process (a real Celery worker or server the test started, still flushing its last batch):
    Postgres aborts the TRUNCATE, and once the writer has committed the same flush succeeds."""
    from django.test import TransactionTestCase

    original = TransactionTestCase._fixture_teardown

    def teardown(self: Any) -> None:
        for attempt in range(5):
            try:
                return original(self)
            except Exception as exc:
                if "deadlock detected" not in str(exc.__cause__ or exc) or attempt == 4:
                    raise
                time.sleep(0.2 * (attempt + 1))

    TransactionTestCase._fixture_teardown = teardown  # type: ignore[method-assign]
    yield
    TransactionTestCase._fixture_teardown = original  # type: ignore[method-assign]


@pytest.fixture(autouse=True)
def _finish_writes_before_a_flush(request: pytest.FixtureRequest) -> Iterator[None]:
    """A transactional test ends with TRUNCATE of every table; this process's span and decision
    writers may still be writing the test's rows, and the two lock tables in opposite orders
    (a deadlock that fails the flush). Requested first, so this teardown runs before the flush.
    Writers in other processes are covered by `_flush_retries_a_deadlock`."""
    marker = request.node.get_closest_marker("django_db")
    transactional = "transactional_db" in request.fixturenames or bool(marker and marker.kwargs.get("transaction"))
    if transactional:
        request.getfixturevalue("transactional_db")
    yield
    if transactional:
        from observability import get_observability
        from routing.decisions import get_decision_writer

        get_observability().flush(timeout=30)
        get_decision_writer().flush(timeout=30)


@pytest.fixture(autouse=True)
def _forget_cached_configuration() -> Iterator[None]:
    """Catalog, prices, policies and router versions are cached per process and follow a version
    number in Redis; truncating tables between tests does not move it, so forget them here."""
    yield
    from aios_core.versioned import invalidate_all
    from aios_site.tokens import forget_cached_tokens
    from observability.pricing import prices

    invalidate_all()
    prices.invalidate()
    forget_cached_tokens()


@pytest.fixture(scope="session")
def celery_worker(django_db_setup: None, django_db_blocker: Any) -> Iterator[subprocess.Popen[bytes]]:
    """A real Celery worker process (prefork, 2 children) on this run's queue and test DB."""
    from aios_site.tasks import ping

    with django_db_blocker.unblock():
        # Recheck 0: the worker sees a test's catalog or price change on its next read, whatever
        # it read a moment before (tests change configuration far faster than people do).
        env = subprocess_env(AIOS_CONFIG_RECHECK_S="0")
    proc = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "aios_site", "worker", "--concurrency", "2", "--loglevel", "WARNING",
         "--without-gossip", "--without-mingle", "--without-heartbeat"],
        env=env, cwd=ROOT,
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while True:
        try:
            ping.apply_async().get(timeout=5)
            break
        except Exception:  # noqa: BLE001 - the worker is still starting
            if time.monotonic() > deadline or proc.poll() is not None:
                proc.kill()
                raise RuntimeError("the Celery worker did not start") from None
    yield proc
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()


@pytest.fixture(scope="session", autouse=True)
def _close_span_writer(request: pytest.FixtureRequest) -> Iterator[None]:
    """The span writer holds its own connection: close it before the test database is dropped."""
    if "django_db_setup" in request.fixturenames or any("db" in str(i.keywords) for i in request.session.items):
        request.getfixturevalue("django_db_setup")
    yield
    from django.db import connection

    from observability.writer import flush_at_exit

    flush_at_exit()
    # Subprocesses (workers, servers) may still be closing their connections: end them, so the
    # test database can be dropped.
    try:
        with connection.cursor() as cur:
            cur.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
    except Exception:  # noqa: BLE001 - no database in this session
        pass


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_asgi_server(env: dict[str, str]) -> tuple[subprocess.Popen[bytes], str]:
    """The ASGI server `make up` runs (uvicorn + Channels + the gateway) on a free port."""
    import urllib.request

    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "aios_site.serve", "--port", str(port)], env=env, cwd=ROOT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(f"{url}/healthz", timeout=2):
                return proc, url
        except OSError:
            time.sleep(0.2)
    proc.kill()
    raise RuntimeError("the ASGI server did not answer")


@pytest.fixture(scope="session")
def asgi_server(django_db_setup: None, django_db_blocker: Any) -> Iterator[str]:
    """A real server process on this run's test database; yields its base URL."""
    with django_db_blocker.unblock():
        env = subprocess_env(AIOS_SIM_LATENCY_SCALE="0", AIOS_CONFIG_RECHECK_S="0.5")
    proc, url = start_asgi_server(env)
    yield url
    proc.terminate()
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
