"""aios_core.versioned: a value cached per process, reloaded when another process bumps its version."""

from __future__ import annotations

import asyncio
import time
import uuid

from django.core.cache import cache

from aios_core.versioned import VersionedValue


def test_an_event_loop_sees_another_processs_bump_after_one_stale_read() -> None:
    loads: list[int] = []

    def loader() -> int:
        loads.append(1)
        return len(loads)

    value = VersionedValue(f"test:versioned:{uuid.uuid4().hex}", loader, recheck_s=0.05)
    assert value.get() == 1  # loaded synchronously
    cache.set(value.key, 7, timeout=60)  # another process bumped the version

    async def reads() -> list[int]:
        seen = []
        for _ in range(20):
            time.sleep(0.06)  # past the recheck period
            seen.append(value.get())  # never blocks the loop: a stale value while a thread reloads
            await asyncio.sleep(0.02)
        return seen

    seen = asyncio.run(reads())
    assert seen[0] == 1 and seen[-1] == 2  # reloaded once the version moved, and only then
