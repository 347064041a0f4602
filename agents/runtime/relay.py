"""The outbox relay and the lease sweeper: the database, not the broker, decides what must run.

- Relay: a run is committed with `dispatched_at` set and its task sent on commit. If that send
  failed (broker down), or the message was lost (broker restarted without persistence, a worker
  killed with the message reserved), the run is still `queued`/`retrying` in the database: the
  relay sends again every run that is due and was last dispatched over AIOS_RUN_REDISPATCH_S ago.
  Duplicates are harmless: the claim lets one through.
- Sweeper: a `running` run whose lease expired lost its worker. It goes back to `queued` and
  is sent again, or, after AIOS_RUN_MAX_CRASHES lost attempts, to `dead_letter`.

Both lock the rows they take with SKIP LOCKED, so two beat ticks never fight over a row.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from uuid import UUID

from django.conf import settings
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from agents.models import CLAIMABLE, ActionRun, RunStatus

log = logging.getLogger(__name__)
BATCH = 2000


def due_for_redispatch(now: timezone.datetime | None = None) -> list[tuple[UUID, float]]:
    """(run id, run timeout) of every run to send again."""
    now = now or timezone.now()
    stale = now - timedelta(seconds=settings.AIOS_RUN_REDISPATCH_S)
    with transaction.atomic():
        rows = list(
            ActionRun.objects.select_for_update(skip_locked=True)
            .filter(status__in=CLAIMABLE)
            .filter(Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now))
            .filter(Q(dispatched_at__isnull=True) | Q(dispatched_at__lte=stale))
            .values_list("pk", "run_timeout_s")[:BATCH]
        )
        if rows:
            ActionRun.objects.filter(pk__in=[pk for pk, _ in rows]).update(dispatched_at=now)
    return rows


def expire_leases(now: timezone.datetime | None = None) -> tuple[list[tuple[UUID, float]], list[UUID]]:
    """Returns (requeued (id, run timeout), dead-lettered ids); the caller re-sends the first."""
    now = now or timezone.now()
    max_crashes = settings.AIOS_RUN_MAX_CRASHES
    with transaction.atomic():
        rows = list(
            ActionRun.objects.select_for_update(skip_locked=True)
            .filter(status=RunStatus.RUNNING, lease_expires_at__lt=now)
            .values_list("pk", "crashes", "run_timeout_s")[:BATCH]
        )
        dead = [pk for pk, crashes, _ in rows if crashes + 1 >= max_crashes]
        requeue = [(pk, timeout) for pk, crashes, timeout in rows if crashes + 1 < max_crashes]
        if requeue:
            ActionRun.objects.filter(pk__in=[pk for pk, _ in requeue]).update(
                status=RunStatus.QUEUED,
                crashes=F("crashes") + 1,
                lease_token="",
                lease_expires_at=None,
                dispatched_at=now,
            )
    return requeue, dead
