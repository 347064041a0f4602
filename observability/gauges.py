"""Gauges /metrics reads at scrape time (state shared by all processes lives in the database)."""

from __future__ import annotations

from collections.abc import Iterable

from observability.prometheus import register_db_gauge


def _unpriced_models() -> Iterable[tuple[dict[str, str], float]]:
    from django.db import connection

    with connection.cursor() as cur:
        cur.execute("SELECT model, count(*) FROM observability_span WHERE cost_status = 'unknown_model' GROUP BY model")
        for model, n in cur.fetchall():
            yield {"model": model}, float(n)


register_db_gauge(
    "aios_spans_unpriced", "Recorded spans whose model has no price (cost unknown)", ["model"], _unpriced_models
)
