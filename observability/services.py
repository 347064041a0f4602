"""Observability writes: prices (audited), cost recomputation (audited), retention, attributes merged into spans."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.forms.models import model_to_dict
from django.utils import timezone

from observability.audit import audit_append
from observability.models import ModelPrice
from observability.pricing import PriceTable, bump_price_version, compile_pattern, cost_of
from observability.series import sql_expand

PRICE_FIELDS = ("provider", "pattern", "display_name", "input_per_mtok", "output_per_mtok", "cached_input_per_mtok",
                "effective_from", "priority", "notes")  # fmt: skip


def price_validate(*, pattern: str, input_per_mtok: Any, output_per_mtok: Any, cached_input_per_mtok: Any) -> None:
    errors: dict[str, str] = {}
    try:
        compile_pattern(pattern)
    except re.error as exc:
        errors["pattern"] = f"Not a valid regular expression: {exc}"
    for field, value in (("input_per_mtok", input_per_mtok), ("output_per_mtok", output_per_mtok),
                         ("cached_input_per_mtok", cached_input_per_mtok)):  # fmt: skip
        if value is not None and Decimal(value) < 0:
            errors[field] = "Prices cannot be negative."
    if errors:
        raise ValidationError(errors)


def _snapshot(price: ModelPrice) -> dict[str, Any]:
    return {k: str(v) if v is not None else None for k, v in model_to_dict(price, fields=PRICE_FIELDS).items()}


def price_save(*, price: ModelPrice, actor: Any) -> ModelPrice:
    """Create or change a price row, audited. Recorded span costs are not touched."""
    price_validate(pattern=price.pattern, input_per_mtok=price.input_per_mtok, output_per_mtok=price.output_per_mtok,
                   cached_input_per_mtok=price.cached_input_per_mtok)  # fmt: skip
    with transaction.atomic():
        before = _snapshot(ModelPrice.objects.get(pk=price.pk)) if price.pk else None
        price.save()
        price.refresh_from_db()  # what the database holds (decimal places), not the form's values
        after = _snapshot(price)
        changes = {k: [before[k], v] for k, v in after.items() if before and before[k] != v}
        audit_append(
            action="price.changed" if before else "price.created", object_type="model_price", object_id=price.pk,
            data={"price": after, "changes": changes} if before else {"price": after}, actor=actor,
        )  # fmt: skip
        transaction.on_commit(bump_price_version)
    return price


def price_delete(*, price: ModelPrice, actor: Any) -> None:
    with transaction.atomic():
        audit_append(action="price.deleted", object_type="model_price", object_id=price.pk,
                     data={"price": _snapshot(price)}, actor=actor)  # fmt: skip
        price.delete()
        transaction.on_commit(bump_price_version)


# Re-price spans (their new cost and status computed in Python by the price rule) and move
# every rollup row they count in by exactly the change, in one statement: rollups of spans
# already past retention are left as they were.
_EXPAND, _EXPAND_WHERE = sql_expand("c")
_REPRICE = f"""
WITH v AS (
    SELECT * FROM unnest(%(ids)s::bigint[], %(costs)s::numeric[], %(statuses)s::text[], %(d_costs)s::numeric[],
                         %(d_unknown)s::int[]) AS v(id, cost, status, d_cost, d_unknown)
), c AS (
    UPDATE observability_span s SET cost_usd = v.cost, cost_status = v.status
    FROM v WHERE s.id = v.id
    RETURNING s.started_at, s.kind, s.agent, s.model, s.provider, v.d_cost, v.d_unknown
), deltas AS (
    SELECT r.resolution, date_trunc(r.unit, c.started_at) AS bucket, d.kind, d.agent, d.model, d.provider,
           sum(c.d_cost) AS d_cost, sum(c.d_unknown) AS d_unknown
    FROM c
    CROSS JOIN (VALUES (60, 'minute'), (3600, 'hour')) AS r(resolution, unit)
    {_EXPAND}
    WHERE {_EXPAND_WHERE}
    GROUP BY 1, 2, 3, 4, 5, 6
)
UPDATE observability_spanrollup r
SET cost_usd = r.cost_usd + deltas.d_cost, unknown_cost_count = r.unknown_cost_count + deltas.d_unknown
FROM deltas
WHERE r.resolution = deltas.resolution AND r.bucket = deltas.bucket AND r.kind = deltas.kind
  AND r.agent = deltas.agent AND r.model = deltas.model AND r.provider = deltas.provider
"""

_REFRESH_TRACES = """
UPDATE observability_trace t SET cost_usd = s.cost
FROM (SELECT trace_id, coalesce(sum(cost_usd), 0) AS cost FROM observability_span
      WHERE trace_id IN (SELECT DISTINCT trace_id FROM observability_span WHERE id = ANY(%(ids)s))
      GROUP BY trace_id) s
WHERE t.trace_id = s.trace_id
"""

_SPANS_TO_REPRICE = """
SELECT id, model, provider, started_at, input_tokens, output_tokens, cached_input_tokens, cost_usd, cost_status
FROM observability_span
WHERE model = ANY(%s) AND started_at >= %s AND (input_tokens > 0 OR output_tokens > 0)
ORDER BY id
FOR UPDATE
"""
REPRICE_CHUNK = 5000


def _reprice(table: PriceTable, row: tuple[Any, ...]) -> tuple[Decimal | None, str]:
    _, model, provider, started_at, inp, outp, cached, _, _ = row
    price = table.price_for(model, started_at, provider)
    cost = cost_of(price, input_tokens=inp, output_tokens=outp, cached_input_tokens=cached)
    return cost.usd, cost.status


def _apply_reprices(changes: list[tuple[int, Decimal | None, str, Decimal, int]]) -> None:
    ids, costs, statuses, d_costs, d_unknown = (list(col) for col in zip(*changes, strict=True))
    params = {"ids": ids, "costs": costs, "statuses": statuses, "d_costs": d_costs, "d_unknown": d_unknown}
    with connection.cursor() as cur:
        cur.execute(_REPRICE, params)
        cur.execute(_REFRESH_TRACES, params)


def costs_recompute(*, price: ModelPrice, since: datetime, actor: Any) -> dict[str, Any]:
    """Re-price the recorded spans of the models `price` matches, from `since`, by the normal
    rule: each span gets the price in effect at its start (highest priority, then newest
    effective_from, its provider's rows first), from the table as it is now. Rollups and trace
    totals follow. The only path that rewrites recorded costs: audited."""
    regex = compile_pattern(price.pattern)
    with connection.cursor() as cur:
        cur.execute("SELECT DISTINCT model FROM observability_span WHERE started_at >= %s AND model <> ''", [since])
        models = sorted(m for (m,) in cur.fetchall() if regex.fullmatch(m))
    table = PriceTable.snapshot()
    checked = updated = 0
    with transaction.atomic():
        if models:
            with connection.chunked_cursor() as cur:  # server-side: millions of spans never sit in memory
                cur.execute(_SPANS_TO_REPRICE, [models, since])
                while rows := cur.fetchmany(REPRICE_CHUNK):
                    changes = []
                    for row in rows:
                        cost, status = _reprice(table, row)
                        old_cost, old_status = row[7], row[8]
                        if cost != old_cost or status != old_status:
                            d_unknown = (status == "unknown_model") - (old_status == "unknown_model")
                            changes.append((row[0], cost, status, (cost or 0) - (old_cost or 0), d_unknown))
                    checked += len(rows)
                    if changes:
                        _apply_reprices(changes)
                        updated += len(changes)
        result = {"price_id": price.pk, "pattern": price.pattern, "since": since.isoformat(), "models": models,
                  "spans_checked": checked, "spans_updated": updated}  # fmt: skip
        audit_append(action="price.costs_recomputed", object_type="model_price", object_id=price.pk, data=result,
                     actor=actor)  # fmt: skip
    return result


def _delete_in_batches(sql: str, params: list[Any], batch: int = 10_000) -> int:
    total = 0
    while True:
        with transaction.atomic(), connection.cursor() as cur:
            cur.execute(sql, [*params, batch])
            total += cur.rowcount
            if cur.rowcount < batch:
                return total


def spans_delete_expired(*, now: datetime | None = None) -> dict[str, int]:
    """Retention: spans and traces older than AIOS_SPAN_RETENTION_DAYS; minute rollups after
    8 days (the longest dashboard window is 7), hour rollups after 400 days. Batched, so
    no transaction holds locks for long."""
    now = now or timezone.now()
    span_cutoff = now - timedelta(days=settings.AIOS_SPAN_RETENTION_DAYS)
    return {
        "spans": _delete_in_batches(
            "DELETE FROM observability_span WHERE id IN "
            "(SELECT id FROM observability_span WHERE started_at < %s LIMIT %s)", [span_cutoff]),
        "traces": _delete_in_batches(
            "DELETE FROM observability_trace WHERE trace_id IN "
            "(SELECT trace_id FROM observability_trace WHERE started_at < %s LIMIT %s)", [span_cutoff]),
        "rollups": _delete_in_batches(
            "DELETE FROM observability_spanrollup WHERE id IN (SELECT id FROM observability_spanrollup WHERE "
            "(resolution = 60 AND bucket < %s) OR (resolution = 3600 AND bucket < %s) LIMIT %s)",
            [now - timedelta(days=8), now - timedelta(days=400)]),
    }  # fmt: skip


def span_attributes_merge(*, updates: Sequence[tuple[UUID, int, dict[str, Any]]]) -> int:
    """Merge attributes into existing spans (the JSON objects are combined; given keys win), e.g. the scores
    other apps give a span, so the trace page shows them. One statement for the whole list; spans that are gone
    (retention) are skipped. Returns how many spans changed."""
    if not updates:
        return 0
    with connection.cursor() as cur:
        cur.execute(
            "UPDATE observability_span AS s SET attributes = s.attributes || v.attrs "
            "FROM (SELECT unnest(%s::uuid[]) AS trace_id, unnest(%s::bigint[]) AS span_id, "
            "unnest(%s::jsonb[]) AS attrs) AS v "
            "WHERE s.trace_id = v.trace_id AND s.span_id = v.span_id",
            [[u[0] for u in updates], [u[1] for u in updates], [json.dumps(u[2], default=str) for u in updates]],
        )
        return cur.rowcount
