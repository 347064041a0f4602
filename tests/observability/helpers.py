from __future__ import annotations

from observability import get_observability
from observability.models import Span


def flushed() -> None:
    assert get_observability().flush(timeout=30), "spans were not written in time"


def spans_named(*names: str) -> dict[str, Span]:
    flushed()
    return {s.name: s for s in Span.objects.filter(name__in=names)}


def clean_slate() -> None:
    """Write whatever earlier tests left in the buffer, then start from empty tables."""
    from django.db import OperationalError, transaction

    from observability.models import SpanRollup, Trace

    flushed()
    # A session-wide worker or server may still be upserting rollups for an earlier test's
    # spans; its upserts and this delete can lock rows in opposite orders. Postgres then aborts
    # one of them: retry ours (in a savepoint, so the test's transaction survives).
    for attempt in range(5):
        try:
            with transaction.atomic():
                Span.objects.all()._raw_delete(Span.objects.db)
                Trace.objects.all().delete()
                SpanRollup.objects.all().delete()
            return
        except OperationalError:
            if attempt == 4:
                raise
