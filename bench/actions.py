"""Actions per second end to end: API request to `succeeded`, one worker of 2 processes.

    .venv/bin/python bench/actions.py [--quick] [--runs N]

Client processes (`--clients`, default 4) post `POST /api/runs` with an API token through
Django's full request stack (middleware, token auth, ninja validation, the service, commit,
on-commit publish) with Django's test client (no HTTP socket); a real Celery worker
(prefork, 2 processes) claims, runs (`chaos.flaky` with p_fail=0: the runtime's own cost, not a
handler's), traces and records each run. The clock stops when the last run is `succeeded` in Postgres.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench._common import bench_database, emit, setup_django
from bench._workers import Stack, wait_worker_ready

TARGET = 200


def client(url: str, token: str, n: int, ready: Any, done: Any) -> None:
    setup_django(url)
    from django.test import Client

    http = Client(HTTP_AUTHORIZATION=f"Bearer {token}")
    body = json.dumps({"agent": "chaos", "action": "flaky", "payload": {"p_fail": 0}})
    ready.wait()
    cpu = time.process_time()
    for _ in range(n):
        resp = http.post("/api/runs", body, content_type="application/json")
        assert resp.status_code == 201, resp.content
    done.put((time.perf_counter(), time.process_time() - cpu))


def _worker_cpu_s(stack: Stack) -> float:
    import psutil

    assert stack.worker is not None
    root = psutil.Process(stack.worker.pid)
    total = 0.0
    for proc in [root, *root.children(recursive=True)]:
        try:
            times = proc.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += times.user + times.system
    return total


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="1,500 runs")
    parser.add_argument("--runs", type=int, default=None)
    parser.add_argument("--clients", type=int, default=4)  # enough load generators to keep the worker busy
    args = parser.parse_args()
    n = (args.runs or (1500 if args.quick else 6000)) // args.clients * args.clients
    url = bench_database("aios_bench_actions", fresh=True)
    stack = Stack(url, "actions")
    wall = time.perf_counter()
    try:
        setup_django(url)
        from agents.models import ActionRun
        from aios_site.tokens import token_create
        from tests.factories import make_user

        admin = make_user("admin", username="bench-admin")
        _, token = token_create(user=admin, name="bench", scopes=["read", "write"])
        stack.start_worker(2)
        wait_worker_ready()
        ctx = mp.get_context("spawn")
        ready, done = ctx.Barrier(args.clients + 1), ctx.Queue()
        procs = [
            ctx.Process(target=client, args=(url, token, n // args.clients, ready, done)) for _ in range(args.clients)
        ]
        for p in procs:
            p.start()
        ready.wait()  # clients have set up Django: time only the requests and the runs
        worker_cpu = _worker_cpu_s(stack)
        started = time.perf_counter()
        while ActionRun.objects.filter(status="succeeded").count() < n:
            if time.perf_counter() - started > 600:
                raise RuntimeError("runs did not finish in 10 minutes")
            time.sleep(0.05)
        elapsed = time.perf_counter() - started
        worker_cpu = _worker_cpu_s(stack) - worker_cpu
        reports = [done.get(timeout=60) for _ in procs]
        submitted = max(end for end, _ in reports) - started
        client_cpu = sum(cpu for _, cpu in reports)
        for p in procs:
            p.join()
    finally:
        stack.stop()
    rate = n / elapsed
    print(
        f"{n} runs from {args.clients} clients: submitted in {submitted:.2f} s, all succeeded after "
        f"{elapsed:.2f} s = {rate:.0f} actions/s"
    )
    emit(
        {
            "bench": "actions",
            "runs": n,
            "clients": args.clients,
            "worker_processes": 2,
            "actions_per_s": round(rate, 1),
            "submit_per_s": round(n / submitted, 1),
            # CPU per action: the API side (Django's whole request stack) and the worker (pool and parent)
            "api_cpu_ms_per_action": round(client_cpu / n * 1000, 2),
            "worker_cpu_ms_per_action": round(worker_cpu / n * 1000, 2),
            "load_avg_1m": round(os.getloadavg()[0], 2),
            "wall_s": round(time.perf_counter() - wall, 1),
            "targets": {"actions_per_s": TARGET},
        }
    )


if __name__ == "__main__":
    main()
