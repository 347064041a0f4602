from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from django.conf import settings
from django.test import Client, override_settings

from aios_core import embedded

pytestmark = pytest.mark.django_db


def test_healthz_answers_without_dependencies() -> None:
    resp = Client().get("/healthz")
    assert resp.status_code == 200 and resp.json() == {"status": "ok"}


def test_readyz_reports_every_dependency_and_the_vector_mode() -> None:
    resp = Client().get("/readyz")
    body = resp.json()
    assert resp.status_code == 200, body
    assert body["status"] == "ready" and body["failed"] == []
    assert set(body["checks"]) == {"database", "redis", "broker"}
    assert body["vector_search"] in ("pgvector", "in-process")


@pytest.fixture
def private_redis(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """A Redis of this test's own: outage tests never touch a shared server."""
    data_dir = Path(settings.VAR_DIR) / f"hr-{tmp_path_factory.getbasetemp().name[-6:]}"
    url = embedded.redis_url(data_dir)
    yield data_dir, url
    embedded.redis_stop(data_dir)
    shutil.rmtree(data_dir, ignore_errors=True)


def test_readyz_is_503_naming_redis_when_redis_is_down(private_redis) -> None:  # type: ignore[no-untyped-def]
    data_dir, url = private_redis
    broker = embedded.celery_broker_url(url)
    with override_settings(REDIS_URL=url, CELERY_BROKER_URL=broker):
        assert Client().get("/readyz").status_code == 200
        embedded.redis_stop(data_dir)
        resp = Client().get("/readyz")
    body = resp.json()
    assert resp.status_code == 503
    assert body["status"] == "unavailable"
    assert "redis" in body["failed"] and "broker" in body["failed"]
    assert "database" not in body["failed"]
    assert body["checks"]["redis"]["error"]


def test_readyz_is_503_when_the_broker_is_unreachable() -> None:
    with override_settings(CELERY_BROKER_URL="amqp://guest:guest@127.0.0.1:1//"):
        resp = Client().get("/readyz")
    assert resp.status_code == 503
    assert resp.json()["failed"] == ["broker"]
