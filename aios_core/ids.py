"""Time-ordered UUIDs (RFC 9562 version 7) for rows inserted at a high rate.

A random UUID4 key lands each insert on a random B-tree page; a UUIDv7 starts with the
millisecond timestamp, so new keys go to the right edge of the index (fewer pages touched,
written and cached) and `ORDER BY id` is creation order. Python 3.11 has no uuid.uuid7.

The random bits come from `random` (re-seeded from the OS at import and in every forked child),
not from os.urandom, which costs a system call per id: these ids name rows, every access to
which is permission-checked; they are not secrets.
"""

from __future__ import annotations

import random
import time
import uuid


def uuid7() -> uuid.UUID:
    ms = time.time_ns() // 1_000_000
    rand = random.getrandbits(80)
    value = (ms & (2**48 - 1)) << 80 | 0x7 << 76 | (rand >> 68 & 0xFFF) << 64 | 0b10 << 62 | (rand & (2**62 - 1))
    return uuid.UUID(int=value)
