"""Site-level tasks."""

from __future__ import annotations

import os
import socket

from celery import shared_task


@shared_task(name="aios_site.ping", ignore_result=False)
def ping() -> dict[str, object]:
    """Round trip through the broker and a worker; used by tests and operators."""
    return {"pong": True, "host": socket.gethostname(), "pid": os.getpid()}
