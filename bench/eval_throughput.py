"""Items per second through an eval run with code evaluators, one Celery worker.

    .venv/bin/python bench/eval_throughput.py [--quick]

A dataset of N items (uploaded as JSONL through the service, as the UI does) runs through the
`echo` target and three code evaluators (exact match, contains, regex) as Celery batch tasks on
one worker (2 processes); the clock runs from the run's creation to its last result stored.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench._common import bench_database, emit, setup_django
from bench._workers import Stack, wait_worker_ready

TARGET = 500


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="2,000 items")
    args = parser.parse_args()
    n = 2_000 if args.quick else 20_000
    url = bench_database("aios_bench_eval", fresh=True)
    stack = Stack(url, "eval")
    try:
        setup_django(url)
        from django.db import transaction

        from evaluation.services import dataset_upload, evalrun_create, evaluator_create
        from tests.factories import make_user

        user = make_user("admin", username="bench-eval")
        lines = [json.dumps({"input": f"capital of country {i}", "expected": f"capital of country {i}"})
                 for i in range(n)]  # fmt: skip
        dataset = dataset_upload(name="bench", filename="bench.jsonl", data="\n".join(lines).encode(), user=user)
        evaluators = [
            evaluator_create(name="exact", kind="exact_match", config={}, user=user),
            evaluator_create(name="contains", kind="contains", config={"substring": "capital"}, user=user),
            evaluator_create(name="regex", kind="regex", config={"pattern": r"country \d+"}, user=user),
        ]
        stack.start_worker(2)
        wait_worker_ready()
        started = time.perf_counter()
        with transaction.atomic():
            run = evalrun_create(dataset=dataset, target="echo", evaluators=evaluators, user=user)
        while True:
            run.refresh_from_db()
            if run.status in ("succeeded", "failed", "cancelled"):
                break
            if time.perf_counter() - started > 600:
                raise RuntimeError("the eval run did not finish in 10 minutes")
            time.sleep(0.1)
        elapsed = time.perf_counter() - started
    finally:
        stack.stop()
    rate = run.items_done / elapsed
    print(f"{run.items_done:,} items x 3 code evaluators in {elapsed:.1f} s = {rate:,.0f} items/s ({run.status})")
    emit({"bench": "eval_throughput", "items": run.items_done, "items_per_s": round(rate), "status": run.status,
          "targets": {"items_per_s": TARGET}})  # fmt: skip


if __name__ == "__main__":
    main()
