"""The Celery broker's queue length for /metrics, read at scrape time (Redis or RabbitMQ)."""

from __future__ import annotations

from collections.abc import Iterable

from observability.prometheus import register_db_gauge


def _celery_queue_length() -> Iterable[tuple[dict[str, str], float]]:
    from django.conf import settings

    from aios_site.celery import app

    queue = settings.CELERY_TASK_DEFAULT_QUEUE
    with app.connection_for_read() as conn:
        conn.ensure_connection(max_retries=1, timeout=2)  # a scrape must not hang on a dead broker
        try:
            count = conn.default_channel.queue_declare(queue=queue, passive=True).message_count
        except conn.channel_errors:  # the queue does not exist yet: nothing was ever sent
            count = 0
        yield {"queue": queue}, float(count)


def register() -> None:
    register_db_gauge(
        "aios_celery_queue_length", "Messages waiting in the Celery broker queue", ["queue"], _celery_queue_length
    )
