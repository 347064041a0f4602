"""Live run-status events, sent off the request and worker paths.

`aios_core.live.send_now` blocks for a channel-layer round trip through `async_to_sync`
(about 5 ms): at hundreds of runs a second that would cost more than the runs. Events handed
over on commit go to a per-process sender thread with its own event loop, which coalesces
them (the newest status of a run wins) and sends every AIOS_RUN_LIVE_FLUSH_S. Channel-layer
delivery is at-most-once anyway: pages re-read the database when they reconnect.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
from typing import Any

from django.conf import settings

log = logging.getLogger(__name__)


class LiveSender:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pending: dict[tuple[str, str], dict[str, Any]] = {}
        self._wake = threading.Event()
        self._pid: int | None = None

    def send(self, group: str, payload: dict[str, Any]) -> None:
        with self._lock:
            self._pending[(group, payload.get("id", ""))] = payload
            if self._pid != os.getpid():  # first use in this process (or after a fork)
                self._pid = os.getpid()
                threading.Thread(target=self._run, name="agents-live", daemon=True).start()
        self._wake.set()

    def _take(self) -> list[tuple[str, dict[str, Any]]]:
        with self._lock:
            batch = [(group, payload) for (group, _), payload in self._pending.items()]
            self._pending.clear()
        return batch

    def _run(self) -> None:
        # A plain thread blocking on an Event (never an executor thread, which would hold up
        # interpreter exit), with one event loop of its own for the channel layer.
        from channels.layers import get_channel_layer

        loop = asyncio.new_event_loop()
        layer = get_channel_layer()
        while True:
            self._wake.wait()
            self._wake.clear()
            time.sleep(settings.AIOS_RUN_LIVE_FLUSH_S)
            batch = self._take()
            if batch and layer is not None:
                loop.run_until_complete(self._send(layer, batch))

    @staticmethod
    async def _send(layer: Any, batch: list[tuple[str, dict[str, Any]]]) -> None:
        for group, payload in batch:
            try:
                await layer.group_send(group, {"type": "run.status", "payload": payload})
            except Exception:
                log.debug("live update not sent", exc_info=True)


sender = LiveSender()
