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
