"""Thin Celery tasks: take ids, call one service."""

from __future__ import annotations

from celery import shared_task


@shared_task(name="evaluation.execute_run_batch")
def execute_run_batch(run_id: int) -> str:
    from django.db import close_old_connections

    from evaluation.services import evalrun_execute_batch

    close_old_connections()
    return evalrun_execute_batch(run_id=run_id)


@shared_task(name="evaluation.write_training_rows")
def write_training_rows(run_id: int) -> int:
    from evaluation.services import evalrun_training_rows_write

    return evalrun_training_rows_write(run_id=run_id)


@shared_task(name="evaluation.continuous_tick")
def continuous_tick() -> dict[str, int]:
    from evaluation.continuous import continuous_tick as tick

    return tick()


@shared_task(name="evaluation.abtest_run_batch")
def abtest_run_batch(test_id: str) -> str:
    from django.db import close_old_connections

    from evaluation.abtests.runner import abtest_run_batch as run_batch

    close_old_connections()
    return run_batch(test_id=test_id)


@shared_task(name="evaluation.abtest_collect_tick")
def abtest_collect_tick() -> dict[str, int]:
    from evaluation.abtests.collect import abtest_collect_tick as tick

    return tick()
