"""A value loaded from the database, cached per process, reloaded when a shared version moves.

Reads on the request path cost nothing; writers call `bump()` (on commit) and every process
reloads within `recheck_s` seconds. If Redis is away, processes keep what they have.

On an event loop (the gateway), a read never touches the database: a stale value is served
while a thread reloads it (stale-while-revalidate), and a value never loaded raises NotLoaded
so the caller can hop to a thread once.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Generic, TypeVar

from django.core.cache import cache

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


class VersionedValue(Generic[T]):
    def __init__(self, key: str, loader: Callable[[], T], recheck_s: float | None = None) -> None:
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
        now = time.monotonic()
        if self._value is not None and now - self._checked < self.recheck_s:
            return self._value
        if in_event_loop():
            if self._value is None:
                raise NotLoaded(self.key)
            self._checked = now  # one background refresh per period
            # force: `_checked` was just moved, so the period test in _refresh would skip the version check.
            threading.Thread(target=self._refresh, kwargs={"force": True}, daemon=True).start()
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
