"""Claims and leases.

A worker owns a run only through a conditional UPDATE that moves it from a claimable status to
`running` with a fresh lease token: two workers (or a redelivered message) racing for one run
see exactly one UPDATE change a row. While the handler runs, a thread renews the lease; every
write of the outcome is conditional on the token, so a worker that lost its lease (it stalled
past expiry and the sweeper gave the run to another) cannot overwrite the newer attempt.
"""

from __future__ import annotations

import functools
import os
import threading
import time
import uuid
from datetime import timedelta
from typing import Any
from uuid import UUID

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from agents.models import CLAIMABLE, ActionRun, RunStatus


def lease_duration() -> timedelta:
    return timedelta(seconds=settings.AIOS_RUN_LEASE_S)


@functools.cache
def _columns() -> tuple[list[Any], str]:
    fields = list(ActionRun._meta.concrete_fields)
    return fields, ", ".join(connection.ops.quote_name(f.column) for f in fields)


def claim_run(run_id: UUID) -> tuple[ActionRun, str] | None:
    """Claim `run_id` for this worker: returns the run and the lease token, or None if someone
    else has it, it is finished, or its retry wait has not passed. One statement: the
    conditional UPDATE returns the claimed row."""
    now = timezone.now()
    token = uuid.uuid4().hex
    fields, columns = _columns()
    with connection.cursor() as cur:
        cur.execute(
            f"UPDATE {ActionRun._meta.db_table} SET status = %s, attempt = attempt + 1, lease_token = %s, "
            "lease_expires_at = %s, next_attempt_at = NULL, started_at = COALESCE(started_at, %s) "
            "WHERE id = %s AND status = ANY(%s) AND (next_attempt_at IS NULL OR next_attempt_at <= %s) "
            # An asynchronous commit: a claim lost to a database crash leaves the run claimable
            # again, which at-least-once execution with idempotent side effects absorbs anyway.
            "AND set_config('synchronous_commit', 'off', true) = 'off' "
            f"RETURNING {columns}",
            [RunStatus.RUNNING, token, now + lease_duration(), now, run_id, [str(s) for s in CLAIMABLE], now],
        )
        row = cur.fetchone()
    if row is None:
        return None
    values = [
        f.from_db_value(v, None, connection) if hasattr(f, "from_db_value") and v is not None else v
        for f, v in zip(fields, row, strict=True)
    ]
    return ActionRun.from_db("default", [f.attname for f in fields], values), token


def concurrency_slot_free(run: ActionRun) -> bool:
    """For actions with max_concurrent: serialized per action by an advisory lock, so two
    claimers cannot both see a free slot."""
    if not run.max_concurrent:
        return True
    with transaction.atomic():
        with connection.cursor() as cur:
            cur.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", [f"agents.{run.agent}.{run.action}"])
        running = ActionRun.objects.filter(agent=run.agent, action=run.action, status=RunStatus.RUNNING).count()
        return running < run.max_concurrent


def record_if_owner(run_id: UUID, token: str, **fields: Any) -> bool:
    """Write the outcome only while we still hold the lease."""
    return ActionRun.objects.filter(pk=run_id, status=RunStatus.RUNNING, lease_token=token).update(**fields) == 1


class _Renewer:
    """One thread per process renews the leases of every attempt running in it, every third
    of the lease, with its own connection."""

    def __init__(self) -> None:
        self._leases: dict[UUID, str] = {}
        self._lock = threading.Lock()
        self._pid: int | None = None
        self.lost: set[UUID] = set()

    def add(self, run_id: UUID, token: str) -> None:
        with self._lock:
            self._leases[run_id] = token
            if self._pid != os.getpid():  # first use in this process (or after a fork)
                self._pid = os.getpid()
                threading.Thread(target=self._loop, name="agents-lease-renewer", daemon=True).start()

    def remove(self, run_id: UUID) -> None:
        with self._lock:
            self._leases.pop(run_id, None)
            self.lost.discard(run_id)

    def _loop(self) -> None:
        while True:
            time.sleep(max(settings.AIOS_RUN_LEASE_S / 3, 0.05))
            with self._lock:
                leases = list(self._leases.items())
            try:
                for run_id, token in leases:
                    renewed = ActionRun.objects.filter(pk=run_id, status=RunStatus.RUNNING, lease_token=token).update(
                        lease_expires_at=timezone.now() + lease_duration()
                    )
                    if not renewed:
                        self.lost.add(run_id)
            except Exception:  # noqa: BLE001 - the database is away: the next round tries again
                connection.close()


renewer = _Renewer()


class LeaseKeeper:
    """Holds the lease of one attempt while its handler runs (renewed by the process's renewer)."""

    def __init__(self, run_id: UUID, token: str) -> None:
        self.run_id, self.token = run_id, token

    def __enter__(self) -> LeaseKeeper:
        renewer.add(self.run_id, self.token)
        return self

    def __exit__(self, *exc: object) -> None:
        renewer.remove(self.run_id)

    @property
    def lost(self) -> bool:
        return self.run_id in renewer.lost
