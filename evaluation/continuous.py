"""Continuous evaluation: each tick samples the production spans written since the last one, scores them with
the configured evaluators, stores the scores (SpanScore for queries, and on the span's attributes as
`aios.eval.<evaluator>` for the trace page), and sends spans scoring below the threshold to a queue.

Production only: spans in traces rooted in `eval.*` (eval runs) and the judge's own calls are never sampled. A tick
reads new spans past a watermark (at most max_spans_per_tick, and the watermark moves past all of them), rescans a
window below it for late commits, and looks again at spans whose trace root was not written yet.

Services live here rather than in services.py because they form one idea with their sampling rules."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from asgiref.sync import async_to_sync
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.db.models import F, QuerySet
from django.db.models.functions import Greatest
from django.utils import timezone

from evaluation import evaluators as ev
from evaluation import training
from evaluation.models import ContinuousEvaluation, Evaluator, SpanScore
from evaluation.selectors import span_content
from evaluation.services import EvaluatorSpec, ItemSpec, ItemToAdd, annotation_items_add, score_item
from observability.audit import audit_append
from observability.models import Span, Trace
from observability.services import span_attributes_merge

# Rows with a lower primary key can commit after a higher one (concurrent span writers), so each tick rescans
# this many ids below the watermark for sampled spans not scored yet.
RESCAN_IDS = 2000
_BUCKETS = 10_000
ROOT_GRACE = timedelta(minutes=10)  # a trace root not written this long after a span ended never will be
DEFERRED_MAX = 5000  # spans waiting for their trace root; beyond this the oldest are dropped
LOCK_NAMESPACE = 0x45564C  # first key of the advisory locks ticks take (the second is the configuration's id)


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


def _matching(config: ContinuousEvaluation) -> QuerySet[Span]:
    qs = Span.objects.filter(kind=config.span_kind)
    if config.model:
        qs = qs.filter(model=config.model)
    if config.agent:
        qs = qs.filter(agent=config.agent)
    return qs


def _new_spans(config: ContinuousEvaluation) -> list[Span]:
    """The next spans past the watermark, whether or not sampled: the watermark moves past all of them."""
    return list(_matching(config).filter(pk__gt=config.last_span_pk).order_by("pk")[: config.max_spans_per_tick])


def _rescanned(config: ContinuousEvaluation) -> list[Span]:
    """Sampled spans just below the watermark that committed after it passed them (concurrent writers). Reads only
    ids first (at most RESCAN_IDS rows), so spans already scored cost nothing and never crowd out new ones."""
    low = max(config.last_span_pk - RESCAN_IDS, 0)
    ids = _matching(config).filter(pk__gt=low, pk__lte=config.last_span_pk).values_list("pk", "trace_id", "span_id")
    sampled_ids = [(pk, t, s) for pk, t, s in ids if sampled(s, config.sample_rate)]
    done = _scored(config, [(t, s) for _, t, s in sampled_ids])
    return list(Span.objects.filter(pk__in=[pk for pk, t, s in sampled_ids if (t, s) not in done]))


def _scored(config: ContinuousEvaluation, refs: list[tuple[Any, int]]) -> set[tuple[Any, int]]:
    if not refs:
        return set()
    rows = SpanScore.objects.filter(continuous=config, span_id__in={s for _, s in refs}).values_list(
        "trace_id", "span_id"
    )
    return set(rows) & set(refs)


def _roots(spans: list[Span]) -> dict[Any, str]:
    """Trace id -> root span name, for traces whose root is written."""
    names = dict(Trace.objects.filter(trace_id__in={s.trace_id for s in spans}).exclude(name="").values_list(
        "trace_id", "name"))  # fmt: skip
    names |= {s.trace_id: s.name for s in spans if s.parent_span_id is None}  # a span that is its trace's root
    return names


def _origin(span: Span, root: str | None, now: datetime) -> str:
    """ "production", "evaluation" (an eval run's call or the judge's own: never sampled) or "pending" (the trace's
    root, which ends after its children, is not written yet; after ROOT_GRACE it never will be)."""
    if span.username == ev.JUDGE_CALLER or (root or "").startswith("eval."):
        return "evaluation"
    if root is None and now - span.ended_at < ROOT_GRACE:
        return "pending"
    return "production"


@contextmanager
def _tick_lock(config_id: int) -> Iterator[bool]:
    """A session advisory lock per configuration: a tick that overlaps a running one (a slow judge, a second beat)
    skips instead of paying for the same judge calls. No transaction stays open while judges are called; the lock
    goes away with the connection if the worker dies."""
    with connection.cursor() as cur:
        cur.execute("SELECT pg_try_advisory_lock(%s, %s)", [LOCK_NAMESPACE, config_id])
        held = bool(cur.fetchone()[0])
    try:
        yield held
    finally:
        if held:
            with connection.cursor() as cur:
                cur.execute("SELECT pg_advisory_unlock(%s, %s)", [LOCK_NAMESPACE, config_id])


@dataclass
class _Plan:
    todo: list[Span]  # production spans to score now
    deferred: list[int]  # pks of spans to look at again next tick
    watermark: int | None  # the new watermark, when new spans were read


def _plan(config: ContinuousEvaluation, now: datetime) -> _Plan:
    new = _new_spans(config)
    seen: dict[int, Span] = {s.pk: s for s in new if sampled(s.span_id, config.sample_rate)}
    for span in [*Span.objects.filter(pk__in=config.deferred_span_pks), *_rescanned(config)]:
        seen.setdefault(span.pk, span)
    candidates = list(seen.values())
    done = _scored(config, [(s.trace_id, s.span_id) for s in candidates])
    candidates = [s for s in candidates if (s.trace_id, s.span_id) not in done]
    roots = _roots(candidates)
    origins = {s.pk: _origin(s, roots.get(s.trace_id), now) for s in candidates}
    return _Plan(
        todo=[s for s in candidates if origins[s.pk] == "production"],
        deferred=sorted(pk for pk, origin in origins.items() if origin == "pending")[-DEFERRED_MAX:],
        watermark=new[-1].pk if new else None,
    )


def continuous_evaluate(*, config_id: int) -> dict[str, int]:
    """One tick of one configuration. Idempotent: scores are unique per span and evaluator, queue items per
    span, and the watermark only moves forward; overlapping ticks of one configuration skip (advisory lock)."""
    with _tick_lock(config_id) as held:
        config = ContinuousEvaluation.objects.filter(pk=config_id, enabled=True).first()
        if not held or config is None:
            return {"scored": 0, "queued": 0, "trained": 0}
        plan = _plan(config, timezone.now())
        specs = [EvaluatorSpec(e.name, e.kind, e.parsed_config) for e in config.evaluators.all()]
        scored = async_to_sync(_score_spans)(plan.todo, specs) if plan.todo and specs else []
        judges = {spec.name for spec in specs if spec.kind == Evaluator.Kind.LLM_JUDGE}
        return _store(config, plan, scored, judges)


def _store(
    config: ContinuousEvaluation, plan: _Plan, scored: list[tuple[Span, dict[str, ev.Score]]], judges: set[str]
) -> dict[str, int]:
    rows, low, on_spans, answers = [], [], [], []
    for span, scores in scored:
        answers += _judged_answers(config, span, {n: s for n, s in scores.items() if n in judges})
        rows += [SpanScore(continuous=config, trace_id=span.trace_id, span_id=span.span_id, model=span.model,
                           evaluator=name, value=s.value, label=s.label[:100], reasoning=s.reasoning, error=s.error)
                 for name, s in scores.items()]  # fmt: skip
        on_spans.append((span.trace_id, span.span_id, span_score_attributes(scores)))
        if any(s.value is not None and s.value < config.threshold for s in scores.values()):
            low.append(ItemToAdd(content=span_content(span), trace_id=span.trace_id, span_id=span.span_id))
    with transaction.atomic():
        SpanScore.objects.bulk_create(rows, ignore_conflicts=True, batch_size=1000)
        span_attributes_merge(updates=on_spans)  # the trace page shows them; SpanScore is for queries
        queued = annotation_items_add(queue=config.queue, items=low) if config.queue and low else 0
        trained = training.training_rows_add(answers)  # judge verdicts on routed requests teach the router
        fields: dict[str, Any] = {"deferred_span_pks": plan.deferred}
        if plan.watermark is not None:
            fields["last_span_pk"] = Greatest(F("last_span_pk"), plan.watermark)
        ContinuousEvaluation.objects.filter(pk=config.pk).update(**fields)
    return {"scored": len(scored), "queued": queued, "trained": trained}


def _judged_answers(config: ContinuousEvaluation, span: Span, scores: dict[str, ev.Score]) -> list[Any]:
    attributes = span.attributes or {}
    return [
        training.ScoredAnswer(prompt=attributes.get("gen_ai.input.messages"), trace_id=span.trace_id,
                              model=span.model, at=span.started_at, score=score.value, threshold=config.threshold,
                              source="judge", provenance={"continuous": config.name, "evaluator": name,
                                                          "span": span.span_id_hex})
        for name, score in scores.items()
        if score.value is not None
    ]  # fmt: skip


def span_score_attributes(scores: dict[str, ev.Score]) -> dict[str, Any]:
    """`aios.eval.<evaluator>`: the score (0..1); `.error` when the evaluator could not judge."""
    attributes: dict[str, Any] = {}
    for name, score in scores.items():
        attributes[f"aios.eval.{name}"] = score.value
        if score.error:
            attributes[f"aios.eval.{name}.error"] = score.error[:500]
    return attributes


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
    totals = {"scored": 0, "queued": 0, "trained": 0}
    for config_id in ContinuousEvaluation.objects.filter(enabled=True).values_list("pk", flat=True):
        result = continuous_evaluate(config_id=config_id)
        totals = {k: totals[k] + result[k] for k in totals}
    return totals
