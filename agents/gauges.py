"""Action-run queue depths for /metrics, read from the database at scrape time (the state is
shared by every process, so no process's counters could say it)."""

from __future__ import annotations

from collections.abc import Iterable

from observability.prometheus import register_db_gauge

WAITING = ("queued", "retrying", "awaiting_approval", "running")


def _runs_by_status() -> Iterable[tuple[dict[str, str], float]]:
    from django.db.models import Count

    from agents.models import ActionRun

    counts = dict(ActionRun.objects.filter(status__in=WAITING).values_list("status").annotate(n=Count("id")))
    for status in WAITING:  # every status, zeros included: alerts compare against 0
        yield {"status": status}, float(counts.get(status, 0))


def register() -> None:
    register_db_gauge("aios_action_runs", "Action runs waiting or in progress, by status", ["status"], _runs_by_status)
