"""The Celery app. Settings live in settings.py under the CELERY_ namespace."""

from __future__ import annotations

import os

from celery import Celery, signals

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "aios_site.settings")
# Torch (embeddings, the learned router) must use one thread per process: on 2 shared cores
# the default made one embedding 40x slower under load (../shared/STACK.md).
os.environ.setdefault("OMP_NUM_THREADS", "1")

app = Celery("aios")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@signals.task_prerun.connect
def _bind_task_context(task_id: str | None = None, task: object = None, **_: object) -> None:
    from aios_core import context

    context.reset(request_id=f"task:{task_id}")


@signals.setup_logging.connect
def _use_django_logging(**_: object) -> None:
    """Keep Django's JSON logging config instead of Celery's own handlers."""
    import logging.config

    from django.conf import settings

    logging.config.dictConfig(settings.LOGGING)
