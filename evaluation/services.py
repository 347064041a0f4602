"""Writes: dataset uploads, evaluators, eval runs (executed batch by batch by Celery), annotation queues."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import logging
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pydantic
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Count, Q, Sum
from django.utils import timezone

from aios_core.errors import ConflictError
from aios_core.live import send_on_commit
from evaluation import evaluators as ev
from evaluation import targets, training
from evaluation.configs import LlmJudgeConfig, parse_evaluator_config
from evaluation.models import (
    Annotation,
    AnnotationItem,
    AnnotationQueue,
    Dataset,
    DatasetItem,
    EvalResult,
    EvalRun,
    Evaluator,
)
from observability import get_observability
from observability.audit import audit_append

log = logging.getLogger(__name__)

# ---------------------------------------------------------------------------------------------------------
# Datasets


class _UploadRow(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid")

    input: Any
    expected: Any = None
    metadata: dict[str, Any] = pydantic.Field(default_factory=dict)

    @pydantic.field_validator("input")
    @classmethod
    def _present(cls, value: Any) -> Any:
        if value is None or value == "":
            raise ValueError("input is required")
        return value


def _row_error(exc: pydantic.ValidationError) -> str:
    err = exc.errors()[0]
    where = ".".join(str(p) for p in err["loc"])
    return f"{where}: {err['msg']}" if where else err["msg"]


def _parse_jsonl(text: str) -> tuple[list[_UploadRow], list[str]]:
    rows, errors = [], []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            rows.append(_UploadRow.model_validate_json(line))
        except pydantic.ValidationError as exc:
            kind = exc.errors()[0]["type"]
            errors.append(f"line {number}: {'not a JSON object' if kind.startswith('json') else _row_error(exc)}")
    return rows, errors


def _parse_csv(text: str) -> tuple[list[_UploadRow], list[str]]:
    reader = csv.DictReader(io.StringIO(text))
    if "input" not in (reader.fieldnames or []):
        return [], ["line 1: the header needs an 'input' column"]
    rows, errors = [], []
    for record in reader:
        number = reader.line_num
        extra = {k: v for k, v in record.items() if k not in ("input", "expected", "metadata") and k is not None}
        try:
            metadata = json.loads(record["metadata"]) if record.get("metadata") else {}
            if not isinstance(metadata, dict):
                raise ValueError("metadata must be a JSON object")
            expected = record.get("expected") or None
            rows.append(_UploadRow(input=record["input"], expected=expected, metadata={**extra, **metadata}))
        except pydantic.ValidationError as exc:
            errors.append(f"line {number}: {_row_error(exc)}")
        except ValueError as exc:
            errors.append(f"line {number}: {exc}")
    return rows, errors


def dataset_upload(*, name: str, filename: str, data: bytes, user: Any, description: str = "") -> Dataset:
    """Create a dataset from a CSV (columns input, expected, metadata; others join metadata) or JSONL file
    (objects with input, expected, metadata). Any bad line fails the whole upload and nothing is written."""
    name = name.strip()
    if not name:
        raise ValidationError({"name": "Name the dataset."})
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ValidationError({"file": "The file is not UTF-8 text."}) from None
    parse = _parse_csv if filename.lower().endswith(".csv") else _parse_jsonl
    if not filename.lower().endswith((".csv", ".jsonl", ".ndjson")):
        raise ValidationError({"file": "Upload a .csv or .jsonl file."})
    rows, errors = parse(text)
    if errors:
        raise ValidationError({"file": errors[: settings.AIOS_EVAL_UPLOAD_MAX_ERRORS]})
    if not rows:
        raise ValidationError({"file": "The file holds no items."})
    if len(rows) > settings.AIOS_EVAL_UPLOAD_MAX_ITEMS:
        raise ValidationError({"file": f"At most {settings.AIOS_EVAL_UPLOAD_MAX_ITEMS} items per upload."})
    with transaction.atomic():
        if Dataset.objects.filter(name=name).exists():
            raise ValidationError({"name": "A dataset with this name exists."})
        dataset = Dataset.objects.create(name=name, description=description, created_by=user)
        DatasetItem.objects.bulk_create(
            [DatasetItem(dataset=dataset, input=r.input, expected=r.expected, metadata=r.metadata) for r in rows],
            batch_size=2000,
        )
        audit_append(action="evaluation.dataset_upload", object_type="dataset", object_id=dataset.pk,
                     data={"name": name, "items": len(rows), "file": filename}, actor=user)  # fmt: skip
    return dataset


def dataset_create(*, name: str, user: Any, description: str = "") -> Dataset:
    """An empty dataset, to fill by hand or from spans."""
    name = name.strip()
    if not name:
        raise ValidationError({"name": "Name the dataset."})
    with transaction.atomic():
        if Dataset.objects.filter(name=name).exists():
            raise ValidationError({"name": "A dataset with this name exists."})
        dataset = Dataset.objects.create(name=name, description=description.strip(), created_by=user)
        audit_append(action="evaluation.dataset_create", object_type="dataset", object_id=dataset.pk,
                     data={"name": name}, actor=user)  # fmt: skip
    return dataset


def _item_fields(input: Any, expected: Any, metadata: Any) -> _UploadRow:
    try:
        return _UploadRow(input=input, expected=expected, metadata={} if metadata is None else metadata)
    except pydantic.ValidationError as exc:
        errors: dict[str, list[str]] = {}
        for err in exc.errors():
            errors.setdefault(str(err["loc"][0]) if err["loc"] else "input", []).append(err["msg"])
        raise ValidationError(errors) from None


def dataset_item_add(
    *, dataset: Dataset, input: Any, user: Any, expected: Any = None, metadata: dict[str, Any] | None = None
) -> DatasetItem:
    row = _item_fields(input, expected, metadata)
    with transaction.atomic():
        item = DatasetItem.objects.create(dataset=dataset, input=row.input, expected=row.expected,
                                          metadata=row.metadata)  # fmt: skip
        audit_append(action="evaluation.dataset_item_add", object_type="dataset", object_id=dataset.pk,
                     data={"item": str(item.uuid)}, actor=user)  # fmt: skip
    return item


def dataset_item_update(
    *, item: DatasetItem, input: Any, expected: Any, metadata: dict[str, Any] | None, user: Any
) -> DatasetItem:
    """Replace the item's fields. An item eval runs have results for is retired and a new item takes its place
    (returned), so past results keep showing what they evaluated."""
    row = _item_fields(input, expected, metadata)
    with transaction.atomic():
        item = DatasetItem.objects.select_for_update().get(pk=item.pk)
        if item.retired_at is not None:
            raise ConflictError("This item was retired; edit the item that replaced it.")
        if item.results.exists():
            item.retired_at = timezone.now()
            item.save(update_fields=["retired_at"])
            new = DatasetItem.objects.create(dataset_id=item.dataset_id, input=row.input, expected=row.expected,
                                             metadata=row.metadata)  # fmt: skip
        else:
            item.input, item.expected, item.metadata = row.input, row.expected, row.metadata
            item.save(update_fields=["input", "expected", "metadata"])
            new = item
        audit_append(action="evaluation.dataset_item_update", object_type="dataset", object_id=item.dataset_id,
                     data={"item": str(item.uuid), "now": str(new.uuid)}, actor=user)  # fmt: skip
    return new


def dataset_item_delete(*, item: DatasetItem, user: Any) -> None:
    """Delete the item; one that eval runs have results for is retired instead (its results stay readable)."""
    with transaction.atomic():
        item = DatasetItem.objects.select_for_update().get(pk=item.pk)
        if item.results.exists():
            item.retired_at = item.retired_at or timezone.now()
            item.save(update_fields=["retired_at"])
        else:
            item.delete()
        audit_append(action="evaluation.dataset_item_delete", object_type="dataset", object_id=item.dataset_id,
                     data={"item": str(item.uuid)}, actor=user)  # fmt: skip


# ---------------------------------------------------------------------------------------------------------
# Evaluators


def evaluator_create(*, name: str, kind: str, config: dict[str, Any], user: Any) -> Evaluator:
    if kind not in Evaluator.Kind.values:
        raise ValidationError({"kind": f"Unknown kind {kind!r}."})
    try:
        parsed = parse_evaluator_config(kind, config)
    except pydantic.ValidationError as exc:
        raise ValidationError({"config": _row_error(exc)}) from None
    with transaction.atomic():
        try:
            evaluator = Evaluator.objects.create(name=name, kind=kind, config=parsed.model_dump(by_alias=True))
        except IntegrityError:
            raise ValidationError({"name": "An evaluator with this name exists."}) from None
        audit_append(action="evaluation.evaluator_create", object_type="evaluator", object_id=evaluator.pk,
                     data={"name": name, "kind": kind}, actor=user)  # fmt: skip
    return evaluator


def evaluator_update(*, evaluator: Evaluator, name: str, config: dict[str, Any], user: Any) -> Evaluator:
    """Rename or reconfigure (the kind stays). Runs keep the snapshot they started with."""
    name = name.strip()
    if not name:
        raise ValidationError({"name": "Name the evaluator."})
    try:
        parsed = parse_evaluator_config(evaluator.kind, config)
    except pydantic.ValidationError as exc:
        raise ValidationError({"config": _row_error(exc)}) from None
    with transaction.atomic():
        evaluator = Evaluator.objects.select_for_update().get(pk=evaluator.pk)
        if Evaluator.objects.filter(name=name).exclude(pk=evaluator.pk).exists():
            raise ValidationError({"name": "An evaluator with this name exists."})
        before = {"name": evaluator.name, "config": evaluator.config}
        evaluator.name, evaluator.config = name, parsed.model_dump(by_alias=True)
        evaluator.save(update_fields=["name", "config"])
        after = {"name": name, "config": evaluator.config}
        audit_append(action="evaluation.evaluator_update", object_type="evaluator", object_id=evaluator.pk,
                     data={"before": before, "after": after}, actor=user)  # fmt: skip
    return evaluator


# ---------------------------------------------------------------------------------------------------------
# Eval runs


def _progress_group(run: EvalRun) -> str:
    from evaluation.consumers import run_group

    return run_group(run.uuid)


def _enqueue_batch(run_id: int) -> None:
    from evaluation.tasks import execute_run_batch

    transaction.on_commit(lambda: execute_run_batch.delay(run_id))


def evalrun_create(*, dataset: Dataset, target: str, evaluators: Sequence[Evaluator], user: Any) -> EvalRun:
    target = targets.target_validate(target, user)
    if not evaluators:
        raise ValidationError({"evaluators": "Choose at least one evaluator."})
    with transaction.atomic():
        total = dataset.items.active().count()
        if not total:
            raise ValidationError({"dataset": "The dataset has no items."})
        snapshot = [{"name": e.name, "kind": e.kind, "config": e.config} for e in evaluators]
        run = EvalRun.objects.create(dataset=dataset, target=target, items_total=total, created_by=user,
                                     evaluator_configs=snapshot)  # fmt: skip
        run.evaluators.set(evaluators)
        audit_append(action="evaluation.run_start", object_type="eval_run", object_id=run.pk,
                     data={"dataset": dataset.name, "target": target,
                           "evaluators": [e.name for e in evaluators]}, actor=user)  # fmt: skip
        _enqueue_batch(run.pk)
    return run


def evalrun_cancel(*, run: EvalRun, user: Any) -> EvalRun:
    """Ask the run to stop; the worker stops before its next batch. A queued run stops at once."""
    with transaction.atomic():
        run = EvalRun.objects.select_for_update().get(pk=run.pk)
        if run.is_finished:
            raise ConflictError("The run has already finished.", status=run.status)
        run.cancel_requested = True
        fields = ["cancel_requested"]
        if run.status == EvalRun.Status.QUEUED:
            run.status, run.finished_at = EvalRun.Status.CANCELLED, timezone.now()
            fields += ["status", "finished_at"]
        run.save(update_fields=fields)
        audit_append(action="evaluation.run_cancel", object_type="eval_run", object_id=run.pk, actor=user)
        send_on_commit(_progress_group(run), "eval.progress", run.progress_payload())
    return run


@dataclass(frozen=True)
class EvaluatorSpec:
    name: str
    kind: str
    config: Any


@dataclass(frozen=True)
class ItemSpec:
    pk: int
    input: Any
    expected: Any


def evalrun_execute_batch(*, run_id: int) -> str:
    """Evaluate the next batch of items that have no result yet, then enqueue the next batch or finish.

    Idempotent: a redelivered batch finds its items already done (results are unique per run and item),
    and the counters are recomputed from the results, never incremented."""
    with transaction.atomic():
        run = EvalRun.objects.select_for_update().filter(pk=run_id).first()
        if run is None or run.is_finished:
            return run.status if run else "missing"
        if run.cancel_requested:
            return _evalrun_finish(run, EvalRun.Status.CANCELLED)
        if run.status == EvalRun.Status.QUEUED:
            run.status, run.started_at = EvalRun.Status.RUNNING, timezone.now()
            run.save(update_fields=["status", "started_at"])
    specs = [EvaluatorSpec(e["name"], e["kind"], parse_evaluator_config(e["kind"], e["config"]))
             for e in run.used_evaluators]  # fmt: skip
    items = [
        ItemSpec(i.pk, i.input, i.expected)
        for i in run.dataset.items.active().exclude(results__run=run).order_by("id")[: settings.AIOS_EVAL_BATCH_SIZE]
    ]
    try:
        progress = _BatchProgress(run)
        results = async_to_sync(_evaluate_batch)(run.pk, run.target, run.created_by, items, specs, progress)
    except Exception as exc:  # noqa: BLE001 - per-item errors are caught below; this is a bug or an outage
        with transaction.atomic():
            run = EvalRun.objects.select_for_update().get(pk=run_id)
            run.error = f"{type(exc).__name__}: {exc}"
            return _evalrun_finish(run, EvalRun.Status.FAILED)
    return _evalrun_store_batch(run_id, results, more=len(items) == settings.AIOS_EVAL_BATCH_SIZE)


def _evalrun_store_batch(run_id: int, results: list[EvalResult], *, more: bool) -> str:
    with transaction.atomic():
        EvalResult.objects.bulk_create(results, ignore_conflicts=True)
        run = EvalRun.objects.select_for_update().get(pk=run_id)
        if run.is_finished:
            return run.status
        totals = run.results.aggregate(
            done=Count("id"), failed=Count("id", filter=~Q(error="")), cost=Sum("cost_usd", default=Decimal(0))
        )
        run.items_done, run.items_failed, run.cost_usd = totals["done"], totals["failed"], totals["cost"]
        run.save(update_fields=["items_done", "items_failed", "cost_usd"])
        if run.cancel_requested:
            return _evalrun_finish(run, EvalRun.Status.CANCELLED)
        if not more or run.items_done >= run.items_total:
            return _evalrun_finish(run, EvalRun.Status.SUCCEEDED)
        send_on_commit(_progress_group(run), "eval.progress", run.progress_payload())
        _enqueue_batch(run.pk)
        return run.status


def _evalrun_finish(run: EvalRun, status: str) -> str:
    """Caller holds the run's row lock."""
    run.status, run.finished_at = status, timezone.now()
    run.save(update_fields=["status", "finished_at", "error"])
    send_on_commit(_progress_group(run), "eval.progress", run.progress_payload())
    if status != EvalRun.Status.FAILED and _labels_routing(run):
        from evaluation.tasks import write_training_rows

        # Routing decisions are written in batches shortly after the calls: give them time to land.
        transaction.on_commit(lambda: write_training_rows.apply_async((run.pk,), countdown=TRAINING_ROWS_DELAY_S))
    return status


TRAINING_ROWS_DELAY_S = 5


def _labels_routing(run: EvalRun) -> bool:
    return run.target == targets.ROUTER and any(e["kind"] == Evaluator.Kind.LLM_JUDGE for e in run.used_evaluators)


def evalrun_training_rows_write(*, run_id: int) -> int:
    """Judge scores of a finished run whose target is the router become router training rows (evaluation/training.py).
    Once per run: the run is claimed with a conditional UPDATE, in the transaction that writes the rows."""
    with transaction.atomic():
        claimed = EvalRun.objects.filter(pk=run_id, training_rows_at__isnull=True, finished_at__isnull=False).update(
            training_rows_at=timezone.now()
        )
        run = EvalRun.objects.filter(pk=run_id).first()
        if not claimed or run is None or not _labels_routing(run):
            return 0
        judges = [e["name"] for e in run.used_evaluators if e["kind"] == Evaluator.Kind.LLM_JUDGE]
        answers = []
        for result in run.results.filter(error="", trace_id__isnull=False).select_related("item").iterator(2000):
            # The target's call started with the item; the judge's calls (which may be routed too) come after it.
            at = result.created_at + timedelta(milliseconds=result.latency_ms or 0)
            for name in judges:
                value = (result.scores.get(name) or {}).get("value")
                if value is None:
                    continue
                provenance = {"eval_run": str(run.uuid), "item": str(result.item.uuid), "evaluator": name}
                answers.append(training.ScoredAnswer(prompt=result.item.input, trace_id=result.trace_id,
                                                     model=result.model, at=at, score=value,
                                                     threshold=training.LABEL_THRESHOLD, source="judge",
                                                     provenance=provenance))  # fmt: skip
        return training.training_rows_add(answers)


class _BatchProgress:
    """Live progress within a batch: one event at most every AIOS_EVAL_PROGRESS_INTERVAL_S (coalesced, so a fast
    batch of code evaluators does not flood the socket), counting the items this batch finished so far on top of
    what the run had stored. Sends are serialized and read the counters when they go out, so events never go
    backwards. Best-effort (the channel layer is at-most-once); the page also polls."""

    def __init__(self, run: EvalRun) -> None:
        self.run, self.interval = run, settings.AIOS_EVAL_PROGRESS_INTERVAL_S
        self.done, self.failed, self.cost = 0, 0, Decimal(0)
        self.last_sent, self.sent_done = time.monotonic(), 0
        self.sending = asyncio.Lock()

    async def item_done(self, result: EvalResult) -> None:
        self.done += 1
        self.failed += bool(result.error)
        self.cost += result.cost_usd or 0
        if time.monotonic() - self.last_sent < self.interval:
            return
        async with self.sending:
            if time.monotonic() - self.last_sent < self.interval or self.done == self.sent_done:
                return  # another item's event went out meanwhile and already counted this one
            self.last_sent, self.sent_done = time.monotonic(), self.done
            payload = self.run.progress_payload(done=self.done, failed=self.failed, cost=self.cost)
            layer = get_channel_layer()
            if layer is None:
                return
            try:
                await layer.group_send(_progress_group(self.run), {"type": "eval.progress", "payload": payload})
            except Exception:
                log.warning("eval progress event not sent", exc_info=True)  # an outage must not fail the batch


async def _evaluate_batch(
    run_id: int, target: str, user: Any, items: list[ItemSpec], specs: list[EvaluatorSpec], progress: _BatchProgress
) -> list[EvalResult]:
    # Bounded concurrency: model targets and judges wait on the network; code evaluators are microseconds.
    gate = asyncio.Semaphore(settings.AIOS_EVAL_CONCURRENCY)

    async def one(item: ItemSpec) -> EvalResult:
        async with gate:
            result = await _evaluate_item(run_id, target, user, item, specs)
        await progress.item_done(result)
        return result

    return list(await asyncio.gather(*(one(i) for i in items)))


async def _evaluate_item(run_id: int, target: str, user: Any, item: ItemSpec, specs: list[EvaluatorSpec]) -> EvalResult:
    async with get_observability().trace_span("eval.item", kind="eval") as span:
        span.set_attributes({"aios.eval.run_id": run_id, "aios.eval.item_id": item.pk, "aios.eval.target": target})
        result = EvalResult(run_id=run_id, item_id=item.pk, trace_id=span.trace_id)
        started = time.perf_counter()
        try:
            answer = await targets.target_call(target, item.input, user)
        except Exception as exc:  # noqa: BLE001 - the target's failure is this item's result
            result.error = f"{type(exc).__name__}: {exc}"
            span.record_error(exc)
            return result
        result.output, result.model = answer.output, answer.model
        result.latency_ms = (time.perf_counter() - started) * 1000
        meta = ev.ResultMeta(latency_ms=result.latency_ms, cost_usd=answer.cost_usd)
        cost = answer.cost_usd
        for spec in specs:
            score = await score_item(spec, item, result.output, meta)
            result.scores[spec.name] = score.as_json()
            if score.cost_usd is not None:
                cost = (cost or Decimal(0)) + score.cost_usd
        result.cost_usd = cost
        return result


async def score_item(spec: EvaluatorSpec, item: ItemSpec, output: Any, meta: ev.ResultMeta) -> ev.Score:
    async with get_observability().trace_span("eval.evaluator", kind="eval") as span:
        span.set_attributes({"aios.eval.evaluator": spec.name, "aios.eval.evaluator_kind": spec.kind})
        try:
            if isinstance(spec.config, LlmJudgeConfig):
                score = await ev.llm_judge(input=item.input, output=output, expected=item.expected, config=spec.config)
            else:
                score = ev.CODE_EVALUATORS[spec.kind](output, item.expected, meta, spec.config)
        except Exception as exc:  # noqa: BLE001 - an evaluator bug must not fail the other evaluators
            span.record_error(exc)
            return ev.Score(value=None, error=f"{type(exc).__name__}: {exc}")
        if score.value is not None:
            span.set_attribute("aios.eval.score", score.value)
        if score.error:
            span.set_error("evaluator_error", score.error)
        return score


# ---------------------------------------------------------------------------------------------------------
# Annotation queues


def annotation_queue_create(
    *, name: str, score_configs: list[dict[str, Any]], reviewers_per_item: int = 1, lock_seconds: int = 600,
    description: str = "", user: Any,
) -> AnnotationQueue:  # fmt: skip
    queue = AnnotationQueue(name=name.strip(), description=description.strip(), score_configs=score_configs,
                            reviewers_per_item=reviewers_per_item, lock_seconds=lock_seconds)  # fmt: skip
    with transaction.atomic():
        queue.full_clean()  # the model's rules, which the admin obeys too
        queue.save()
        audit_append(action="evaluation.queue_create", object_type="annotation_queue", object_id=queue.pk,
                     data={"name": queue.name}, actor=user)  # fmt: skip
    return queue


def annotation_queue_update(
    *, queue: AnnotationQueue, name: str, score_configs: list[dict[str, Any]], reviewers_per_item: int,
    lock_seconds: int, description: str = "", user: Any,
) -> AnnotationQueue:  # fmt: skip
    """Scores can change only while the queue has no reviews (AnnotationQueue.clean)."""
    with transaction.atomic():
        queue = AnnotationQueue.objects.select_for_update().get(pk=queue.pk)
        queue.name, queue.description, queue.score_configs = name.strip(), description.strip(), score_configs
        queue.reviewers_per_item, queue.lock_seconds = reviewers_per_item, lock_seconds
        queue.full_clean()
        queue.save()
        audit_append(action="evaluation.queue_update", object_type="annotation_queue", object_id=queue.pk,
                     data={"name": queue.name, "score_configs": queue.score_configs,
                           "reviewers_per_item": reviewers_per_item}, actor=user)  # fmt: skip
    return queue


@dataclass(frozen=True)
class ItemToAdd:
    content: dict[str, Any]  # the copy shown to annotators: {"input", "output", "context"}
    trace_id: uuid.UUID | None = None
    span_id: int | None = None

    @property
    def source_key(self) -> str:
        if self.span_id is not None and self.trace_id is not None:
            return f"span:{self.trace_id.hex}:{self.span_id}"
        if self.trace_id is not None:
            return f"trace:{self.trace_id.hex}"
        return f"manual:{uuid.uuid4().hex}"


def annotation_items_add(*, queue: AnnotationQueue, items: Sequence[ItemToAdd]) -> int:
    """Add items; an object already in the queue is skipped (one item per object per queue).
    Returns how many were added."""
    rows = [
        AnnotationItem(queue=queue, source_key=i.source_key, trace_id=i.trace_id, span_id=i.span_id, content=i.content)
        for i in items
    ]
    with transaction.atomic():
        before = queue.items.count()
        AnnotationItem.objects.bulk_create(rows, ignore_conflicts=True, batch_size=1000)
        return queue.items.count() - before


def _existing_spans(refs: Sequence[tuple[uuid.UUID, int]]) -> list[Any]:
    """The spans named by `refs`, each once (a selection may name a span twice), in the order given.
    Raises when any of them is gone."""
    from evaluation.selectors import spans_by_ref

    unique = list(dict.fromkeys(refs))
    spans = spans_by_ref(unique)
    if len(spans) != len(unique):
        raise ValidationError({"spans": f"{len(unique) - len(spans)} of the spans no longer exist."})
    return spans


def annotation_items_add_spans(*, queue: AnnotationQueue, refs: Sequence[tuple[uuid.UUID, int]], user: Any) -> int:
    """Add spans by (trace id, span id), each with a copy of its content (span retention never empties an item).
    Unknown spans raise; spans already in the queue are skipped."""
    from evaluation.selectors import span_content

    spans = _existing_spans(refs)
    items = [ItemToAdd(content=span_content(s), trace_id=s.trace_id, span_id=s.span_id) for s in spans]
    with transaction.atomic():
        added = annotation_items_add(queue=queue, items=items)
        audit_append(action="evaluation.queue_add_spans", object_type="annotation_queue", object_id=queue.pk,
                     data={"added": added, "requested": len(items)}, actor=user)  # fmt: skip
    return added


def _existing_traces(trace_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, dict[str, Any]]:
    """Content copies of the traces, each once, in the order given. Raises when any of them is gone."""
    from evaluation.selectors import traces_content

    unique = list(dict.fromkeys(trace_ids))
    found = traces_content(unique)
    if len(found) != len(unique):
        raise ValidationError({"traces": f"{len(unique) - len(found)} of the traces no longer exist."})
    return {t: found[t] for t in unique}


def annotation_items_add_traces(*, queue: AnnotationQueue, trace_ids: Sequence[uuid.UUID], user: Any) -> int:
    """Add whole traces, each with a copy of its root input / output and its span list. Traces already in the
    queue are skipped."""
    contents = _existing_traces(trace_ids)
    items = [ItemToAdd(content=content, trace_id=trace_id) for trace_id, content in contents.items()]
    with transaction.atomic():
        added = annotation_items_add(queue=queue, items=items)
        audit_append(action="evaluation.queue_add_traces", object_type="annotation_queue", object_id=queue.pk,
                     data={"added": added, "requested": len(items)}, actor=user)  # fmt: skip
    return added


def dataset_items_add_traces(*, dataset: Dataset, trace_ids: Sequence[uuid.UUID], user: Any) -> int:
    """Add traces as dataset items: the trace's input becomes the item's input, its answer the expected output."""
    contents = _existing_traces(trace_ids)
    rows = []
    for trace_id, c in contents.items():
        metadata = {k: v for k, v in c["context"].items() if k != "spans"} | {"trace_id": trace_id.hex}
        rows.append(DatasetItem(dataset=dataset, input=c["input"], expected=c["output"] or None, metadata=metadata))
    with transaction.atomic():
        DatasetItem.objects.bulk_create(rows)
        audit_append(action="evaluation.dataset_add_traces", object_type="dataset", object_id=dataset.pk,
                     data={"added": len(rows)}, actor=user)  # fmt: skip
    return len(rows)


def dataset_items_add_spans(*, dataset: Dataset, refs: Sequence[tuple[uuid.UUID, int]], user: Any) -> int:
    """Add spans as dataset items: the prompt becomes the input, the answer the expected output."""
    from evaluation.selectors import span_content

    contents = [span_content(s) for s in _existing_spans(refs)]
    with transaction.atomic():
        DatasetItem.objects.bulk_create(
            [DatasetItem(dataset=dataset, input=c["input"], expected=c["output"] or None, metadata=c["context"])
             for c in contents]
        )  # fmt: skip
        audit_append(action="evaluation.dataset_add_spans", object_type="dataset", object_id=dataset.pk,
                     data={"added": len(contents)}, actor=user)  # fmt: skip
    return len(contents)


def dataset_items_add_selection(
    *, dataset: Dataset, span_refs: Sequence[tuple[uuid.UUID, int]], trace_ids: Sequence[uuid.UUID], user: Any
) -> int:
    """What someone selected in the traces explorer or on a trace page: all of it, or nothing when any is gone."""
    with transaction.atomic():
        added = dataset_items_add_spans(dataset=dataset, refs=span_refs, user=user) if span_refs else 0
        return added + (dataset_items_add_traces(dataset=dataset, trace_ids=trace_ids, user=user) if trace_ids else 0)


def annotation_items_add_selection(
    *, queue: AnnotationQueue, span_refs: Sequence[tuple[uuid.UUID, int]], trace_ids: Sequence[uuid.UUID], user: Any
) -> int:
    with transaction.atomic():
        added = annotation_items_add_spans(queue=queue, refs=span_refs, user=user) if span_refs else 0
        if trace_ids:
            added += annotation_items_add_traces(queue=queue, trace_ids=trace_ids, user=user)
        return added


def annotation_next(*, queue: AnnotationQueue, user: Any) -> AnnotationItem | None:
    """Claim the next item for `user`: their own unexpired claim first, else the oldest pending item that is
    unlocked (or whose lock expired) and that they have not reviewed or skipped.

    Race: `FOR UPDATE SKIP LOCKED` makes a concurrent claimer pass over the row we are claiming instead of
    waiting for it, and Postgres re-checks the WHERE clause on a row committed meanwhile, so a row claimed by
    another transaction that committed first is filtered out. Two annotators never get the same item."""
    now = timezone.now()
    with transaction.atomic():
        own = (
            AnnotationItem.objects.select_for_update(skip_locked=True)
            .filter(queue=queue, status=AnnotationItem.Status.PENDING, locked_by=user, lock_expires_at__gt=now)
            .order_by("id")
            .first()
        )
        item = own or (
            AnnotationItem.objects.select_for_update(skip_locked=True)
            .filter(queue=queue, status=AnnotationItem.Status.PENDING)
            .filter(Q(locked_by__isnull=True) | Q(lock_expires_at__lte=now))
            .exclude(annotations__annotator=user)
            .order_by("id")
            .first()
        )
        if item is None:
            return None
        item.locked_by, item.lock_expires_at = user, now + timedelta(seconds=queue.lock_seconds)
        item.save(update_fields=["locked_by", "lock_expires_at"])
    return item


def _locked_item(item_id: int, user: Any) -> AnnotationItem:
    """The item, row-locked, if `user` still holds its claim. Caller is inside a transaction."""
    item = AnnotationItem.objects.select_for_update().select_related("queue").get(pk=item_id)
    if not item.is_claimed_by(user):
        raise ConflictError("Your claim on this item expired and another annotator took it over.", item=item_id)
    return item


def _release(item: AnnotationItem) -> None:
    item.locked_by, item.lock_expires_at = None, None


def annotation_submit(*, item: AnnotationItem, user: Any, scores: dict[str, Any], comment: str = "") -> Annotation:
    configs = item.queue.parsed_score_configs
    clean, errors = {}, {}
    for config in configs:
        if config.name not in scores:
            errors[config.name] = "Score this."
            continue
        try:
            clean[config.name] = config.check(scores[config.name])
        except ValueError as exc:
            errors[config.name] = str(exc)
    if errors:
        raise ValidationError(errors)
    with transaction.atomic():
        item = _locked_item(item.pk, user)
        annotation = Annotation.objects.create(item=item, annotator=user, scores=clean, comment=comment.strip())
        _annotation_training_row(item, user, configs, clean)
        item.reviews_done += 1
        if item.reviews_done >= item.queue.reviewers_per_item:
            item.status = AnnotationItem.Status.DONE
        _release(item)
        item.save(update_fields=["reviews_done", "status", "locked_by", "lock_expires_at"])
        audit_append(action="evaluation.annotate", object_type="annotation_item", object_id=item.pk,
                     data={"queue": item.queue_id, "scores": clean}, actor=user)  # fmt: skip
    return annotation


def _annotation_training_row(item: AnnotationItem, user: Any, configs: list[Any], scores: dict[str, Any]) -> None:
    """A human verdict on a routed request labels the tier that answered (evaluation/training.py)."""
    label = training.annotation_label(configs, scores) if item.trace_id else None
    if label is None:
        return
    model, at = training.answered_by(item.content)
    provenance = {"queue": str(item.queue.uuid), "queue_name": item.queue.name, "item": str(item.uuid),
                  "annotator": user.get_username(), "score_name": label[0]}  # fmt: skip
    answer = training.ScoredAnswer(prompt=item.content.get("input"), trace_id=item.trace_id, model=model, at=at,
                                   score=label[1], threshold=training.LABEL_THRESHOLD, source="human",
                                   provenance=provenance)  # fmt: skip
    training.training_rows_add([answer], user=user)


def annotation_skip(*, item: AnnotationItem, user: Any) -> None:
    """Release the claim and remember the skip, so `annotation_next` offers the item to others only."""
    with transaction.atomic():
        item = _locked_item(item.pk, user)
        Annotation.objects.create(item=item, annotator=user, skipped=True)
        _release(item)
        item.save(update_fields=["locked_by", "lock_expires_at"])
