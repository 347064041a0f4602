"""A value loaded from the database, cached per process, reloaded when a shared version moves.

Reads on the request path cost nothing; writers call `bump()` (on commit) and every process
reloads within `recheck_s` seconds. If Redis is away, processes keep what they have.

On an event loop (the gateway), a read never touches the database or Redis: once a value has
been loaded it joins one refresher thread per process that re-checks every registered value's
version each `recheck_s`, so what the loop reads is never more than about a period old, and a
change reaches the loop without a request having to trigger (and miss) it first. A value never
loaded raises NotLoaded so the caller can hop to a thread once.
"""

from __future__ import annotations

import logging
import threading
import time
import weakref
from collections.abc import Callable
from typing import Any, Generic, Protocol, TypeVar

from django.core.cache import cache

log = logging.getLogger(__name__)

T = TypeVar("T")


class NotLoaded(Exception):
    """Read on an event loop before the value was ever loaded: load it from a thread."""


def in_event_loop() -> bool:
    import asyncio

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


_instances: weakref.WeakSet[VersionedValue[Any]] = weakref.WeakSet()


def invalidate_all() -> None:
    """Forget every value this process holds (tests: a truncated table does not move versions)."""
    for value in list(_instances):
        value.invalidate()


class VersionedValue(Generic[T]):
    def __init__(self, key: str, loader: Callable[[], T], recheck_s: float | None = None) -> None:
        _instances.add(self)
        self.key = key
        self.loader = loader
        self._recheck_s = recheck_s
        self._value: T | None = None
        self._version: object = None
        self._checked = 0.0
        self._lock = threading.Lock()

    @property
    def recheck_s(self) -> float:
        if self._recheck_s is not None:
            return self._recheck_s
        from django.conf import settings

        return float(getattr(settings, "AIOS_CONFIG_RECHECK_S", 5.0))

    def get(self) -> T:
        if in_event_loop():
            if self._value is None:
                raise NotLoaded(self.key)
            watch_in_background(self)  # kept fresh off the loop from now on
            return self._value
        if self._value is not None and time.monotonic() - self._checked < self.recheck_s:
            return self._value
        return self._refresh()

    def _refresh(self, force: bool = False) -> T:
        now = time.monotonic()
        with self._lock:
            if force or self._value is None or now - self._checked >= self.recheck_s:
                try:
                    version = cache.get(self.key, 0)
                except Exception:  # noqa: BLE001 - Redis away: keep what we have
                    version = self._version if self._value is not None else 0
                if self._value is None or version != self._version:
                    self._value = self.loader()
                    self._version = version
                self._checked = now
        return self._value  # type: ignore[return-value]

    def background_refresh(self) -> None:
        """Called each period by the refresher thread; an invalidated value waits for a read."""
        if self._value is not None:
            self._refresh(force=True)

    def cached(self) -> T | None:
        """The value this process holds, without touching the database (async callers)."""
        return self._value

    def bump(self) -> None:
        try:
            cache.incr(self.key)
        except ValueError:
            cache.set(self.key, 1, timeout=None)
        self.invalidate()

    def invalidate(self) -> None:
        self._value = None
        self._checked = 0.0


class Refreshable(Protocol):
    key: str

    @property
    def recheck_s(self) -> float: ...

    def background_refresh(self) -> None: ...


class _Refresher:
    """One daemon thread per process re-checking, each period, the values read on event loops."""

    def __init__(self) -> None:
        self._values: dict[int, Refreshable] = {}
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def watch(self, value: Refreshable) -> None:
        if id(value) in self._values:
            return
        with self._lock:
            self._values[id(value)] = value
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="aios-config-refresher", daemon=True)
                self._thread.start()

    def _run(self) -> None:
        from django.db import close_old_connections

        while True:
            values = list(self._values.values())
            time.sleep(min(v.recheck_s for v in values))
            for value in values:
                try:
                    value.background_refresh()
                except Exception:
                    log.warning("could not refresh %s", value.key, exc_info=True)
            close_old_connections()  # a database restart must not leave this thread on a dead connection


_refresher = _Refresher()


def watch_in_background(value: Refreshable) -> None:
    """Keep `value` current from the refresher thread (for caches read on an event loop)."""
    _refresher.watch(value)
