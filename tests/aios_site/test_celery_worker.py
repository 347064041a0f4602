from __future__ import annotations

import os

import pytest

from aios_site.celery import app
from aios_site.tasks import ping


@pytest.mark.django_db(transaction=True)
def test_a_task_runs_in_a_real_worker_process(celery_worker) -> None:  # type: ignore[no-untyped-def]
    result = ping.delay().get(timeout=30)
    assert result["pong"] is True
    assert result["pid"] != os.getpid()
    assert result["pid"] != celery_worker.pid  # a prefork child, not the main process


def test_celery_is_configured_for_at_least_once_delivery() -> None:
    conf = app.conf
    assert conf.task_acks_late is True
    assert conf.task_reject_on_worker_lost is True
    assert conf.worker_prefetch_multiplier == 1
    assert conf.task_serializer == "json" and conf.accept_content == ["json"]
    assert conf.task_soft_time_limit < conf.task_time_limit
    assert conf.broker_transport_options["visibility_timeout"] > conf.task_time_limit


def _rabbitmq_up() -> bool:
    import socket

    try:
        with socket.create_connection(("127.0.0.1", 5672), timeout=0.5):
            return True
    except OSError:
        return False


@pytest.mark.skipif(not _rabbitmq_up(), reason="no RabbitMQ on 127.0.0.1:5672")
@pytest.mark.django_db(transaction=True)
def test_a_worker_also_runs_tasks_from_rabbitmq() -> None:
    """CELERY_BROKER_URL may point at RabbitMQ (it redelivers a dead worker's message at once)."""
    import subprocess
    import sys
    import uuid

    from tests.helpers import subprocess_env

    queue = f"aios-amqp-{uuid.uuid4().hex[:8]}"
    env = subprocess_env(CELERY_BROKER_URL="amqp://guest:guest@127.0.0.1:5672//", AIOS_CELERY_QUEUE=queue)
    worker = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "aios_site", "worker", "-P", "solo", "--loglevel", "WARNING",
         "--without-gossip", "--without-mingle", "--without-heartbeat"], env=env,
    )  # fmt: skip
    try:
        sender = subprocess.run(
            [sys.executable, "-c", "import django; django.setup(); from aios_site.tasks import ping; "
             "print(ping.apply_async().get(timeout=60)['pong'])"],
            env=env, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
    finally:
        worker.terminate()
        worker.wait(timeout=30)
    assert sender.returncode == 0, sender.stderr[-2000:]
    assert sender.stdout.strip().endswith("True")
