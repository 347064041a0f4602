"""Coalesced wake-ups ("doorbell"): a stream of new runs costs a few broker messages, not one each.

With AIOS_RUN_COALESCE_WAKEUPS on, a committed run rings the doorbell instead of sending its own
message: `SET agents:doorbell NX EX ttl` in Redis, and only the caller that set the key sends
an `agents.drain` message. The key stays set while drains work, so the runs committed meanwhile
ring into it and cost nothing; a drain claims due runs one by one (oldest first, SKIP LOCKED)
and, with none left and after a short linger, deletes the key and claims once more
(`agents.services.runs_drain`), so:

- a run whose ring found the key set was committed before that delete: the last claim sees it;
- a run committed after the delete finds the key gone and rings again (a new message).

So no run is left waiting on a doorbell that nobody answers. A drain that finds work sends one
more drain message (`send_drain`), so an idle worker process joins in. If a drain dies holding
the key, the key's TTL stops it from silencing later rings, and the outbox relay re-sends the
runs themselves from the database (`dispatched_at`), as for any run. The database stays the
source of truth; the doorbell only saves messages.
"""

from __future__ import annotations

from django.conf import settings
from django.core.cache import cache

KEY = "agents:doorbell"


def ring() -> bool:
    """Make sure a drain is coming. Returns True if this call sent the message. Raises if Redis
    or the broker is down (the caller leaves its runs to the relay)."""
    if not cache.add(KEY, 1, timeout=settings.AIOS_RUN_DOORBELL_TTL_S):
        return False  # a drain message is pending: it will see our run
    try:
        send_drain()
    except Exception:
        cache.delete(KEY)
        raise
    return True


def send_drain() -> None:
    """One drain message, whatever the key says."""
    from agents.tasks import drain_runs

    drain_runs.apply_async(**drain_time_limits())


def answer() -> None:
    """Called by a drain that found nothing left, before its last claim: rings after this send
    a new message."""
    try:
        cache.delete(KEY)
    except Exception:  # noqa: BLE001 - Redis away: the key's TTL frees it; the relay covers the rest
        pass


def drain_time_limits() -> dict[str, float]:
    """A drain stops claiming after AIOS_RUN_DRAIN_S and takes only runs whose own timeout is at
    most AIOS_RUN_DRAIN_MAX_TIMEOUT_S, so its Celery limits are bounded by those two."""
    soft = settings.AIOS_RUN_DRAIN_S + settings.AIOS_RUN_DRAIN_MAX_TIMEOUT_S + 5
    return {
        "soft_time_limit": min(soft, settings.CELERY_TASK_SOFT_TIME_LIMIT),
        "time_limit": min(soft + 10, settings.CELERY_TASK_TIME_LIMIT),
    }
