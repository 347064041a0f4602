"""aios_core.versioned: a value cached per process, reloaded when another process bumps its version."""

from __future__ import annotations

import asyncio
import time
import uuid

import pytest
from django.core.cache import cache

from aios_core.versioned import NotLoaded, VersionedValue


def test_an_event_loop_sees_another_processs_bump_within_a_period_without_a_stale_read() -> None:
    loads: list[int] = []

    def loader() -> int:
        loads.append(1)
        return len(loads)

    value = VersionedValue(f"test:versioned:{uuid.uuid4().hex}", loader, recheck_s=0.05)
    assert value.get() == 1  # loaded synchronously

    async def read_once() -> int:
        return value.get()  # on the loop: never blocks, and joins the refresher

    assert asyncio.run(read_once()) == 1
    cache.set(value.key, 7, timeout=60)  # another process bumped the version
    deadline = time.monotonic() + 5
    while len(loads) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    # Reloaded in the background, before any read asked for it: the next read is already fresh.
    assert len(loads) == 2 and asyncio.run(read_once()) == 2
    time.sleep(0.2)
    assert len(loads) == 2  # the version did not move again: no further loads


def test_a_value_never_loaded_is_not_read_on_the_event_loop() -> None:
    value = VersionedValue(f"test:versioned:{uuid.uuid4().hex}", lambda: 1, recheck_s=0.05)

    async def read_once() -> int:
        return value.get()

    with pytest.raises(NotLoaded):
        asyncio.run(read_once())
