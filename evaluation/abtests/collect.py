"""Live A/B tests: observations from the gateway's spans, admitted in assignment order.

The unit is one gateway request (its trace; the gateway assigned the variant by hashing the trace id). Its
value: success = the request's root span succeeded; latency = the root span's latency; cost = its llm spans'
cost; judge = the metric evaluator's score on its llm span (continuous evaluation writes it); human = the
annotation score on its span or trace (the mean when several reviewers scored it).

Why a settle window: the sequential analysis reads each arm's *first* n units, so a unit must never slip in
ahead of units already analysed, and the order must not depend on outcomes (slow answers finish later,
scores arrive later). Each tick admits, under the test's row lock, the requests that *started* in
(collected_until, now - settle_seconds], sorted by start time, and moves `collected_until` forward. Admission
is by assignment time, never by arrival; a unit still without a value when admitted is kept without one and
is never revisited, so an admitted prefix never changes.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from datetime import timedelta
from typing import Any
from uuid import UUID

from django.db import transaction
from django.db.models import Max, Sum
from django.utils import timezone

from evaluation.abtests.services import abtest_conclude
from evaluation.models import ABObservation, ABTest, Annotation, SpanScore
from observability.models import Span

ROOT_SPAN = "gateway.chat_completions"


def _costs(trace_ids: list[UUID]) -> dict[UUID, float]:
    rows = (
        Span.objects.filter(trace_id__in=trace_ids, kind="llm", cost_usd__isnull=False)
        .values("trace_id")
        .annotate(cost=Sum("cost_usd"))
    )
    return {r["trace_id"]: float(r["cost"]) for r in rows}


def _judge_scores(trace_ids: list[UUID], evaluator: str) -> dict[UUID, float]:
    by_trace: dict[UUID, list[float]] = defaultdict(list)
    rows = SpanScore.objects.filter(trace_id__in=trace_ids, evaluator=evaluator, value__isnull=False)
    for trace_id, value in rows.values_list("trace_id", "value"):
        by_trace[trace_id].append(value)
    return {t: statistics.fmean(v) for t, v in by_trace.items()}


def _human_scores(trace_ids: list[UUID], score_name: str) -> dict[UUID, float]:
    by_trace: dict[UUID, list[float]] = defaultdict(list)
    rows = Annotation.objects.filter(item__trace_id__in=trace_ids, skipped=False)
    for trace_id, scores in rows.values_list("item__trace_id", "scores"):
        value = (scores or {}).get(score_name)
        if isinstance(value, bool | int | float):  # numeric or boolean scores; a label has no mean
            by_trace[trace_id].append(float(value))
    return {t: statistics.fmean(v) for t, v in by_trace.items()}


def _values(test: ABTest, roots: list[Span]) -> dict[UUID, float | None]:
    trace_ids = [s.trace_id for s in roots]
    if test.metric == "success":
        return {s.trace_id: 1.0 if s.status == "ok" else 0.0 for s in roots}
    if test.metric == "latency":
        return {s.trace_id: s.latency_ms for s in roots}
    if test.metric == "cost":
        found: dict[UUID, Any] = _costs(trace_ids)
    elif test.metric == "judge":
        found = _judge_scores(trace_ids, test.evaluator.name if test.evaluator else "")
    else:
        found = _human_scores(trace_ids, test.score_name)
    return {t: found.get(t) for t in trace_ids}


def abtest_collect(*, test_id: str) -> int:
    """Admit the requests that started before `now - settle_seconds` and are not in yet; returns how many.
    Idempotent: the window only moves forward, under the test's row lock."""
    with transaction.atomic():
        test = ABTest.objects.select_for_update(of=("self",)).select_related("evaluator").filter(pk=test_id).first()
        if test is None or test.status != ABTest.Status.RUNNING or test.scope != ABTest.Scope.LIVE:
            return 0
        since = test.collected_until or test.started_at
        until = timezone.now() - timedelta(seconds=test.settle_seconds)
        if since is None or until <= since:
            return 0
        roots = list(
            Span.objects.filter(name=ROOT_SPAN, started_at__gt=since, started_at__lte=until,
                                attributes__contains={"aios.ab.test": str(test.pk)})
            .order_by("started_at", "span_id")
        )  # fmt: skip
        names = [v.name for v in test.parsed_variants]
        values = _values(test, roots)
        seq = (test.observations.aggregate(last=Max("seq"))["last"] or 0) + 1
        rows = []
        for span in roots:
            variant = (span.attributes or {}).get("aios.ab.variant")
            if variant not in names:
                continue  # not ours to count (a renamed variant cannot happen: variants are fixed at creation)
            rows.append(ABObservation(test=test, variant=names.index(variant), seq=seq, value=values[span.trace_id],
                                      trace_id=span.trace_id, span_id=span.span_id, source=ABObservation.Source.LIVE,
                                      observed_at=span.started_at))  # fmt: skip
            seq += 1
        ABObservation.objects.bulk_create(rows, batch_size=1000)
        test.collected_until = until
        test.save(update_fields=["collected_until"])
        abtest_conclude(test)
    return len(rows)


def abtest_collect_tick() -> dict[str, int]:
    admitted = 0
    running = ABTest.objects.filter(status=ABTest.Status.RUNNING, scope=ABTest.Scope.LIVE).values_list("pk", flat=True)
    for test_id in running:
        admitted += abtest_collect(test_id=str(test_id))
    return {"tests": len(running), "admitted": admitted}
