"""Admin: where admins create annotation queues and fix evaluators. Configs are validated by the pydantic
models, as in the services."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin

from evaluation.configs import parse_evaluator_config, parse_score_configs
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


class AnnotationQueueAdminForm(forms.ModelForm):
    class Meta:
        model = AnnotationQueue
        fields = ["name", "description", "score_configs", "reviewers_per_item", "lock_seconds"]

    def clean_score_configs(self) -> Any:
        value = self.cleaned_data["score_configs"]
        try:
            configs = parse_score_configs(value)
        except ValueError as exc:
            raise forms.ValidationError(str(exc)) from None
        return [c.model_dump() for c in configs]


@admin.register(Evaluator)
class EvaluatorAdmin(admin.ModelAdmin):
    form = EvaluatorAdminForm
    list_display = ["name", "kind"]


@admin.register(AnnotationQueue)
class AnnotationQueueAdmin(admin.ModelAdmin):
    form = AnnotationQueueAdminForm
    list_display = ["name", "reviewers_per_item"]


@admin.register(Dataset)
class DatasetAdmin(admin.ModelAdmin):
    list_display = ["name", "created_at"]


@admin.register(EvalRun)
class EvalRunAdmin(admin.ModelAdmin):
    list_display = ["id", "dataset", "target", "status", "items_done", "items_total"]
    readonly_fields = [f.name for f in EvalRun._meta.fields]


@admin.register(AnnotationItem)
class AnnotationItemAdmin(admin.ModelAdmin):
    list_display = ["id", "queue", "source_key", "status", "reviews_done"]
    list_filter = ["queue", "status"]


@admin.register(ContinuousEvaluation)
class ContinuousEvaluationAdmin(admin.ModelAdmin):
    list_display = ["name", "enabled", "span_kind", "model", "sample_rate", "threshold", "queue"]
    filter_horizontal = ["evaluators"]
    readonly_fields = ["last_span_pk"]
