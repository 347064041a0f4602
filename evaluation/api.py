"""Evaluation JSON API (mounted at /api/evaluation): datasets, eval runs, annotation queues."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from django.core.exceptions import ValidationError
from django.http import Http404, HttpRequest
from ninja import Router, Schema, Status
from pydantic import Field, field_validator

from aios_core.access import ANNOTATOR, OPERATOR, VIEWER
from aios_core.api import Page, paginate, require_role
from aios_core.errors import ConflictError
from evaluation import selectors, services
from evaluation.models import AnnotationItem, Dataset, EvalResult, EvalRun, Evaluator
from observability.tracing import span_id_from_hex

router = Router(tags=["evaluation"])


class DatasetOut(Schema):
    id: UUID = Field(alias="uuid")
    name: str
    description: str
    created_at: datetime


class DatasetIn(Schema):
    name: str = Field(max_length=200)
    description: str = Field(default="", max_length=10_000)


class DatasetItemIn(Schema):
    input: Any = Field(description="text, or JSON (chat messages, an agent action's payload)")
    expected: Any = None
    metadata: Any = Field(default=None, description="a JSON object")


class DatasetItemOut(Schema):
    id: UUID = Field(alias="uuid")
    dataset: UUID = Field(alias="dataset.uuid")
    input: Any
    expected: Any
    metadata: dict[str, Any]
    created_at: datetime


class RunIn(Schema):
    dataset: UUID
    target: str = Field(min_length=1, max_length=200)
    evaluators: list[str] = Field(min_length=1, description="evaluator names")


class RunOut(Schema):
    id: UUID = Field(alias="uuid")
    dataset: UUID = Field(alias="dataset.uuid")
    target: str
    status: str
    items_total: int
    items_done: int
    items_failed: int
    cost_usd: str
    cancel_requested: bool
    error: str
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None

    @staticmethod
    def resolve_cost_usd(obj: EvalRun) -> str:
        return f"{obj.cost_usd:f}"


class ResultOut(Schema):
    item: UUID = Field(alias="item.uuid")
    output: Any
    scores: dict[str, Any]
    latency_ms: float | None
    cost_usd: str | None
    error: str
    created_at: datetime

    @staticmethod
    def resolve_cost_usd(obj: EvalResult) -> str | None:
        return f"{obj.cost_usd:f}" if obj.cost_usd is not None else None


class SpanRef(Schema):
    trace_id: str = Field(pattern=r"^[0-9a-f]{32}$", description="hex, as in the traces explorer")
    span_id: str = Field(pattern=r"^[0-9a-f]{16}$")


class SpansIn(Schema):
    spans: list[SpanRef] = Field(min_length=1, max_length=1000)

    def refs(self) -> list[tuple[UUID, int]]:
        return [(UUID(hex=s.trace_id), span_id_from_hex(s.span_id)) for s in self.spans]


class TracesIn(Schema):
    traces: list[str] = Field(min_length=1, max_length=1000, description="trace ids, hex as in the traces explorer")

    @field_validator("traces")
    @classmethod
    def _hex(cls, value: list[str]) -> list[str]:
        for trace_id in value:
            if len(trace_id) != 32 or any(c not in "0123456789abcdef" for c in trace_id):
                raise ValueError(f"not a trace id: {trace_id[:40]!r} (32 lowercase hex digits)")
        return value

    def ids(self) -> list[UUID]:
        return [UUID(hex=t) for t in self.traces]


class AddedOut(Schema):
    added: int


class ItemOut(Schema):
    id: UUID = Field(alias="uuid")
    queue: UUID = Field(alias="queue.uuid")
    source_key: str
    content: dict[str, Any]
    status: str
    reviews_done: int
    lock_expires_at: datetime | None


class AnnotationIn(Schema):
    scores: dict[str, Any]
    comment: str = Field(default="", max_length=10_000)

    @field_validator("scores")
    @classmethod
    def _not_empty(cls, value: dict[str, Any]) -> dict[str, Any]:
        if not value:
            raise ValueError("give at least one score")
        return value


@router.get("/datasets", response=Page[DatasetOut])
def evaluation_datasets_list(
    request: HttpRequest, cursor: str | None = None, limit: int | None = None
) -> dict[str, Any]:
    require_role(request, VIEWER)
    rows, nxt = paginate(Dataset.objects.all(), cursor=cursor, limit=limit)
    return {"items": rows, "next": nxt}


@router.post("/datasets", response={201: DatasetOut})
def evaluation_datasets_create(request: HttpRequest, payload: DatasetIn) -> Status:
    require_role(request, OPERATOR)
    return Status(201, services.dataset_create(name=payload.name, description=payload.description, user=request.user))


@router.get("/datasets/{dataset_id}/items", response=Page[DatasetItemOut])
def evaluation_dataset_items_list(
    request: HttpRequest, dataset_id: UUID, cursor: str | None = None, limit: int | None = None
) -> dict[str, Any]:
    dataset = selectors.get_dataset_for_user(request.user, dataset_id)
    rows, nxt = paginate(dataset.items.active().select_related("dataset"), cursor=cursor, limit=limit)
    return {"items": rows, "next": nxt}


@router.post("/datasets/{dataset_id}/items", response={201: DatasetItemOut})
def evaluation_dataset_items_add(request: HttpRequest, dataset_id: UUID, payload: DatasetItemIn) -> Status:
    require_role(request, OPERATOR)
    dataset = selectors.get_dataset_for_user(request.user, dataset_id)
    item = services.dataset_item_add(dataset=dataset, input=payload.input, expected=payload.expected,
                                     metadata=payload.metadata, user=request.user)  # fmt: skip
    return Status(201, item)


@router.put("/dataset-items/{item_id}", response=DatasetItemOut)
def evaluation_dataset_items_update(request: HttpRequest, item_id: UUID, payload: DatasetItemIn) -> Any:
    """Replaces the item's fields. An item eval runs have scored is retired and a new item (new id) returned."""
    require_role(request, OPERATOR)
    item = _active_item(request, item_id)
    return services.dataset_item_update(item=item, input=payload.input, expected=payload.expected,
                                        metadata=payload.metadata, user=request.user)  # fmt: skip


@router.delete("/dataset-items/{item_id}", response={204: None})
def evaluation_dataset_items_delete(request: HttpRequest, item_id: UUID) -> Status:
    require_role(request, OPERATOR)
    services.dataset_item_delete(item=_active_item(request, item_id), user=request.user)
    return Status(204, None)


def _active_item(request: HttpRequest, item_id: UUID) -> Any:
    item = selectors.get_dataset_item_for_user(request.user, item_id)
    if item.retired_at is not None:
        raise Http404
    return item


@router.post("/datasets/{dataset_id}/spans", response=AddedOut)
def evaluation_datasets_add_spans(request: HttpRequest, dataset_id: UUID, payload: SpansIn) -> dict[str, int]:
    require_role(request, OPERATOR)
    dataset = selectors.get_dataset_for_user(request.user, dataset_id)
    return {"added": services.dataset_items_add_spans(dataset=dataset, refs=payload.refs(), user=request.user)}


@router.post("/datasets/{dataset_id}/traces", response=AddedOut)
def evaluation_datasets_add_traces(request: HttpRequest, dataset_id: UUID, payload: TracesIn) -> dict[str, int]:
    require_role(request, OPERATOR)
    dataset = selectors.get_dataset_for_user(request.user, dataset_id)
    return {"added": services.dataset_items_add_traces(dataset=dataset, trace_ids=payload.ids(), user=request.user)}


@router.post("/runs", response={201: RunOut})
def evaluation_runs_create(request: HttpRequest, payload: RunIn) -> Status:
    require_role(request, OPERATOR)
    dataset = selectors.get_dataset_for_user(request.user, payload.dataset)
    evaluators = list(Evaluator.objects.filter(name__in=payload.evaluators))
    unknown = set(payload.evaluators) - {e.name for e in evaluators}
    if unknown:
        raise ValidationError({"evaluators": f"Unknown evaluators: {', '.join(sorted(unknown))}."})
    run = services.evalrun_create(dataset=dataset, target=payload.target, evaluators=evaluators, user=request.user)
    return Status(201, run)


@router.get("/runs", response=Page[RunOut])
def evaluation_runs_list(request: HttpRequest, cursor: str | None = None, limit: int | None = None) -> dict[str, Any]:
    require_role(request, VIEWER)
    rows, nxt = paginate(EvalRun.objects.all(), cursor=cursor, limit=limit)
    return {"items": rows, "next": nxt}


@router.get("/runs/{run_id}", response=RunOut)
def evaluation_runs_detail(request: HttpRequest, run_id: UUID) -> EvalRun:
    return selectors.get_run_for_user(request.user, run_id)


@router.get("/runs/{run_id}/results", response=Page[ResultOut])
def evaluation_runs_results(
    request: HttpRequest, run_id: UUID, cursor: str | None = None, limit: int | None = None
) -> Any:
    run = selectors.get_run_for_user(request.user, run_id)
    rows, nxt = paginate(run.results.select_related("item"), cursor=cursor, limit=limit)
    return {"items": rows, "next": nxt}


@router.post("/runs/{run_id}/cancel", response=RunOut)
def evaluation_runs_cancel(request: HttpRequest, run_id: UUID) -> EvalRun:
    require_role(request, OPERATOR)
    return services.evalrun_cancel(run=selectors.get_run_for_user(request.user, run_id), user=request.user)


@router.post("/queues/{queue_id}/spans", response=AddedOut)
def evaluation_queues_add_spans(request: HttpRequest, queue_id: UUID, payload: SpansIn) -> dict[str, int]:
    queue = selectors.get_queue_for_curator(request.user, queue_id)
    return {"added": services.annotation_items_add_spans(queue=queue, refs=payload.refs(), user=request.user)}


@router.post("/queues/{queue_id}/traces", response=AddedOut)
def evaluation_queues_add_traces(request: HttpRequest, queue_id: UUID, payload: TracesIn) -> dict[str, int]:
    queue = selectors.get_queue_for_curator(request.user, queue_id)
    return {"added": services.annotation_items_add_traces(queue=queue, trace_ids=payload.ids(), user=request.user)}


@router.post("/queues/{queue_id}/next", response={200: ItemOut, 204: None})
def evaluation_queues_next(request: HttpRequest, queue_id: UUID) -> Status:
    require_role(request, ANNOTATOR)
    item = services.annotation_next(queue=selectors.get_queue_for_annotator(request.user, queue_id), user=request.user)
    return Status(204, None) if item is None else Status(200, item)


@router.post("/items/{item_id}/annotations", response={201: ItemOut})
def evaluation_items_annotate(request: HttpRequest, item_id: UUID, payload: AnnotationIn) -> Status:
    require_role(request, ANNOTATOR)
    item = selectors.get_queue_item_for_annotator(request.user, item_id)
    if item is None:
        raise ConflictError("This item is not yours to review: claim it with /next.", item=item_id)
    services.annotation_submit(item=item, user=request.user, scores=payload.scores, comment=payload.comment)
    return Status(201, AnnotationItem.objects.select_related("queue").get(pk=item.pk))


router.add_router("/abtests", "evaluation.abtests.api.router")  # list, create, get, start, stop
