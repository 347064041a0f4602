"""Eval-run A/B tests: the dataset's items through the variants, batch by batch, as Celery tasks.

Design: paired by default. A dataset is a fixed set of units, not a stream: sending every item through both
variants removes item-to-item differences between the arms and doubles the observations a dataset gives.
The analysis stays the two-sample tests of `evaluation.stats`; with paired items the arms are positively
correlated, which makes those tests conservative (Var(B - A) = Var(A) + Var(B) - 2 Cov, and they assume
Cov = 0), so the false positive rate stays at or below alpha and the planned power is kept. `paired=False`
splits instead: each item goes to the one variant its id hashes to (`routing.policies.assign`, the same
function the gateway uses), at the test's weights.

Assignment order is the items' id order (`seq` = item id); every batch is stored whole, under the test's
row lock, before the plan is replayed, and the test stops at the first look the plan concludes on.
"""

from __future__ import annotations

import asyncio
import time
from decimal import Decimal
from typing import Any

from asgiref.sync import async_to_sync
from django.conf import settings
from django.db import transaction
from django.db.models import Max
from django.utils import timezone

from evaluation import evaluators as ev
from evaluation.abtests.services import abtest_conclude, abtest_exhausted
from evaluation.abtests.specs import ECHO
from evaluation.models import ABObservation, ABTest, DatasetItem
from evaluation.services import EvaluatorSpec, ItemSpec, score_item
from observability import get_observability
from routing.policies import PolicyVariant, assign


def arms_for(test: ABTest, item_id: int) -> list[int]:
    """The variants an item goes through: both when paired, else the one its id hashes to."""
    return [0, 1] if test.paired else [assign(str(test.pk), str(item_id), test.weights)]


def _messages(input: Any) -> list[dict[str, Any]]:
    if isinstance(input, dict) and isinstance(input.get("messages"), list):
        return input["messages"]
    return [{"role": "user", "content": ev.as_text(input)}]


async def call_variant(variant: PolicyVariant, input: Any, attributes: dict[str, str]) -> tuple[Any, Decimal | None]:
    """The variant's answer to one input, and what it cost. `echo` answers with the rendered prompt."""
    messages = variant.render(_messages(input))
    if variant.model == ECHO:
        last_user = next((m for m in reversed(messages) if m.get("role") == "user"), {})
        return ev.as_text(last_user.get("content")), Decimal(0)
    from routing.completion import Caller, CompletionRequest, complete
    from routing.router import Constraints

    # No cache: a cached answer would carry another variant's (or an earlier run's) latency and cost.
    req = CompletionRequest(messages=messages, model=variant.model, constraints=variant.constraints(Constraints()),
                            cache_control="no-store", attributes=dict(attributes))  # fmt: skip
    result = await complete(req, Caller(username="evaluation-abtest"))
    return result.response.content, result.cost_usd


def metric_value(
    metric: str, *, error: bool, score: ev.Score | None, cost: Decimal | None, latency_ms: float
) -> float | None:
    """A failed call is a failure (success 0) and the worst answer (judge 0); it has no cost or latency to
    compare. A score the evaluator could not give is no measurement at all (None)."""
    if metric in ("success", "judge"):
        if error:
            return 0.0
        if score is None or score.value is None:
            return None
        return (1.0 if score.value >= 0.5 else 0.0) if metric == "success" else float(score.value)
    if error:
        return None
    if metric == "cost":
        return float(cost) if cost is not None else None
    return latency_ms


async def _observe(
    test: ABTest, variant: PolicyVariant, index: int, spec: EvaluatorSpec | None, item: ItemSpec
) -> ABObservation:
    attributes = {"aios.ab.test": str(test.pk), "aios.ab.variant": variant.name}
    observed_at = timezone.now()
    async with get_observability().trace_span("abtest.item", kind="eval", attributes=attributes) as span:
        span.set_attribute("aios.eval.item_id", item.pk)
        started, error, output, cost, score = time.perf_counter(), "", None, None, None
        try:
            output, cost = await call_variant(variant, item.input, attributes)
        except Exception as exc:  # noqa: BLE001 - the variant's failure is this unit's outcome
            error = f"{type(exc).__name__}: {exc}"
            span.record_error(exc)
        latency_ms = (time.perf_counter() - started) * 1000
        if not error and spec is not None:
            score = await score_item(spec, item, output, ev.ResultMeta(latency_ms=latency_ms, cost_usd=cost))
        value = metric_value(test.metric, error=bool(error), score=score, cost=cost, latency_ms=latency_ms)
        detail = {"item": item.pk, "output": ev.as_text(output)[:500], "error": error[:500],
                  "score": score.as_json() if score else None}  # fmt: skip
        return ABObservation(test=test, variant=index, seq=item.pk, value=value, trace_id=span.trace_id,
                             source=ABObservation.Source.EVAL_RUN, detail=detail, observed_at=observed_at)  # fmt: skip


async def _observe_batch(
    test: ABTest, spec: EvaluatorSpec | None, work: list[tuple[ItemSpec, int]]
) -> list[ABObservation]:
    gate = asyncio.Semaphore(settings.AIOS_EVAL_CONCURRENCY)
    variants = test.parsed_variants

    async def one(item: ItemSpec, index: int) -> ABObservation:
        async with gate:
            return await _observe(test, variants[index], index, spec, item)

    return list(await asyncio.gather(*(one(item, index) for item, index in work)))


def _enqueue(test_id: str) -> None:
    from evaluation.tasks import abtest_run_batch

    transaction.on_commit(lambda: abtest_run_batch.delay(test_id))


def abtest_run_batch(*, test_id: str) -> str:
    """Observe the next batch of items (those after the last one stored), then conclude, continue or stop.

    Idempotent: a redelivered batch finds its first item already stored under the row lock and stores
    nothing and enqueues nothing, so a test never runs two chains of batches."""
    test = ABTest.objects.select_related("evaluator", "dataset").filter(pk=test_id).first()
    if test is None or test.status != ABTest.Status.RUNNING or test.dataset is None:
        return test.status if test else "missing"
    after = test.observations.aggregate(last=Max("seq"))["last"] or 0
    size = settings.AIOS_EVAL_BATCH_SIZE
    items = [ItemSpec(i.pk, i.input, i.expected) for i in DatasetItem.objects.filter(
        dataset=test.dataset, pk__gt=after).order_by("pk")[:size]]  # fmt: skip
    evaluator = test.evaluator
    spec = EvaluatorSpec(evaluator.name, evaluator.kind, evaluator.parsed_config) if evaluator else None
    work = [(item, index) for item in items for index in arms_for(test, item.pk)]
    observations = async_to_sync(_observe_batch)(test, spec, work) if work else []
    with transaction.atomic():
        test = ABTest.objects.select_for_update(of=("self",)).select_related("evaluator").get(pk=test_id)
        if test.status != ABTest.Status.RUNNING:
            return test.status
        if items and test.observations.filter(seq=items[0].pk).exists():
            return "duplicate"  # another delivery of this batch stored it first
        ABObservation.objects.bulk_create(observations, batch_size=1000)
        if abtest_conclude(test).final:
            return test.status
        if len(items) == size:
            _enqueue(str(test.pk))
            return test.status
        abtest_exhausted(test, "The dataset ran out before the plan concluded (too many items without a value).")
        return test.status
