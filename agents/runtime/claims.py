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
from django.db.models import BooleanField
from django.db.models.expressions import RawSQL
from django.utils import timezone

from agents.models import CLAIMABLE, ActionRun, RunStatus


def lease_duration() -> timedelta:
    return timedelta(seconds=settings.AIOS_RUN_LEASE_S)


@functools.cache
def _columns() -> tuple[list[Any], str]:
    fields = list(ActionRun._meta.concrete_fields)
    return fields, ", ".join(connection.ops.quote_name(f.column) for f in fields)


_CLAIM_SET = (
    "SET status = %s, attempt = attempt + 1, lease_token = %s, lease_expires_at = %s, "
    "next_attempt_at = NULL, started_at = COALESCE(started_at, %s) "
)
# An asynchronous commit: a claim lost to a database crash leaves the run claimable again, which
# at-least-once execution with idempotent side effects absorbs anyway.
_ASYNC_COMMIT = "AND set_config('synchronous_commit', 'off', true) = 'off' "
_DUE = "status = ANY(%s) AND (next_attempt_at IS NULL OR next_attempt_at <= %s) "


def _claimed(row: Any) -> ActionRun | None:
    if row is None:
        return None
    fields, _ = _columns()
    values = [
        f.from_db_value(v, None, connection) if hasattr(f, "from_db_value") and v is not None else v
        for f, v in zip(fields, row, strict=True)
    ]
    return ActionRun.from_db("default", [f.attname for f in fields], values)


def claim_run(run_id: UUID, *, unless_action_in: list[str] | None = None) -> tuple[ActionRun, str] | None:
    """Claim `run_id` for this worker: returns the run and the lease token, or None if someone
    else has it, it is finished, its retry wait has not passed, or its action ("agent.action")
    is in `unless_action_in`. One statement: the conditional UPDATE returns the claimed row."""
    now = timezone.now()
    token = uuid.uuid4().hex
    _, columns = _columns()
    with connection.cursor() as cur:
        cur.execute(
            f"UPDATE {ActionRun._meta.db_table} {_CLAIM_SET}WHERE id = %s AND {_DUE}"
            "AND NOT (agent || '.' || action = ANY(%s)) "
            f"{_ASYNC_COMMIT}RETURNING {columns}",
            [RunStatus.RUNNING, token, now + lease_duration(), now, run_id, _claimable(), now, unless_action_in or []],
        )
        run = _claimed(cur.fetchone())
    return (run, token) if run is not None else None


def claim_next(*, skip_actions: list[str], max_timeout_s: float) -> tuple[ActionRun, str] | None:
    """Claim the oldest due run (ids are time-ordered) that no one else is claiming (SKIP LOCKED),
    leaving out actions in `skip_actions` and runs whose timeout exceeds `max_timeout_s`: those
    are sent messages of their own. The outer WHERE re-checks the status, so a run that changed
    between the subquery and the update is not taken."""
    now = timezone.now()
    token = uuid.uuid4().hex
    _, columns = _columns()
    table = ActionRun._meta.db_table
    due = [_claimable(), now]
    with connection.cursor() as cur:
        cur.execute(
            f"UPDATE {table} {_CLAIM_SET}WHERE id = (SELECT id FROM {table} WHERE {_DUE}"
            "AND run_timeout_s <= %s AND NOT (agent || '.' || action = ANY(%s)) "
            f"ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED) AND {_DUE}{_ASYNC_COMMIT}RETURNING {columns}",
            [RunStatus.RUNNING, token, now + lease_duration(), now, *due, max_timeout_s, skip_actions, *due],
        )
        run = _claimed(cur.fetchone())
    return (run, token) if run is not None else None


def _claimable() -> list[str]:
    return [str(s) for s in CLAIMABLE]


def claim_within_limit(run_id: UUID, limit: int) -> tuple[ActionRun, str] | str | None:
    """Claim a run of an action with at most `limit` concurrent runs: under a per-action advisory
    lock held to commit, count the running ones and claim only if a slot is free, so two claimers
    can never both take the last slot. Returns the claim, "full", or None (nothing to claim)."""
    with transaction.atomic():
        row = ActionRun.objects.filter(pk=run_id).values_list("agent", "action").first()
        if row is None:
            return None
        agent, action = row
        with connection.cursor() as cur:
            cur.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", [f"agents.{agent}.{action}"])
        running = ActionRun.objects.filter(agent=agent, action=action, status=RunStatus.RUNNING).count()
        if running >= limit:
            return "full" if ActionRun.objects.filter(pk=run_id, status__in=CLAIMABLE).exists() else None
        return claim_run(run_id)


def record_if_owner(run_id: UUID, token: str, *, async_commit: bool = False, **fields: Any) -> bool:
    """Write the outcome only while we still hold the lease. `async_commit`: in autocommit, this
    statement's own commit does not wait for the WAL flush (see services._async_commit)."""
    rows = ActionRun.objects.filter(pk=run_id, status=RunStatus.RUNNING, lease_token=token)
    if async_commit:
        rows = rows.filter(RawSQL(_ASYNC_COMMIT.removeprefix("AND "), [], output_field=BooleanField()))
    return rows.update(**fields) == 1


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
