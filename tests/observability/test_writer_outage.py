"""The span buffer survives a database outage: a private embedded Postgres is stopped and
started again (never the shared server)."""

from __future__ import annotations

import shutil
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import psycopg
import pytest
from django.conf import settings
from django.db import connections
from django.db.backends.postgresql.base import DatabaseWrapper

from aios_core import embedded
from observability.models import ModelPrice, Span, SpanRollup, Trace
from observability.pricing import bump_price_version
from observability.tracing import Span as OpenSpan
from observability.writer import SpanWriter

pytestmark = pytest.mark.django_db
HIST_MERGE_SQL = (
    "CREATE FUNCTION aios_hist_merge(ab smallint[], ac int[], bb smallint[], bc int[], OUT bins smallint[], "
    "OUT counts int[]) LANGUAGE sql IMMUTABLE AS $$ SELECT array_agg(bin ORDER BY bin), array_agg(n ORDER BY bin) "
    "FROM (SELECT bin, sum(n)::int AS n FROM (SELECT * FROM unnest(ab, ac) AS a(bin, n) UNION ALL "
    "SELECT * FROM unnest(bb, bc) AS b(bin, n)) u GROUP BY bin) s $$"
)


def _django_settings(url: str, data_dir: Any) -> dict[str, Any]:
    db = {**_settings_for(url), "TIME_ZONE": None, "CONN_MAX_AGE": 0, "CONN_HEALTH_CHECKS": False}
    return {**db, "AUTOCOMMIT": True, "ATOMIC_REQUESTS": False, "OPTIONS": {"host": str(data_dir)}}


@pytest.fixture
def private_postgres() -> Iterator[tuple[Any, str]]:
    data_dir = settings.VAR_DIR / f"po-{uuid.uuid4().hex[:6]}"
    url = embedded.postgres_url(data_dir)
    wrapper = DatabaseWrapper(_django_settings(url, data_dir))
    with wrapper.schema_editor() as editor:
        for model in (Trace, Span, SpanRollup, ModelPrice):
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


def _add_price(url: str, usd_per_mtok: str, effective_from: datetime) -> None:
    with psycopg.connect(url) as conn:
        conn.execute(
            "INSERT INTO observability_modelprice (provider, pattern, display_name, input_per_mtok, output_per_mtok, "
            "effective_from, priority, notes) VALUES ('openai', 'outage-model', '', %s, %s, %s, 0, '')",
            [Decimal(usd_per_mtok), Decimal(usd_per_mtok), effective_from],
        )
    bump_price_version()


def _costs(url: str) -> dict[Decimal | None, int]:
    with psycopg.connect(url) as conn:
        rows = conn.execute("SELECT cost_usd, count(*) FROM observability_span GROUP BY cost_usd").fetchall()
    return dict(rows)


def test_a_price_changed_after_an_outage_prices_the_spans_written_after_it(  # type: ignore[no-untyped-def]
    private_postgres: tuple[Any, str], monkeypatch
) -> None:
    data_dir, url = private_postgres
    monkeypatch.setattr("observability.writer._connect", lambda: psycopg.connect(url))
    # As in production, Django's connections of new threads (the writer's) reach the same server,
    # so it goes away and comes back for them too.
    monkeypatch.setitem(connections.settings, "default", {**connections.settings["default"],
                                                          **_django_settings(url, data_dir)})  # fmt: skip
    _add_price(url, "1", datetime(2020, 1, 1, tzinfo=UTC))
    writer = SpanWriter(max_spans=10_000, flush_interval_s=0.05, batch_size=100)

    def emit(n: int) -> None:
        for _ in range(n):
            span = OpenSpan(writer, "chat", "llm", "", None)
            span.set_tokens(input_tokens=1_000_000, output_tokens=0, model="outage-model", provider="openai")
            span.end()

    emit(50)
    assert writer.flush(timeout=20)
    embedded.postgres_stop(data_dir)
    emit(300)  # started before the new price: priced at $1 even though they are written later
    assert not writer.flush(timeout=2)

    embedded.postgres_url(data_dir)
    _add_price(url, "3", datetime.now(UTC))  # the price changes right after the restart
    time.sleep(0.01)
    emit(100)
    assert writer.flush(timeout=30), "the writer could not reload prices after the restart"
    assert _costs(url) == {Decimal(1): 350, Decimal(3): 100}
    writer.close()


def test_an_outage_is_retried_on_the_backoff_schedule_not_on_every_new_span(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    attempts: list[float] = []

    def refuse() -> Any:
        attempts.append(time.monotonic())
        raise psycopg.OperationalError("database is down")

    monkeypatch.setattr("observability.writer._connect", refuse)
    writer = SpanWriter(max_spans=100_000, flush_interval_s=0.05, batch_size=10)
    deadline = time.monotonic() + 1.6
    while time.monotonic() < deadline:  # spans keep coming, many batches' worth
        OpenSpan(writer, "op", "internal", "", None).end()
        time.sleep(0.001)
    writer._stopping = True
    writer._wake.set()
    # backoff 0.5 s, then 1 s: three tries in 1.6 s (a tight loop made hundreds)
    assert 2 <= len(attempts) <= 4, len(attempts)
