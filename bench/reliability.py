"""Reliability of the action runtime under transient faults, worker kills and broker restarts.

    .venv/bin/python bench/reliability.py [--quick] [--workflows N] [--runs N] [--kills N]

(a) N workflows (default 2,000) of 20 `chaos.flaky` steps failing transiently 5% of the time,
    at the default policy (3 attempts, backoff 1 s doubling, jittered). A workflow counts only if
    every step succeeded. Every failed step must be explained by exhausted retries.
(b) N runs (default 1,000) of `chaos.effect` (a side effect idempotent by the run's key, acting
    then sleeping, so kills land between acting and recording) while the worker's whole process
    group is SIGKILLed K times (default 10) and restarted, and the broker (Redis, no persistence:
    queued messages are lost) is restarted twice. Side effects are counted by key in the
    sandbox's effect log (one line per change actually made; the ledger makes them idempotent),
    not taken from run statuses: a key with two lines is a duplicated side effect. The clock
    for each run orphaned by a kill runs from the kill to the run's completion; defaults are
    used (30 s lease, 15 s sweeper, 30 s redispatch).

A real worker (prefork, 2 processes) and a real beat run on a private database and Redis.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import sys
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench._common import bench_database, emit, setup_django
from bench._workers import Stack, wait_worker_ready

STEPS = 20
TARGETS = {
    "step_success_rate": 0.9998,
    "workflow_success_rate": 0.995,
    "lost": 0,
    "duplicated": 0,
    "kill_to_done_p99_s": 90,
}


def _wait_terminal(model: Any, ids: list[Any], terminal: Any, deadline_s: float) -> None:
    started = time.monotonic()
    while model.objects.filter(pk__in=ids).exclude(status__in=terminal).exists():
        if time.monotonic() - started > deadline_s:
            return
        time.sleep(0.5)


def part_a(n_workflows: int) -> dict[str, Any]:
    from agents.models import WORKFLOW_TERMINAL, ActionRun, WorkflowRun
    from agents.services import workflow_start

    step = {"agent": "chaos", "action": "flaky", "payload": {"p_fail": 0.05}, "critical": False}
    started = time.perf_counter()
    ids = [workflow_start(user=None, steps=[step] * STEPS).pk for _ in range(n_workflows)]
    _wait_terminal(WorkflowRun, ids, list(WORKFLOW_TERMINAL), deadline_s=3600)
    elapsed = time.perf_counter() - started
    runs = ActionRun.objects.filter(workflow_id__in=ids)
    total = runs.count()
    succeeded = runs.filter(status="succeeded").count()
    failed = runs.filter(status="failed")
    explained = failed.filter(error_class="retryable", attempt=3).count()
    not_terminal = runs.exclude(status__in=["succeeded", "failed"]).count()
    wf_ok = WorkflowRun.objects.filter(pk__in=ids, status="succeeded").count()
    attempts = sum(runs.values_list("attempt", flat=True))
    print(
        f"(a) {n_workflows} workflows x {STEPS} steps in {elapsed:.0f} s: {succeeded}/{total} steps, "
        f"{wf_ok} workflows succeeded; {failed.count()} failed steps ({explained} by exhausted retries); "
        f"{attempts} attempts"
    )
    return {
        "workflows": n_workflows,
        "steps": total,
        "step_success_rate": round(succeeded / max(total, 1), 6),
        "workflow_success_rate": round(wf_ok / n_workflows, 5),
        "failed_steps": failed.count(),
        "failed_explained_by_exhausted_retries": explained,
        "steps_not_terminal": not_terminal,
        "attempts": attempts,
        "a_elapsed_s": round(elapsed, 1),
    }


def effects_by_key(sandbox: Path, keys: set[str]) -> dict[str, int]:
    """How many times each key's change was actually made (the sandbox's effect log)."""
    made: dict[str, int] = {}
    log = sandbox / "effects.log"
    if log.exists():
        for line in log.read_text().splitlines():
            key = line.split("\t", 1)[0]
            if key in keys:
                made[key] = made.get(key, 0) + 1
    return made


def part_b(stack: Stack, sandbox: Path, n_runs: int, kills: int, broker_restarts: int) -> dict[str, Any]:
    from django.db import close_old_connections

    from agents.models import TERMINAL, ActionRun, SideEffect
    from agents.services import run_request

    payload = {"p_fail": 0, "sleep_ms": 60, "after_ms": 60}
    work_s = n_runs * 0.125 / 2  # two worker processes, ~125 ms a run
    ids: list[Any] = []

    def submit() -> None:
        from django.db import connection

        try:
            for _ in range(n_runs):
                ids.append(run_request(agent="chaos", action="effect", payload=payload, user=None)[0].pk)
                time.sleep(work_s / n_runs * 0.5)  # arrive over half the work time: kills find a busy worker
        finally:
            connection.close()

    submitter = threading.Thread(target=submit)
    started = time.perf_counter()
    submitter.start()
    events = sorted(random.uniform(2, work_s * 0.8) for _ in range(kills))
    broker_at = sorted(random.uniform(3, work_s * 0.7) for _ in range(broker_restarts))
    orphans: dict[Any, float] = {}
    t0 = started
    while events or broker_at:
        now = time.perf_counter() - t0
        if broker_at and broker_at[0] <= now and (not events or broker_at[0] <= events[0]):
            broker_at.pop(0)
            stack.restart_broker(down_s=1.0)
            print(f"  t={time.perf_counter() - t0:.1f}s broker restarted")
            continue
        if events and events[0] <= now:
            events.pop(0)
            close_old_connections()
            stack.kill_worker()
            killed_at = time.time()
            for pk in ActionRun.objects.filter(pk__in=list(ids), status="running").values_list("pk", flat=True):
                orphans.setdefault(pk, killed_at)
            print(f"  t={time.perf_counter() - t0:.1f}s worker SIGKILLed ({len(orphans)} orphaned so far)")
            stack.start_worker(2)
            continue
        time.sleep(0.1)
    submitter.join()
    _wait_terminal(ActionRun, ids, list(TERMINAL), deadline_s=900)
    elapsed = time.perf_counter() - started
    runs = ActionRun.objects.filter(pk__in=ids)
    not_terminal = runs.exclude(status__in=list(TERMINAL)).count()
    succeeded = runs.filter(status="succeeded").count()
    keys = {f"run:{pk}" for pk in ids}
    effects = SideEffect.objects.filter(key__in=keys)
    made = effects_by_key(sandbox, keys)
    duplicated = sum(n - 1 for n in made.values() if n > 1)  # changes made more than once, by key
    succeeded_keys = {f"run:{pk}" for pk in runs.filter(status="succeeded").values_list("pk", flat=True)}
    succeeded_without_effect = len(succeeded_keys - set(made))
    lost = not_terminal + succeeded_without_effect
    replays = sum(effects.values_list("replays", flat=True))
    finished = dict(runs.filter(pk__in=list(orphans)).values_list("pk", "finished_at"))
    waits = sorted(finished[pk].timestamp() - t for pk, t in orphans.items() if finished.get(pk))
    p99 = waits[min(len(waits) - 1, round(0.99 * (len(waits) - 1)))] if waits else 0.0
    statuses = {s: runs.filter(status=s).count() for s in ("succeeded", "failed", "dead_letter")}
    print(
        f"(b) {n_runs} runs, {kills} kills, {broker_restarts} broker restarts in {elapsed:.0f} s: {statuses}; "
        f"lost {lost}, duplicated {duplicated}, replays absorbed {replays}; {len(orphans)} orphaned, "
        f"kill-to-done P99 {p99:.1f} s"
    )
    return {
        "runs": n_runs,
        "kills": kills,
        "broker_restarts": broker_restarts,
        "lost": lost,
        "duplicated": duplicated,
        "effects_made": sum(made.values()),
        "keys_with_effect": len(made),
        "ledger_rows": effects.count(),
        "replays_absorbed": replays,
        "b_succeeded": succeeded,
        "b_statuses": statuses,
        "orphaned_by_kills": len(orphans),
        "kill_to_done_p99_s": round(p99, 1),
        "kill_to_done_max_s": round(waits[-1], 1) if waits else 0.0,
        "b_elapsed_s": round(elapsed, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="200 workflows; 300 runs, 3 kills, 1 broker restart")
    parser.add_argument("--workflows", type=int, default=None)
    parser.add_argument("--runs", type=int, default=None)
    parser.add_argument("--kills", type=int, default=None)
    args = parser.parse_args()
    n_wf = args.workflows or (200 if args.quick else 2000)
    n_runs = args.runs or (300 if args.quick else 1000)
    kills = args.kills or (3 if args.quick else 10)
    restarts = 1 if args.quick else 2
    wall = time.perf_counter()
    url = bench_database("aios_bench_reliability", fresh=True)
    sandbox = Path(__file__).resolve().parent.parent / "var" / f"reliab-sandbox-{os.getpid()}"
    shutil.rmtree(sandbox, ignore_errors=True)
    stack = Stack(url, "reliab", AIOS_SANDBOX_DIR=str(sandbox))
    try:
        setup_django(url)
        stack.start_worker(2)
        stack.start_beat()
        wait_worker_ready()
        result = part_a(n_wf)
        result.update(part_b(stack, sandbox, n_runs, kills, restarts))
    finally:
        stack.stop()
        shutil.rmtree(sandbox, ignore_errors=True)
    result["wall_s"] = round(time.perf_counter() - wall, 1)
    emit({"bench": "reliability", **result, "targets": TARGETS})


if __name__ == "__main__":
    main()
