"""Continuous evaluation: each tick samples the production spans written since the last one, scores them with
the configured evaluators, stores the scores, and sends spans scoring below the threshold to a queue.

Services live here rather than in services.py because they form one idea with their sampling rules."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from asgiref.sync import async_to_sync
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction

from evaluation import evaluators as ev
from evaluation.models import ContinuousEvaluation, Evaluator, SpanScore
from evaluation.selectors import span_content
from evaluation.services import EvaluatorSpec, ItemSpec, ItemToAdd, annotation_items_add, score_item
from observability.audit import audit_append
from observability.models import Span

# Rows with a lower primary key can commit after a higher one (concurrent span writers), so each tick rescans
# this many ids below the watermark; the unique constraint on scores makes the rescan harmless.
RESCAN_IDS = 2000
_BUCKETS = 10_000


# ---------------------------------------------------------------------------------------------------------
# Configurations


def _continuous_save(config: ContinuousEvaluation, evaluators: Sequence[Evaluator], action: str, user: Any) -> None:
    """Caller holds a transaction. The model validates rates and thresholds (the admin obeys the same rules)."""
    if not evaluators:
        raise ValidationError({"evaluators": "Choose at least one evaluator."})
    config.full_clean()
    config.save()
    config.evaluators.set(evaluators)
    audit_append(action=action, object_type="continuous_evaluation", object_id=config.pk, actor=user,
                 data={"name": config.name, "enabled": config.enabled, "sample_rate": config.sample_rate,
                       "threshold": config.threshold, "evaluators": [e.name for e in evaluators],
                       "queue": config.queue.name if config.queue else None})  # fmt: skip


def continuous_config_create(*, evaluators: Sequence[Evaluator], user: Any, **fields: Any) -> ContinuousEvaluation:
    """`fields`: name, enabled, span_kind, model, agent, sample_rate, threshold, queue, max_spans_per_tick."""
    config = ContinuousEvaluation(**{k: v for k, v in fields.items() if k in CONFIG_FIELDS})
    with transaction.atomic():
        _continuous_save(config, evaluators, "evaluation.continuous_create", user)
    return config


def continuous_config_update(
    *, config: ContinuousEvaluation, evaluators: Sequence[Evaluator], user: Any, **fields: Any
) -> ContinuousEvaluation:
    with transaction.atomic():
        config = ContinuousEvaluation.objects.select_for_update().get(pk=config.pk)
        for name in CONFIG_FIELDS:
            if name in fields:
                setattr(config, name, fields[name])
        _continuous_save(config, evaluators, "evaluation.continuous_update", user)
    return config


CONFIG_FIELDS = ("name", "enabled", "span_kind", "model", "agent", "sample_rate", "threshold", "queue",
                 "max_spans_per_tick")  # fmt: skip


# ---------------------------------------------------------------------------------------------------------
# Ticks


def sampled(span_id: int, rate: float) -> bool:
    """Deterministic per span: a rescan, or another process, samples exactly the same spans."""
    return (span_id * 2654435761) % _BUCKETS < rate * _BUCKETS


def _candidates(config: ContinuousEvaluation) -> list[Span]:
    qs = Span.objects.filter(pk__gt=max(config.last_span_pk - RESCAN_IDS, 0), kind=config.span_kind)
    if config.model:
        qs = qs.filter(model=config.model)
    if config.agent:
        qs = qs.filter(agent=config.agent)
    return list(qs.order_by("pk")[: config.max_spans_per_tick])


def continuous_evaluate(*, config_id: int) -> dict[str, int]:
    """One tick of one configuration. Idempotent: scores are unique per span and evaluator, queue items per
    span, and the watermark only moves forward."""
    config = ContinuousEvaluation.objects.filter(pk=config_id, enabled=True).first()
    if config is None:
        return {"scored": 0, "queued": 0}
    spans = _candidates(config)
    done = set(
        SpanScore.objects.filter(continuous=config, span_id__in=[s.span_id for s in spans])
        .values_list("trace_id", "span_id")
        .distinct()
    )
    todo = [s for s in spans if sampled(s.span_id, config.sample_rate) and (s.trace_id, s.span_id) not in done]
    specs = [EvaluatorSpec(e.name, e.kind, e.parsed_config) for e in config.evaluators.all()]
    scored = async_to_sync(_score_spans)(todo, specs) if todo and specs else []
    rows, low = [], []
    for span, scores in scored:
        rows += [SpanScore(continuous=config, trace_id=span.trace_id, span_id=span.span_id, evaluator=name,
                           value=s.value, label=s.label[:100], reasoning=s.reasoning, error=s.error)
                 for name, s in scores.items()]  # fmt: skip
        if any(s.value is not None and s.value < config.threshold for s in scores.values()):
            low.append(ItemToAdd(content=span_content(span), trace_id=span.trace_id, span_id=span.span_id))
    with transaction.atomic():
        SpanScore.objects.bulk_create(rows, ignore_conflicts=True, batch_size=1000)
        queued = annotation_items_add(queue=config.queue, items=low) if config.queue and low else 0
        if spans:
            ContinuousEvaluation.objects.filter(pk=config.pk, last_span_pk__lt=spans[-1].pk).update(
                last_span_pk=spans[-1].pk
            )
    return {"scored": len(scored), "queued": queued}


async def _score_spans(spans: list[Span], specs: list[EvaluatorSpec]) -> list[tuple[Span, dict[str, ev.Score]]]:
    gate = asyncio.Semaphore(settings.AIOS_EVAL_CONCURRENCY)

    async def one(span: Span) -> tuple[Span, dict[str, ev.Score]]:
        attributes = span.attributes or {}
        item = ItemSpec(span.pk, attributes.get("gen_ai.input.messages"), None)
        output = attributes.get("gen_ai.output.messages")
        meta = ev.ResultMeta(latency_ms=span.latency_ms, cost_usd=span.cost_usd)
        async with gate:
            return span, {spec.name: await score_item(spec, item, _answer_text(output), meta) for spec in specs}

    return list(await asyncio.gather(*(one(s) for s in spans)))


def _answer_text(output: Any) -> Any:
    """The assistant's text when the span holds chat messages; otherwise the value as stored."""
    if isinstance(output, list) and all(isinstance(m, dict) for m in output):
        return "\n".join(ev.as_text(m.get("content")) for m in output)
    return output


def continuous_tick() -> dict[str, int]:
    totals = {"scored": 0, "queued": 0}
    for config_id in ContinuousEvaluation.objects.filter(enabled=True).values_list("pk", flat=True):
        result = continuous_evaluate(config_id=config_id)
        totals = {k: totals[k] + result[k] for k in totals}
    return totals
