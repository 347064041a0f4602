"""Admin: a second way to edit queues, evaluators and continuous evaluation. Forms validate through the models (the
same rules as the pages), and saves go through the audited services."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin
from django.http import HttpRequest

from evaluation import continuous, services
from evaluation.configs import parse_evaluator_config
from evaluation.models import AnnotationItem, AnnotationQueue, ContinuousEvaluation, Dataset, EvalRun, Evaluator


class EvaluatorAdminForm(forms.ModelForm):
    class Meta:
        model = Evaluator
        fields = ["name", "kind", "config"]

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        try:
            parse_evaluator_config(data.get("kind", ""), data.get("config") or {})
        except (KeyError, ValueError) as exc:
            raise forms.ValidationError({"config": str(exc)}) from None
        return data


class ServiceSavedAdmin(admin.ModelAdmin):
    """The form has validated (model rules included); `save_through_service` writes and audits. The admin's own
    log entry and redirect then use the saved row's key."""

    def save_through_service(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> Any:
        raise NotImplementedError

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        saved = self.save_through_service(request, obj, form, change)
        obj.pk, obj.uuid = saved.pk, saved.uuid

    def save_related(self, request: HttpRequest, form: Any, formsets: Any, change: bool) -> None:
        """The service already set the many-to-many fields."""


@admin.register(Evaluator)
class EvaluatorAdmin(ServiceSavedAdmin):
    form = EvaluatorAdminForm
    list_display = ["name", "kind"]

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        return ["kind"] if obj is not None else []  # a config's shape depends on its kind

    def save_through_service(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> Any:
        data = form.cleaned_data
        if change:
            return services.evaluator_update(evaluator=obj, name=data["name"], config=data["config"], user=request.user)
        return services.evaluator_create(name=data["name"], kind=data["kind"], config=data["config"], user=request.user)


@admin.register(AnnotationQueue)
class AnnotationQueueAdmin(ServiceSavedAdmin):
    fields = ["name", "description", "score_configs", "reviewers_per_item", "lock_seconds"]
    list_display = ["name", "reviewers_per_item"]

    def save_through_service(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> Any:
        data = {k: form.cleaned_data[k] for k in self.fields}
        if change:
            return services.annotation_queue_update(queue=obj, **data, user=request.user)
        return services.annotation_queue_create(**data, user=request.user)


@admin.register(Dataset)
class DatasetAdmin(admin.ModelAdmin):
    list_display = ["name", "created_at"]


@admin.register(EvalRun)
class EvalRunAdmin(admin.ModelAdmin):
    list_display = ["uuid", "dataset", "target", "status", "items_done", "items_total"]
    readonly_fields = [f.name for f in EvalRun._meta.fields]


@admin.register(AnnotationItem)
class AnnotationItemAdmin(admin.ModelAdmin):
    list_display = ["uuid", "queue", "source_key", "status", "reviews_done"]
    list_filter = ["queue", "status"]


class ContinuousEvaluationAdminForm(forms.ModelForm):
    class Meta:
        model = ContinuousEvaluation
        fields = [*continuous.CONFIG_FIELDS, "evaluators"]

    def clean_evaluators(self) -> Any:
        evaluators = self.cleaned_data["evaluators"]
        if not evaluators:
            raise forms.ValidationError("Choose at least one evaluator.")
        return evaluators


@admin.register(ContinuousEvaluation)
class ContinuousEvaluationAdmin(ServiceSavedAdmin):
    form = ContinuousEvaluationAdminForm
    list_display = ["name", "enabled", "span_kind", "model", "sample_rate", "threshold", "queue"]
    filter_horizontal = ["evaluators"]
    readonly_fields = ["last_span_pk"]

    def save_through_service(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> Any:
        data = {k: form.cleaned_data[k] for k in continuous.CONFIG_FIELDS if k in form.cleaned_data}
        evaluators = list(form.cleaned_data["evaluators"])
        if change:
            return continuous.continuous_config_update(config=obj, evaluators=evaluators, user=request.user, **data)
        return continuous.continuous_config_create(evaluators=evaluators, user=request.user, **data)
