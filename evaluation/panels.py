"""The overview's evaluation panel: mean score per evaluator of continuous evaluation."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from observability.panels import Column, Panel, register_panel


def scores_by_evaluator(since: datetime, until: datetime) -> list[list[Any]]:
    """Per evaluator: spans scored in the window, mean score, and scoring failures."""
    from django.db.models import Avg, Count, Q

    from evaluation.models import SpanScore

    rows = (
        SpanScore.objects.filter(created_at__gte=since, created_at__lte=until)
        .values("evaluator")
        .annotate(spans=Count("id"), mean=Avg("value"), errors=Count("id", filter=Q(value__isnull=True)))
        .order_by("evaluator")
    )
    return [[r["evaluator"], r["spans"], r["mean"], r["errors"]] for r in rows]


def register() -> None:
    register_panel(
        Panel(
            key="evaluation-scores",
            title="Evaluation scores",
            columns=[
                Column("Evaluator"),
                Column("Spans scored", "int"),
                Column("Mean score", "score"),
                Column("Not scored", "int"),
            ],
            read=scores_by_evaluator,
            empty="No spans scored by continuous evaluation in this window.",
            note="Continuous evaluation of sampled production spans.",
        )
    )
