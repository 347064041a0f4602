"""Reads: the permission-checked getters every view uses, and the page listings."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from django.core.exceptions import PermissionDenied
from django.db.models import Avg, Count, Q, QuerySet
from django.db.models.functions import TruncHour, TruncMinute
from django.http import Http404
from django.utils import timezone

from aios_core.access import ANNOTATOR, OPERATOR, VIEWER, has_role
from evaluation.models import (
    Annotation,
    AnnotationItem,
    AnnotationQueue,
    ContinuousEvaluation,
    Dataset,
    DatasetItem,
    EvalRun,
    Evaluator,
    SpanScore,
)


def _require(user: Any, role: str) -> None:
    if not has_role(user, role):
        raise Http404  # the views' role_required refuses first; this guards other callers


# Getters take the public UUID (what URLs and API bodies carry), never the integer primary key.


_ACTIVE_ITEMS = Count("items", filter=Q(items__retired_at__isnull=True))


def get_dataset_for_user(user: Any, dataset_id: UUID) -> Dataset:
    _require(user, VIEWER)
    return Dataset.objects.filter(uuid=dataset_id).annotate(item_count=_ACTIVE_ITEMS).first() or _missing()


def get_dataset_item_for_user(user: Any, item_id: UUID) -> DatasetItem:
    _require(user, VIEWER)
    return DatasetItem.objects.select_related("dataset").filter(uuid=item_id).first() or _missing()


def get_evaluator_for_user(user: Any, evaluator_id: UUID) -> Evaluator:
    _require(user, VIEWER)
    return Evaluator.objects.filter(uuid=evaluator_id).first() or _missing()


def get_continuous_for_user(user: Any, config_id: UUID) -> ContinuousEvaluation:
    _require(user, VIEWER)
    return ContinuousEvaluation.objects.filter(uuid=config_id).first() or _missing()


def get_run_for_user(user: Any, run_id: UUID) -> EvalRun:
    _require(user, VIEWER)
    run = EvalRun.objects.select_related("dataset", "created_by").filter(uuid=run_id).first()
    return run or _missing()


def get_queue_for_user(user: Any, queue_id: UUID) -> AnnotationQueue:
    _require(user, VIEWER)
    return AnnotationQueue.objects.filter(uuid=queue_id).first() or _missing()


def get_queue_for_annotator(user: Any, queue_id: UUID) -> AnnotationQueue:
    _require(user, ANNOTATOR)
    return AnnotationQueue.objects.filter(uuid=queue_id).first() or _missing()


def can_curate_queues(user: Any) -> bool:
    """Who may put items into annotation queues: annotators, and operators who spot bad answers in traces."""
    return has_role(user, ANNOTATOR) or has_role(user, OPERATOR)


def get_queue_for_curator(user: Any, queue_id: UUID) -> AnnotationQueue:
    if not can_curate_queues(user):
        raise PermissionDenied("Adding to annotation queues needs the annotator or operator role.")
    return AnnotationQueue.objects.filter(uuid=queue_id).first() or _missing()


def get_queue_item_for_annotator(user: Any, item_id: UUID) -> AnnotationItem | None:
    """The item if `user` holds an unexpired claim on it; None when the claim is gone (the view moves on)."""
    _require(user, ANNOTATOR)
    item = AnnotationItem.objects.select_related("queue").filter(uuid=item_id).first() or _missing()
    return item if item.is_claimed_by(user) else None


def _missing() -> Any:
    raise Http404


def home_lists() -> dict[str, Any]:
    return {
        "datasets": Dataset.objects.annotate(item_count=_ACTIVE_ITEMS)[:50],
        "runs": EvalRun.objects.select_related("dataset")[:50],
        "queues": queues_with_progress(),
        "evaluators": Evaluator.objects.all(),
        "continuous": continuous_summary(),
        "continuous_configs": ContinuousEvaluation.objects.select_related("queue").prefetch_related("evaluators"),
    }


def continuous_summary(hours: int = 24) -> list[dict[str, Any]]:
    """Per continuous evaluation and evaluator: spans scored and mean score over the last `hours`."""
    since = timezone.now() - timedelta(hours=hours)
    rows = (
        SpanScore.objects.filter(created_at__gte=since)
        .values("continuous__name", "evaluator")
        .annotate(spans=Count("id"), mean=Avg("value"), errors=Count("id", filter=Q(value__isnull=True)))
        .order_by("continuous__name", "evaluator")
    )
    return list(rows)


def score_aggregates(*, hours: float = 24, now: datetime | None = None) -> dict[str, list[dict[str, Any]]]:
    """Continuous-evaluation scores of the last `hours`, for dashboards: per evaluator, per model and evaluator,
    and over time (per minute up to 6 h, else per hour) per evaluator. Means are over the spans an evaluator could
    score; `errors` counts those it could not. Reads SpanScore (indexed by created_at), never the spans."""
    end = now or timezone.now()
    recent = SpanScore.objects.filter(created_at__gte=end - timedelta(hours=hours), created_at__lte=end)
    stats = {"spans": Count("id"), "mean": Avg("value"), "errors": Count("id", filter=Q(value__isnull=True))}
    trunc = TruncMinute if hours <= 6 else TruncHour
    series = (
        recent.annotate(t=trunc("created_at")).values("t", "evaluator").annotate(**stats).order_by("t", "evaluator")
    )
    return {
        "by_evaluator": list(recent.values("evaluator").annotate(**stats).order_by("evaluator")),
        "by_model": list(recent.values("model", "evaluator").annotate(**stats).order_by("model", "evaluator")),
        "series": [{**row, "t": row["t"].isoformat()} for row in series],
    }


def queues_with_progress() -> QuerySet[AnnotationQueue]:
    return AnnotationQueue.objects.annotate(
        item_count=Count("items"), done_count=Count("items", filter=Q(items__status=AnnotationItem.Status.DONE))
    )


def queue_progress(queue: AnnotationQueue) -> dict[str, Any]:
    counts = queue.items.aggregate(
        total=Count("id"),
        done=Count("id", filter=Q(status=AnnotationItem.Status.DONE)),
        claimed=Count("id", filter=Q(status=AnnotationItem.Status.PENDING, lock_expires_at__gt=timezone.now())),
    )
    per_annotator = (
        Annotation.objects.filter(item__queue=queue)
        .values("annotator__username")
        .annotate(reviewed=Count("id", filter=Q(skipped=False)), skipped=Count("id", filter=Q(skipped=True)))
        .order_by("-reviewed")
    )
    return {**counts, "per_annotator": list(per_annotator)}


def queue_annotations(queue: AnnotationQueue) -> QuerySet[Annotation]:
    return (
        Annotation.objects.filter(item__queue=queue, skipped=False)
        .select_related("item", "annotator")
        .order_by("item_id", "id")
    )


def spans_by_ref(refs: list[tuple[Any, int]]) -> list[Any]:
    """Spans named by (trace id, span id), in the order given; unknown ones are left out."""
    from observability.models import Span

    trace_ids = {t for t, _ in refs}
    found = {(s.trace_id, s.span_id): s for s in Span.objects.filter(trace_id__in=trace_ids)}
    return [found[ref] for ref in refs if ref in found]


def span_content(span: Any) -> dict[str, Any]:
    """What an annotator or a dataset keeps of a span: its prompt, its answer and enough context to judge."""
    attributes = span.attributes or {}
    return {
        "input": attributes.get("gen_ai.input.messages", ""),
        "output": attributes.get("gen_ai.output.messages", ""),
        "context": {
            "name": span.name, "kind": span.kind, "agent": span.agent, "model": span.model, "status": span.status,
            "latency_ms": span.latency_ms, "cost_usd": str(span.cost_usd) if span.cost_usd is not None else None,
            "started_at": span.started_at.isoformat(), "error": span.error_message,
        },
    }  # fmt: skip


TRACE_SPANS_KEPT = 200  # spans listed in a trace item's copy: enough to judge, bounded in size


def traces_content(trace_ids: list[Any]) -> dict[Any, dict[str, Any]]:
    """What an annotator or a dataset keeps of whole traces, by trace id (unknown traces are left out): the root's
    input and output (for traces whose root holds no messages, the first LLM call's input and the last one's
    output) and a summary of every span."""
    from observability.models import Span, Trace

    traces = {t.trace_id: t for t in Trace.objects.filter(trace_id__in=trace_ids)}
    spans: dict[Any, list[Any]] = {t: [] for t in traces}
    for span in Span.objects.filter(trace_id__in=list(traces)).order_by("started_at", "id"):
        spans[span.trace_id].append(span)
    return {trace_id: _trace_content(trace, spans[trace_id]) for trace_id, trace in traces.items()}


def _trace_content(trace: Any, spans: list[Any]) -> dict[str, Any]:
    root = next((s for s in spans if s.parent_span_id is None), None)
    llm = [s for s in spans if s.kind == "llm" and (s.attributes or {}).get("gen_ai.input.messages") is not None]
    root_attributes = (root.attributes or {}) if root else {}
    first = (llm[0].attributes or {}) if llm else {}
    last = (llm[-1].attributes or {}) if llm else {}
    return {
        "input": root_attributes.get("gen_ai.input.messages") or first.get("gen_ai.input.messages", ""),
        "output": root_attributes.get("gen_ai.output.messages") or last.get("gen_ai.output.messages", ""),
        "context": {
            "trace": trace.name, "kind": trace.kind, "agent": trace.agent, "username": trace.username,
            "status": trace.status, "started_at": trace.started_at.isoformat(),
            "duration_ms": round(trace.duration_ms, 3), "cost_usd": str(trace.cost_usd),
            "span_count": trace.span_count, "error_count": trace.error_count,
            "spans": [{"name": s.name, "kind": s.kind, "model": s.model, "status": s.status,
                       "started_at": s.started_at.isoformat(), "latency_ms": s.latency_ms,
                       "error": s.error_message[:300]}
                      for s in spans[:TRACE_SPANS_KEPT]],
        },
    }  # fmt: skip


def run_score_summary(run: EvalRun, names: list[str]) -> list[dict[str, Any]]:
    """Per evaluator: mean score over the items it scored, how many it scored, how many it could not.
    One pass over the results' scores (names are free text, so no JSON path lookups in SQL)."""
    totals = {n: [0.0, 0, 0] for n in names}
    for scores in run.results.values_list("scores", flat=True).iterator(chunk_size=2000):
        for name in names:
            score = scores.get(name) or {}
            if score.get("value") is not None:
                totals[name][0] += score["value"]
                totals[name][1] += 1
            elif score:
                totals[name][2] += 1
    return [{"name": n, "mean": (s / k if k else None), "scored": k, "errors": e} for n, (s, k, e) in totals.items()]


def run_comparison(a: EvalRun, b: EvalRun, limit: int = 500) -> list[dict[str, Any]]:
    """Items of runs over the same dataset, side by side: outputs and scores of both."""
    by_item_b = {r.item_id: r for r in b.results.filter(item_id__in=a.results.values("item_id")[:limit])}
    rows = []
    for result in a.results.select_related("item")[:limit]:
        rows.append({"item": result.item, "a": result, "b": by_item_b.get(result.item_id)})
    return rows
