"""A bounded in-process buffer written to Postgres in batches by a background thread.

The machinery behind the span writer and the routing-decision writer: producers append in
microseconds and never wait on the database. Each process has its own writer thread and its
own psycopg connection. A batch that fails goes back to the front of the buffer and is retried
with backoff (0.5 s doubling to 10 s between tries; producers do not wake the thread early
while it backs off) while the database is away; when the buffer is full,
new items are dropped and counted (`dropped`, and `on_drop` for metrics), never silently.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from typing import Any

log = logging.getLogger(__name__)


def connect_like_django(application_name: str = "aios-writer") -> Any:
    """A psycopg connection of the writer's own, to the database Django uses right now."""
    import psycopg
    from django.db import connections

    s = connections["default"].settings_dict
    params = {
        "dbname": s["NAME"],
        "user": s.get("USER") or None,
        "password": s.get("PASSWORD") or None,
        "host": s.get("HOST") or s.get("OPTIONS", {}).get("host") or None,
        "port": s.get("PORT") or None,
        "connect_timeout": 5,
        "application_name": application_name,
    }
    return psycopg.connect(**{k: v for k, v in params.items() if v is not None})


class BufferedWriter:
    """Subclasses implement `write_batch(conn, batch)` (one transaction) and may override
    `connect`, `after_commit`, `on_drop`, `on_failure`."""

    name = "items"

    def __init__(self, *, max_items: int, flush_interval_s: float, batch_size: int) -> None:
        self.max_items = max_items
        self.flush_interval_s = flush_interval_s
        self.batch_size = batch_size
        self._buffer: deque[Any] = deque()
        self._wake = threading.Event()
        self._idle = threading.Condition()
        self._in_flight = 0
        self._conn: Any = None
        self._thread: threading.Thread | None = None
        self._stopping = False
        self.dropped = 0
        self.written = 0
        self._failing_since: float | None = None
        # Set while the database refuses batches: producers then leave the thread asleep for its
        # backoff instead of waking it on every add (a tight reconnect loop during an outage).
        self._backing_off = False

    # --- hooks -------------------------------------------------------------------------------
    def connect(self) -> Any:
        return connect_like_django(f"aios-{self.name}-writer")

    def write_batch(self, conn: Any, batch: list[Any]) -> None:
        raise NotImplementedError

    def after_commit(self, batch: list[Any]) -> None:
        """Runs after a batch committed (metrics, live feeds)."""

    def on_drop(self, n: int) -> None:
        """Called when the full buffer refuses `n` items."""

    def on_failure(self, exc: Exception) -> None:
        """Called when a batch could not be written (it will be retried)."""

    def after_cycle(self) -> None:
        """Called by the writer thread after each flush attempt (buffer gauges)."""

    # --- producer side (any thread) ----------------------------------------------------------
    def add(self, item: Any) -> None:
        if len(self._buffer) >= self.max_items:
            self.dropped += 1
            self.on_drop(1)
            return
        self._buffer.append(item)
        if self._thread is None:
            self._start()
        if len(self._buffer) >= self.batch_size and not self._backing_off:
            self._wake.set()

    @property
    def pending(self) -> int:
        return len(self._buffer) + self._in_flight

    # --- the writer thread ---------------------------------------------------------------------
    def _start(self) -> None:
        with self._idle:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name=f"aios-{self.name}-writer", daemon=True)
                self._thread.start()

    def _run(self) -> None:
        backoff = 0.0
        while not self._stopping:
            self._wake.wait(timeout=max(self.flush_interval_s, backoff))
            self._wake.clear()
            ok = self._flush_all()
            backoff = 0.0 if ok else min(max(backoff * 2, 0.5), 10.0)
            self._backing_off = not ok
            try:
                self.after_cycle()
            except Exception:  # metrics must never stop the writer
                log.debug("%s writer: after_cycle failed", self.name, exc_info=True)

    def _take(self) -> list[Any]:
        batch = []
        with self._idle:
            while self._buffer and len(batch) < self.batch_size:
                batch.append(self._buffer.popleft())
            self._in_flight = len(batch)
        return batch

    def _flush_all(self) -> bool:
        """Write everything buffered; False if the database refused (the items are kept)."""
        while True:
            batch = self._take()
            if not batch:
                self._notify_idle()
                return True
            try:
                if self._conn is None or self._conn.closed:
                    self._conn = self.connect()
                self.write_batch(self._conn, batch)
            except Exception as exc:  # noqa: BLE001 - any failure: keep the items, retry later
                self._requeue(batch)
                self._failed(exc)
                return False
            self.written += len(batch)
            if self._failing_since is not None:
                log.warning("%s writes recovered after %.1f s", self.name, time.monotonic() - self._failing_since)
                self._failing_since = None
            self.after_commit(batch)

    def _requeue(self, batch: list[Any]) -> None:
        with self._idle:
            self._buffer.extendleft(reversed(batch))
            self._in_flight = 0
            overflow = max(0, len(self._buffer) - self.max_items)
            for _ in range(overflow):  # keep the oldest: drop what came last
                self._buffer.pop()
            if overflow:
                self.dropped += overflow
                self.on_drop(overflow)

    def _failed(self, exc: Exception) -> None:
        self.on_failure(exc)
        if self._conn is not None:
            try:
                self._conn.close()
            except Exception:  # noqa: BLE001
                pass
            self._conn = None
        if self._failing_since is None:
            self._failing_since = time.monotonic()
            log.warning("%s write failed, keeping %d and retrying: %s", self.name, self.pending, exc)

    def _notify_idle(self) -> None:
        with self._idle:
            self._in_flight = 0
            self._idle.notify_all()

    # --- control -------------------------------------------------------------------------------
    def flush(self, timeout: float = 10.0) -> bool:
        """Block until everything added so far is written (or `timeout`); True if it was."""
        deadline = time.monotonic() + timeout
        if self._thread is None and self._buffer:
            self._start()
        while self.pending:
            if not self._backing_off:  # a failing database is retried on the backoff's schedule
                self._wake.set()
            with self._idle:
                self._idle.wait(timeout=0.05)
            if time.monotonic() > deadline:
                return False
        return True

    def close(self, timeout: float = 10.0) -> None:
        self._backing_off = False  # one last attempt at once, whatever the backoff
        self.flush(timeout)
        self._stopping = True
        self._wake.set()
        if self._conn is not None:
            try:
                self._conn.close()
            except Exception:  # noqa: BLE001
                pass
