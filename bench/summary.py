"""`get_metrics_summary` over the last 24 h with 1,000,000 and 10,000,000 spans in the table.

    .venv/bin/python bench/summary.py [--quick]

Spans are generated inside Postgres (INSERT ... SELECT over generate_series: faster than any
client-side COPY), spread over the last 24 h across 8 agents x 6 models x 3 kinds with
log-normal latencies and 2% errors; rollups are rebuilt from them in SQL, as the span writer
would have kept them. Then the summary is called 40 times and its P50/P95 reported, beside one
exact (raw-scan) summary for comparison. --quick: 1M spans only.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench._common import bench_database, emit, setup_django

TARGETS = {"p95_ms_1m": 100, "p95_ms_10m": 300}

GENERATE = """
INSERT INTO observability_span (span_id, trace_id, parent_span_id, name, kind, agent, provider, model, status,
    started_at, ended_at, latency_ms, input_tokens, output_tokens, cached_input_tokens, reasoning_tokens, cost_usd,
    cost_status, error_type, error_message, error_stack, attributes, username, api_token)
SELECT (random() * 9e18)::bigint, gen_random_uuid(), NULL, 'bench.op', kind, agent, 'openai', model,
       CASE WHEN random() < 0.02 THEN 'error' ELSE 'ok' END, ts, ts + make_interval(secs => ms / 1000), ms,
       1000, 200, 100, 0, 0.0005, 'priced', '', '', '', '{}'::jsonb, '', ''
FROM (
    -- volatile expressions in a select list are evaluated per row (a LATERAL would run once)
    SELECT now() - random() * interval '24 hours' AS ts,
           (ARRAY['security','kernel','networking','storage','application','scalability','orchestration',
                  'chaos'])[1 + floor(random() * 8)::int] AS agent,
           (ARRAY['gpt-4o','gpt-4o-mini','claude-3-5-sonnet-20241022','gemini-1.5-flash','sim/simple',
                  'sim/complex'])[1 + floor(random() * 6)::int] AS model,
           (ARRAY['llm','action','route'])[1 + floor(random() * 3)::int] AS kind,
           exp(5.5 + 0.9 * sqrt(-2 * ln(1 - random())) * cos(2 * pi() * random())) AS ms
    FROM generate_series(1, %(n)s) AS g
) AS s
"""


def add_spans(n: int) -> float:
    from django.db import connection

    started = time.perf_counter()
    with connection.cursor() as cur:
        cur.execute(GENERATE, {"n": n})
    return time.perf_counter() - started


def rebuild() -> float:
    from django.db import connection
    from django.utils import timezone

    from observability.rollup_rebuild import rollups_rebuild

    started = time.perf_counter()
    rollups_rebuild(since=timezone.now() - timedelta(hours=25), until=timezone.now() + timedelta(hours=1))
    with connection.cursor() as cur:
        cur.execute("ANALYZE observability_span; ANALYZE observability_spanrollup")
    return time.perf_counter() - started


def measure(label: str, runs: int = 40) -> dict[str, float]:
    from observability import get_observability

    obs = get_observability()
    obs.get_metrics_summary(timedelta(hours=24))  # warm: connection, caches
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        result = obs.get_metrics_summary(timedelta(hours=24))
        times.append((time.perf_counter() - t) * 1000)
    times.sort()
    p50, p95 = statistics.median(times), times[int(0.95 * (len(times) - 1))]
    t = time.perf_counter()
    exact = obs.get_metrics_summary(timedelta(hours=24), exact=True)
    exact_ms = (time.perf_counter() - t) * 1000
    s, e = result["summary"], exact["summary"]
    err = abs(s["p95_latency_ms"] - e["p95_latency_ms"]) / e["p95_latency_ms"]
    print(f"{label}: {s['total_calls']:,} calls in 24 h; summary from rollups P50 {p50:.1f} ms, P95 {p95:.1f} ms; "
          f"exact raw scan {exact_ms:.0f} ms; P95 latency {s['p95_latency_ms']:.1f} vs exact {e['p95_latency_ms']:.1f} "
          f"({err:.2%} apart)")  # fmt: skip
    return {"p50": p50, "p95": p95, "exact_ms": exact_ms, "p95_relative_error": err}


def figures(m: dict[str, float], size: str) -> dict[str, float]:
    return {
        f"p50_ms_{size}": round(m["p50"], 1),
        f"p95_ms_{size}": round(m["p95"], 1),
        f"exact_scan_ms_{size}": round(m["exact_ms"]),
        f"p95_latency_relative_error_{size}": round(m["p95_relative_error"], 4),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="1M spans only")
    args = parser.parse_args()
    url = bench_database("aios_bench_summary", fresh=True)
    setup_django(url)
    gen = add_spans(1_000_000)
    print(f"generated 1,000,000 spans in {gen:.1f} s; rollups rebuilt in {rebuild():.1f} s")
    one = measure("1M spans")
    out = {"bench": "summary", **figures(one, "1m")}
    if not args.quick:
        for _ in range(9):
            add_spans(1_000_000)
        print(f"generated 9,000,000 more spans; rollups rebuilt in {rebuild():.1f} s")
        ten = measure("10M spans")
        out.update(figures(ten, "10m"))
    out["targets"] = TARGETS if not args.quick else {"p95_ms_1m": TARGETS["p95_ms_1m"]}
    emit(out)


if __name__ == "__main__":
    main()
