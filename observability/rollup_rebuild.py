"""Rebuild rollups from raw spans, in SQL: after a bulk load (benchmarks, imports) or to repair.

The span writer keeps rollups current as it writes; spans loaded around it (COPY straight
into the table) need this. Bins are computed exactly as `observability.histogram` does.
"""

from __future__ import annotations

from datetime import datetime

from django.db import connection, transaction

from observability import histogram
from observability.series import sql_cache_counts, sql_expand

_JOIN, _WHERE = sql_expand("b")
_REBUILD = f"""
WITH binned AS (
    SELECT date_trunc(%(unit)s, started_at) AS bucket, kind, agent, model, provider, status, latency_ms,
           input_tokens, output_tokens, cached_input_tokens, reasoning_tokens, cost_usd, cost_status,
           {sql_cache_counts("observability_span")},
           CASE WHEN latency_ms < %(min)s THEN 0
                WHEN latency_ms >= %(max)s THEN %(last)s
                ELSE least(%(last)s - 1, floor(ln(latency_ms / %(min)s) / ln(%(gamma)s))::int + 1) END AS bin
    FROM observability_span
    WHERE started_at >= date_trunc(%(unit)s, %(since)s::timestamptz) AND started_at < %(until)s
),
expanded AS (
    -- every span counts in each of its series (observability.series)
    SELECT b.bucket, d.kind, d.agent, d.model, d.provider, b.status, b.latency_ms, b.input_tokens, b.output_tokens,
           b.cached_input_tokens, b.reasoning_tokens, b.cost_usd, b.cost_status, b.cache_hit, b.cache_miss, b.bin
    FROM binned b {_JOIN}
    WHERE {_WHERE}
),
series AS (
    SELECT bucket, kind, agent, model, provider, count(*) AS c,
           count(*) FILTER (WHERE status = 'error') AS e, sum(latency_ms) AS l, sum(input_tokens) AS i,
           sum(output_tokens) AS o, sum(cached_input_tokens) AS ci, sum(reasoning_tokens) AS r,
           coalesce(sum(cost_usd), 0) AS cost, count(*) FILTER (WHERE cost_status = 'unknown_model') AS u,
           sum(cache_hit) AS ch, sum(cache_miss) AS cm
    FROM expanded GROUP BY 1, 2, 3, 4, 5
),
bins AS (
    SELECT bucket, kind, agent, model, provider, array_agg(bin ORDER BY bin) AS idx, array_agg(n ORDER BY bin) AS cnt
    FROM (SELECT bucket, kind, agent, model, provider, bin::smallint, count(*)::int AS n FROM expanded
          GROUP BY 1, 2, 3, 4, 5, 6) b
    GROUP BY 1, 2, 3, 4, 5
)
INSERT INTO observability_spanrollup (resolution, bucket, kind, agent, model, provider, count, error_count,
    latency_sum_ms, input_tokens, output_tokens, cached_input_tokens, reasoning_tokens, cost_usd, unknown_cost_count,
    cache_hits, cache_misses, hist_bins, hist_counts)
SELECT %(resolution)s, s.bucket, s.kind, s.agent, s.model, s.provider, s.c, s.e, s.l, s.i, s.o, s.ci, s.r, s.cost, s.u,
       s.ch, s.cm, b.idx, b.cnt
FROM series s JOIN bins b USING (bucket, kind, agent, model, provider)
"""


def rollups_rebuild(*, since: datetime, until: datetime) -> int:
    """Recompute the minute and hour rollups of every bucket that starts in [since, until)."""
    params = {"min": histogram.MIN_MS, "max": histogram.MAX_MS, "last": histogram.N_BINS - 1,
              "gamma": histogram.GAMMA, "since": since, "until": until}  # fmt: skip
    written = 0
    with transaction.atomic(), connection.cursor() as cur:
        for unit, resolution in (("minute", 60), ("hour", 3600)):
            cur.execute(
                "DELETE FROM observability_spanrollup WHERE resolution = %s "
                "AND bucket >= date_trunc(%s, %s::timestamptz) AND bucket < %s",
                [resolution, unit, since, until],
            )
            cur.execute(_REBUILD, {**params, "unit": unit, "resolution": resolution})
            written += cur.rowcount
    return written
