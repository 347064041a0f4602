"""Spans per second sustained into Postgres through `trace_span`, with 1 and 2 processes.

    .venv/bin/python bench/ingest.py [--quick] [--spans N]

Each process opens traces of 5 spans (a root and 4 children, an LLM call among them with
tokens and a price) through the public API; the clock stops when the last span is *stored*
(counted in Postgres), not when it was handed to the buffer. Default 200,000 spans per run.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench._common import bench_database, emit, setup_django

TARGET = 20_000
SPANS_PER_TRACE = 5


def produce(url: str, n_spans: int, ready: mp.Barrier) -> None:  # type: ignore[type-arg]
    setup_django(url)
    from observability import get_observability

    obs = get_observability()
    ready.wait()
    for i in range(n_spans // SPANS_PER_TRACE):
        with obs.trace_span("agent.action", agent_name=("security", "kernel", "storage")[i % 3], kind="action"):
            with obs.trace_span("route", kind="route"):
                pass
            with obs.trace_span("llm.call", kind="llm") as llm:
                llm.set_tokens(input_tokens=1200, output_tokens=300, cached_input_tokens=200,
                               model=("gpt-4o-mini", "gpt-4o")[i % 2], provider="openai")  # fmt: skip
            with obs.trace_span("tool.exec", kind="tool"):
                pass
            with obs.trace_span("validate", kind="internal"):
                pass
    assert obs.flush(timeout=300)


def stored(url: str) -> int:
    import psycopg

    with psycopg.connect(url) as conn:
        return conn.execute("SELECT count(*) FROM observability_span").fetchone()[0]


def run(url: str, processes: int, total: int) -> float:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("TRUNCATE observability_span, observability_trace, observability_spanrollup")
    ctx = mp.get_context("spawn")
    ready = ctx.Barrier(processes + 1)
    procs = [ctx.Process(target=produce, args=(url, total // processes, ready)) for _ in range(processes)]
    for p in procs:
        p.start()
    ready.wait()  # processes have set up Django: time only the spans
    started = time.perf_counter()
    expected = (total // processes // SPANS_PER_TRACE) * SPANS_PER_TRACE * processes
    while stored(url) < expected:
        time.sleep(0.05)
        if not any(p.is_alive() for p in procs) and stored(url) < expected:
            raise RuntimeError(f"producers exited with {stored(url)} of {expected} spans stored")
    elapsed = time.perf_counter() - started
    for p in procs:
        p.join()
    rate = expected / elapsed
    print(f"{processes} process(es): {expected:,} spans stored in {elapsed:.2f} s = {rate:,.0f} spans/s")
    return rate


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="50,000 spans per run")
    parser.add_argument("--spans", type=int, default=None)
    args = parser.parse_args()
    total = args.spans or (50_000 if args.quick else 200_000)
    url = bench_database("aios_bench_ingest", fresh=True)
    one = run(url, 1, total)
    two = run(url, 2, total)
    emit({"bench": "ingest", "spans": total, "spans_per_s": round(one), "spans_per_s_2proc": round(two),
          "targets": {"spans_per_s": TARGET}})  # fmt: skip


if __name__ == "__main__":
    main()
