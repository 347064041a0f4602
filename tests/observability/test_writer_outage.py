"""The span buffer survives a database outage: a private embedded Postgres is stopped and
started again (never the shared server)."""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from django.conf import settings
from django.db.backends.postgresql.base import DatabaseWrapper

from aios_core import embedded
from observability.models import Span, SpanRollup, Trace
from observability.tracing import Span as OpenSpan
from observability.writer import SpanWriter

pytestmark = pytest.mark.django_db
HIST_MERGE_SQL = (
    "CREATE FUNCTION aios_hist_merge(ab smallint[], ac int[], bb smallint[], bc int[], OUT bins smallint[], "
    "OUT counts int[]) LANGUAGE sql IMMUTABLE AS $$ SELECT array_agg(bin ORDER BY bin), array_agg(n ORDER BY bin) "
    "FROM (SELECT bin, sum(n)::int AS n FROM (SELECT * FROM unnest(ab, ac) AS a(bin, n) UNION ALL "
    "SELECT * FROM unnest(bb, bc) AS b(bin, n)) u GROUP BY bin) s $$"
)


@pytest.fixture
def private_postgres() -> Iterator[tuple[Any, str]]:
    data_dir = settings.VAR_DIR / f"po-{uuid.uuid4().hex[:6]}"
    url = embedded.postgres_url(data_dir)
    db = {**_settings_for(url), "TIME_ZONE": None, "CONN_MAX_AGE": 0, "CONN_HEALTH_CHECKS": False}
    wrapper = DatabaseWrapper({**db, "AUTOCOMMIT": True, "ATOMIC_REQUESTS": False, "OPTIONS": {"host": str(data_dir)}})
    with wrapper.schema_editor() as editor:
        for model in (Trace, Span, SpanRollup):
            editor.create_model(model)
        editor.execute(HIST_MERGE_SQL)
    wrapper.close()
    yield data_dir, url
    embedded.postgres_stop(data_dir)
    shutil.rmtree(data_dir, ignore_errors=True)


def _settings_for(url: str) -> dict[str, Any]:
    import environ

    return environ.Env.db_url_config(url)


def count(url: str) -> int:
    with psycopg.connect(url) as conn:
        return conn.execute("SELECT count(*) FROM observability_span").fetchone()[0]


def test_spans_written_during_an_outage_arrive_after_it(private_postgres: tuple[Any, str], monkeypatch) -> None:  # type: ignore[no-untyped-def]
    data_dir, url = private_postgres
    monkeypatch.setattr("observability.writer._connect", lambda: psycopg.connect(url))
    writer = SpanWriter(max_spans=10_000, flush_interval_s=0.05, batch_size=100)

    def emit(n: int) -> None:
        for _ in range(n):
            OpenSpan(writer, "op", "internal", "", None).end()

    emit(50)
    assert writer.flush(timeout=20)
    assert count(url) == 50

    embedded.postgres_stop(data_dir)
    emit(300)
    assert not writer.flush(timeout=2)  # nothing can be written now...
    assert writer.pending == 300  # ...and nothing is lost

    embedded.postgres_url(data_dir)  # the database comes back
    assert writer.flush(timeout=30)
    assert count(url) == 350
    assert writer.dropped == 0
    writer.close()


def test_a_full_buffer_drops_new_spans_and_counts_them(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    def refuse() -> Any:
        raise psycopg.OperationalError("database is down")

    monkeypatch.setattr("observability.writer._connect", refuse)
    writer = SpanWriter(max_spans=100, flush_interval_s=0.05, batch_size=10)
    for _ in range(150):
        OpenSpan(writer, "op", "internal", "", None).end()
    writer.flush(timeout=1)
    assert writer.pending == 100
    assert writer.dropped == 50
    writer._stopping = True
