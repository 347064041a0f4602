"""Evaluation pages: datasets, evaluators and runs (operators run, viewers read), annotation (annotators)."""

from __future__ import annotations

import csv
import json
from functools import wraps
from typing import Any
from uuid import UUID

from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from aios_core.access import ADMIN, ANNOTATOR, OPERATOR, VIEWER, has_role, role_required
from aios_core.errors import ConflictError
from evaluation import continuous, selectors, services
from evaluation.forms import (
    AnnotationQueueForm,
    ContinuousEvaluationForm,
    DatasetChoiceForm,
    DatasetCreateForm,
    DatasetItemForm,
    DatasetUploadForm,
    EvalRunForm,
    EvaluatorForm,
    QueueChoiceForm,
    ScoreConfigFormSet,
    Selection,
    score_rows_initial,
    scores_from_post,
)
from evaluation.models import Evaluator


def _home(request: HttpRequest, status: int = 200, **forms: Any) -> HttpResponse:
    context = {
        **selectors.home_lists(),
        "can_run": has_role(request.user, OPERATOR),
        "upload_form": forms.get("upload_form") or DatasetUploadForm(),
        "dataset_form": forms.get("dataset_form") or DatasetCreateForm(),
        "run_form": forms.get("run_form") or EvalRunForm(),
        "kinds": Evaluator.Kind.choices,
        "can_configure_sampling": has_role(request.user, ADMIN),
    }
    return render(request, "evaluation/home.html", context, status=status)


def _form_errors(form: Any, exc: ValidationError) -> None:
    for field, errors in exc.message_dict.items():
        for error in errors:
            form.add_error(field if field in form.fields else None, error)


@role_required(VIEWER)
def home(request: HttpRequest) -> HttpResponse:
    return _home(request)


@require_POST
@role_required(OPERATOR)
def dataset_upload(request: HttpRequest) -> HttpResponse:
    form = DatasetUploadForm(request.POST, request.FILES)
    if form.is_valid():
        upload = form.cleaned_data["file"]
        try:
            dataset = services.dataset_upload(name=form.cleaned_data["name"], filename=upload.name,
                                              data=upload.read(), user=request.user)  # fmt: skip
        except ValidationError as exc:
            _form_errors(form, exc)
        else:
            messages.success(request, f"Dataset {dataset.name} created.")
            return redirect("evaluation-dataset-detail", dataset_id=dataset.uuid)
    return _home(request, 422, upload_form=form)


@require_POST
@role_required(OPERATOR)
def dataset_create(request: HttpRequest) -> HttpResponse:
    form = DatasetCreateForm(request.POST)
    if form.is_valid():
        try:
            dataset = services.dataset_create(**form.cleaned_data, user=request.user)
        except ValidationError as exc:
            _form_errors(form, exc)
        else:
            messages.success(request, f"Dataset {dataset.name} created: add its items.")
            return redirect("evaluation-dataset-detail", dataset_id=dataset.uuid)
    return _home(request, 422, dataset_form=form)


def _dataset_page(request: HttpRequest, dataset: Any, item_form: DatasetItemForm | None = None) -> HttpResponse:
    context = {"dataset": dataset, "items": dataset.items.active()[:200], "can_edit": has_role(request.user, OPERATOR),
               "item_form": item_form or DatasetItemForm()}  # fmt: skip
    return render(request, "evaluation/dataset_detail.html", context, status=422 if item_form else 200)


@role_required(VIEWER)
def dataset_detail(request: HttpRequest, dataset_id: UUID) -> HttpResponse:
    return _dataset_page(request, selectors.get_dataset_for_user(request.user, dataset_id))


@require_POST
@role_required(OPERATOR)
def dataset_item_add(request: HttpRequest, dataset_id: UUID) -> HttpResponse:
    dataset = selectors.get_dataset_for_user(request.user, dataset_id)
    form = DatasetItemForm(request.POST)
    if form.is_valid():
        try:
            services.dataset_item_add(dataset=dataset, **form.cleaned_data, user=request.user)
        except ValidationError as exc:
            _form_errors(form, exc)
        else:
            messages.success(request, "Item added.")
            return redirect("evaluation-dataset-detail", dataset_id=dataset.uuid)
    return _dataset_page(request, dataset, form)


@role_required(OPERATOR)
def dataset_item_edit(request: HttpRequest, item_id: UUID) -> HttpResponse:
    item = selectors.get_dataset_item_for_user(request.user, item_id)
    form = DatasetItemForm(request.POST) if request.method == "POST" else DatasetItemForm.for_item(item)
    if request.method == "POST" and form.is_valid():
        try:
            services.dataset_item_update(item=item, **form.cleaned_data, user=request.user)
        except ValidationError as exc:
            _form_errors(form, exc)
        except ConflictError as exc:
            form.add_error(None, exc.message)
        else:
            messages.success(request, "Item saved.")
            return redirect("evaluation-dataset-detail", dataset_id=item.dataset.uuid)
    status = 422 if form.errors else 200
    return render(request, "evaluation/dataset_item_edit.html", {"item": item, "form": form}, status=status)


@require_POST
@role_required(OPERATOR)
def dataset_item_delete(request: HttpRequest, item_id: UUID) -> HttpResponse:
    item = selectors.get_dataset_item_for_user(request.user, item_id)
    services.dataset_item_delete(item=item, user=request.user)
    messages.success(request, "Item deleted.")
    return redirect("evaluation-dataset-detail", dataset_id=item.dataset.uuid)


def _evaluator_page(request: HttpRequest, form: EvaluatorForm, evaluator: Any = None) -> HttpResponse:
    context = {"form": form, "evaluator": evaluator, "kinds": Evaluator.Kind.choices}
    return render(request, "evaluation/evaluator_form.html", context, status=422 if form.errors else 200)


@role_required(OPERATOR)
def evaluator_create(request: HttpRequest) -> HttpResponse:
    """GET ?kind=...: the form for that kind; POST: create."""
    if request.method != "POST":
        return _evaluator_page(request, EvaluatorForm(kind=request.GET.get("kind") or Evaluator.Kind.EXACT_MATCH))
    form = EvaluatorForm(request.POST, kind=request.POST.get("kind", ""))
    if form.is_valid():
        data = form.cleaned_data
        try:
            services.evaluator_create(name=data["name"], kind=data["kind"], config=data["config"], user=request.user)
        except ValidationError as exc:
            _form_errors(form, exc)
        else:
            messages.success(request, "Evaluator created.")
            return redirect("evaluation-home")
    return _evaluator_page(request, form)


@role_required(OPERATOR)
def evaluator_edit(request: HttpRequest, evaluator_id: UUID) -> HttpResponse:
    evaluator = selectors.get_evaluator_for_user(request.user, evaluator_id)
    form = EvaluatorForm.for_evaluator(evaluator, request.POST if request.method == "POST" else None)
    if request.method == "POST" and form.is_valid():
        try:
            services.evaluator_update(evaluator=evaluator, name=form.cleaned_data["name"],
                                      config=form.cleaned_data["config"], user=request.user)  # fmt: skip
        except ValidationError as exc:
            _form_errors(form, exc)
        else:
            messages.success(request, f"Evaluator {form.cleaned_data['name']} saved. Past runs keep their config.")
            return redirect("evaluation-home")
    return _evaluator_page(request, form, evaluator)


@require_POST
@role_required(OPERATOR)
def run_create(request: HttpRequest) -> HttpResponse:
    form = EvalRunForm(request.POST)
    if form.is_valid():
        try:
            run = services.evalrun_create(**form.cleaned_data, user=request.user)
        except ValidationError as exc:
            _form_errors(form, exc)
        else:
            return redirect("evaluation-run-detail", run_id=run.uuid)
    return _home(request, 422, run_form=form)


@role_required(VIEWER)
def run_detail(request: HttpRequest, run_id: UUID) -> HttpResponse:
    run = selectors.get_run_for_user(request.user, run_id)
    results = run.results.select_related("item")[:500]
    names = run.evaluator_names
    rows = [(r, [r.scores.get(n, {}) for n in names]) for r in results]
    context = {"run": run, "names": names, "rows": rows, "can_run": has_role(request.user, OPERATOR),
               "progress": run.progress_payload(), "summary": selectors.run_score_summary(run, names),
               "other_runs": run.dataset.runs.exclude(pk=run.pk)[:20]}  # fmt: skip
    return render(request, "evaluation/run_detail.html", context)


@role_required(VIEWER)
def run_compare(request: HttpRequest) -> HttpResponse:
    try:
        a_id, b_id = UUID(request.GET.get("a", "")), UUID(request.GET.get("b", ""))
    except ValueError:
        raise Http404 from None
    a, b = selectors.get_run_for_user(request.user, a_id), selectors.get_run_for_user(request.user, b_id)
    if a.dataset_id != b.dataset_id:
        messages.error(request, "Only runs over the same dataset compare item by item.")
        return redirect("evaluation-run-detail", run_id=a.uuid)
    names = sorted(set(a.evaluator_names) & set(b.evaluator_names))
    summary = zip(selectors.run_score_summary(a, names), selectors.run_score_summary(b, names), strict=True)
    rows = [(row, [((row["a"].scores.get(n) or {}), (row["b"].scores.get(n) or {}) if row["b"] else {}) for n in names])
            for row in selectors.run_comparison(a, b)]  # fmt: skip
    context = {"a": a, "b": b, "names": names, "summary": list(summary), "rows": rows}
    return render(request, "evaluation/run_compare.html", context)


@role_required(VIEWER)
def run_progress(request: HttpRequest, run_id: UUID) -> JsonResponse:
    return JsonResponse(selectors.get_run_for_user(request.user, run_id).progress_payload())


@require_POST
@role_required(OPERATOR)
def run_cancel(request: HttpRequest, run_id: UUID) -> HttpResponse:
    run = selectors.get_run_for_user(request.user, run_id)
    try:
        services.evalrun_cancel(run=run, user=request.user)
    except ConflictError as exc:
        messages.error(request, exc.message)
    return redirect("evaluation-run-detail", run_id=run.uuid)


def _queue_page(request: HttpRequest, form: Any, rows: Any, queue: Any = None) -> HttpResponse:
    status = 422 if request.method == "POST" else 200
    context = {"form": form, "rows": rows, "queue": queue}
    return render(request, "evaluation/queue_form.html", context, status=status)


def _queue_fields(request: HttpRequest, form: Any, rows: Any) -> dict[str, Any] | None:
    """The service's arguments from the form and the score rows, or None (errors are on the forms)."""
    if not (form.is_valid() and rows.is_valid()):
        return None
    configs = [c for c in (row.config() for row in rows) if c is not None]
    return {**form.cleaned_data, "score_configs": configs, "user": request.user}


@role_required(OPERATOR)
def queue_create(request: HttpRequest) -> HttpResponse:
    data = request.POST if request.method == "POST" else None
    form, rows = AnnotationQueueForm(data), ScoreConfigFormSet(data, prefix="scores")
    fields = _queue_fields(request, form, rows) if data is not None else None
    if fields is not None:
        try:
            queue = services.annotation_queue_create(**fields)
        except ValidationError as exc:
            _form_errors(form, exc)
        else:
            messages.success(request, f"Queue {queue.name} created.")
            return redirect("evaluation-queue-detail", queue_id=queue.uuid)
    return _queue_page(request, form, rows)


@role_required(OPERATOR)
def queue_edit(request: HttpRequest, queue_id: UUID) -> HttpResponse:
    queue = selectors.get_queue_for_user(request.user, queue_id)
    data = request.POST if request.method == "POST" else None
    initial = {k: getattr(queue, k) for k in AnnotationQueueForm.base_fields}
    form = AnnotationQueueForm(data, initial=initial)
    rows = ScoreConfigFormSet(data, prefix="scores", initial=score_rows_initial(queue.parsed_score_configs))
    fields = _queue_fields(request, form, rows) if data is not None else None
    if fields is not None:
        try:
            services.annotation_queue_update(queue=queue, **fields)
        except ValidationError as exc:
            _form_errors(form, exc)
        else:
            messages.success(request, "Queue saved.")
            return redirect("evaluation-queue-detail", queue_id=queue.uuid)
    return _queue_page(request, form, rows, queue)


def _continuous_save(request: HttpRequest, form: ContinuousEvaluationForm, config: Any = None) -> Any:
    if not form.is_valid():
        return None
    data = dict(form.cleaned_data)
    evaluators = list(data.pop("evaluators"))
    try:
        if config is None:
            return continuous.continuous_config_create(evaluators=evaluators, user=request.user, **data)
        return continuous.continuous_config_update(config=config, evaluators=evaluators, user=request.user, **data)
    except ValidationError as exc:
        _form_errors(form, exc)
        return None


@role_required(ADMIN)
def continuous_create(request: HttpRequest) -> HttpResponse:
    form = ContinuousEvaluationForm(request.POST if request.method == "POST" else None)
    if request.method == "POST" and _continuous_save(request, form) is not None:
        messages.success(request, "Continuous evaluation configured: it samples from the next tick.")
        return redirect("evaluation-home")
    status = 422 if form.errors else 200
    return render(request, "evaluation/continuous_form.html", {"form": form}, status=status)


@role_required(ADMIN)
def continuous_edit(request: HttpRequest, config_id: UUID) -> HttpResponse:
    config = selectors.get_continuous_for_user(request.user, config_id)
    form = ContinuousEvaluationForm.for_config(config, request.POST if request.method == "POST" else None)
    if request.method == "POST" and _continuous_save(request, form, config) is not None:
        messages.success(request, "Continuous evaluation saved.")
        return redirect("evaluation-home")
    status = 422 if form.errors else 200
    return render(request, "evaluation/continuous_form.html", {"form": form, "config": config}, status=status)


def _curator_required(view: Any) -> Any:
    """Annotators, and operators who spot bad answers in traces, put items into queues."""

    @wraps(view)
    def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> Any:
        if not selectors.can_curate_queues(request.user):
            raise PermissionDenied("Adding to annotation queues needs the annotator or operator role.")
        return view(request, *args, **kwargs)

    return wrapped


def _selection_page(request: HttpRequest, selection: Selection, form: Any, what: str, status: int) -> HttpResponse:
    context = {"selection": selection, "form": form, "what": what}
    return render(request, "evaluation/selection.html", context, status=status)


@require_POST
@role_required(OPERATOR)
def selection_to_dataset(request: HttpRequest) -> HttpResponse:
    """Step 1 (from the traces explorer): choose the dataset; step 2 (`confirm`): add the selection to it."""
    selection, confirmed = Selection.from_post(request.POST), "confirm" in request.POST
    form = DatasetChoiceForm(request.POST if confirmed else None)
    if selection.errors:
        return _selection_page(request, selection, form, "dataset", 422)
    if confirmed and form.is_valid():
        try:
            with transaction.atomic():  # a new dataset exists only if its items were added
                dataset = form.cleaned_data["dataset"] or services.dataset_create(
                    name=form.cleaned_data["new_name"], user=request.user
                )
                added = services.dataset_items_add_selection(
                    dataset=dataset, span_refs=selection.span_refs, trace_ids=selection.trace_ids, user=request.user
                )
        except ValidationError as exc:
            _form_errors(form, exc)
        else:
            messages.success(request, f"Added {added} item{'s' if added != 1 else ''} to {dataset.name}.")
            return redirect("evaluation-dataset-detail", dataset_id=dataset.uuid)
    return _selection_page(request, selection, form, "dataset", 422 if confirmed else 200)


@require_POST
@_curator_required
def selection_to_queue(request: HttpRequest) -> HttpResponse:
    selection, confirmed = Selection.from_post(request.POST), "confirm" in request.POST
    form = QueueChoiceForm(request.POST if confirmed else None)
    if selection.errors:
        return _selection_page(request, selection, form, "queue", 422)
    if confirmed and form.is_valid():
        queue = form.cleaned_data["queue"]
        try:
            added = services.annotation_items_add_selection(
                queue=queue, span_refs=selection.span_refs, trace_ids=selection.trace_ids, user=request.user
            )
        except ValidationError as exc:
            _form_errors(form, exc)
        else:
            skipped = selection.count - added
            note = f" ({skipped} already there)" if skipped > 0 else ""
            messages.success(request, f"Added {added} item{'s' if added != 1 else ''} to {queue.name}{note}.")
            return redirect("evaluation-queue-detail", queue_id=queue.uuid)
    return _selection_page(request, selection, form, "queue", 422 if confirmed else 200)


@role_required(VIEWER)
def queue_detail(request: HttpRequest, queue_id: UUID) -> HttpResponse:
    queue = selectors.get_queue_for_user(request.user, queue_id)
    context = {"queue": queue, "progress": selectors.queue_progress(queue),
               "can_annotate": has_role(request.user, ANNOTATOR),
               "can_edit": has_role(request.user, OPERATOR)}  # fmt: skip
    return render(request, "evaluation/queue_detail.html", context)


@require_POST
@role_required(ANNOTATOR)
def queue_next(request: HttpRequest, queue_id: UUID) -> HttpResponse:
    queue = selectors.get_queue_for_annotator(request.user, queue_id)
    item = services.annotation_next(queue=queue, user=request.user)
    if item is None:
        messages.success(request, "Nothing left for you in this queue.")
        return redirect("evaluation-queue-detail", queue_id=queue.uuid)
    return redirect("evaluation-item-review", item_id=item.uuid)


@role_required(ANNOTATOR)
def item_review(request: HttpRequest, item_id: UUID) -> HttpResponse:
    item = selectors.get_queue_item_for_annotator(request.user, item_id)
    if item is None:
        messages.error(request, "That item is no longer yours to review.")
        return redirect("evaluation-home")
    configs = item.queue.parsed_score_configs
    errors: dict[str, list[str]] = {}
    if request.method == "POST":
        try:
            services.annotation_submit(item=item, user=request.user, scores=scores_from_post(configs, request.POST),
                                       comment=request.POST.get("comment", ""))  # fmt: skip
        except ValidationError as exc:
            errors = exc.message_dict
        except ConflictError as exc:
            messages.error(request, exc.message)
            return redirect("evaluation-queue-detail", queue_id=item.queue.uuid)
        else:
            return queue_next(request, item.queue.uuid)
    context_copy = dict(item.content.get("context") or {})
    spans = context_copy.pop("spans", [])  # a whole trace's span list: shown as a table
    shown = {"input": _pretty(item.content.get("input")), "output": _pretty(item.content.get("output")),
             "context": _pretty(context_copy), "spans": spans}  # fmt: skip
    context = {"item": item, "shown": shown, "configs": configs, "errors": errors,
               "progress": selectors.queue_progress(item.queue)}  # fmt: skip
    return render(request, "evaluation/review.html", context, status=422 if errors else 200)


def _pretty(value: Any) -> str:
    if value in (None, "", [], {}):
        return ""
    return value if isinstance(value, str) else json.dumps(value, indent=2, ensure_ascii=False)


@require_POST
@role_required(ANNOTATOR)
def item_skip(request: HttpRequest, item_id: UUID) -> HttpResponse:
    item = selectors.get_queue_item_for_annotator(request.user, item_id)
    if item is not None:
        services.annotation_skip(item=item, user=request.user)
        return queue_next(request, item.queue.uuid)
    return redirect("evaluation-home")


@role_required(VIEWER)
def queue_export(request: HttpRequest, queue_id: UUID) -> HttpResponse:
    queue = selectors.get_queue_for_user(request.user, queue_id)
    response = HttpResponse(content_type="text/csv")
    response["Content-Disposition"] = f'attachment; filename="queue-{queue.uuid}-annotations.csv"'
    names = [c.name for c in queue.parsed_score_configs]
    writer = csv.writer(response)
    writer.writerow(["item", "source", "annotator", *names, "comment", "created_at"])
    for a in selectors.queue_annotations(queue):
        scores = [a.scores.get(n, "") for n in names]
        writer.writerow([a.item.uuid, a.item.source_key, a.annotator.username, *scores, a.comment, a.created_at])
    return response
