"""Exponential backoff with jitter: attempt n waits base * 2**(n-1), capped, then jittered down
to between half and all of it ("equal jitter": spreads retries yet keeps a floor)."""

from __future__ import annotations

import random

from django.conf import settings

from agents.manifest import RetryPolicy

_rng = random.Random()


def backoff_delay(policy: RetryPolicy, attempt: int, *, rng: random.Random | None = None) -> float:
    """Seconds to wait after failed attempt number `attempt` (1-based). Scaled by
    AIOS_RUN_BACKOFF_SCALE, so tests and benchmarks wait milliseconds."""
    raw = min(policy.backoff_cap_s, policy.backoff_base_s * (2 ** max(attempt - 1, 0)))
    if policy.jitter:
        raw = (rng or _rng).uniform(raw / 2, raw)
    return raw * settings.AIOS_RUN_BACKOFF_SCALE
