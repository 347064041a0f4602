from __future__ import annotations

from datetime import datetime
from typing import Any
from urllib.parse import urlencode

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html

from observability.models import AuditEvent, ModelPrice, UnpricedSpan
from observability.pricing import prices
from observability.services import costs_recompute, price_delete, price_save, price_validate


@admin.register(AuditEvent)
class AuditEventAdmin(admin.ModelAdmin):
    """Browse and filter the audit log. Nobody adds, edits or deletes here: it is append-only."""

    list_display = ("seq", "created_at", "actor", "action", "object_type", "object_id", "ip")
    list_filter = ("action", "object_type", ("created_at", admin.DateFieldListFilter))
    search_fields = ("actor", "action", "object_id", "request_id")
    date_hierarchy = "created_at"
    ordering = ("-seq",)
    readonly_fields = [f.name for f in AuditEvent._meta.fields]
    list_per_page = 100

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


class ModelPriceForm(forms.ModelForm):
    class Meta:
        model = ModelPrice
        fields = ["provider", "pattern", "display_name", "input_per_mtok", "output_per_mtok",
                  "cached_input_per_mtok", "effective_from", "priority", "notes"]  # fmt: skip

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        try:
            price_validate(
                pattern=data.get("pattern", ""), input_per_mtok=data.get("input_per_mtok"),
                output_per_mtok=data.get("output_per_mtok"), cached_input_per_mtok=data.get("cached_input_per_mtok"),
            )  # fmt: skip
        except ValidationError as exc:
            for field, errors in exc.message_dict.items():
                self.add_error(field, errors)
        return data


class MatchCheckForm(forms.Form):
    model = forms.CharField(label="Model name", help_text="As a provider reports it, e.g. gpt-4o-2024-08-06")
    provider = forms.CharField(required=False)
    at = forms.DateTimeField(required=False, label="At (default: now)")


class RecomputeForm(forms.Form):
    since = forms.DateTimeField(label="Recompute costs of spans from", help_text="YYYY-MM-DD HH:MM (UTC)")
    confirm = forms.BooleanField(label="I understand this rewrites recorded costs (audited)")


@admin.register(ModelPrice)
class ModelPriceAdmin(admin.ModelAdmin):
    form = ModelPriceForm
    list_display = ("display_name", "provider", "pattern", "input_per_mtok", "output_per_mtok",
                    "cached_input_per_mtok", "effective_from", "priority", "history_link")  # fmt: skip
    list_filter = ("provider",)
    search_fields = ("display_name", "pattern", "notes")
    ordering = ("provider", "display_name", "-effective_from")
    actions = ["recompute_costs"]
    change_list_template = "admin/observability/modelprice/change_list.html"

    @admin.display(description="History")
    def history_link(self, obj: ModelPrice) -> str:
        url = reverse("admin:observability_modelprice_changelist") + "?" + urlencode({"pattern": obj.pattern})
        return format_html('<a href="{}">all prices</a>', url)

    def get_queryset(self, request: HttpRequest) -> QuerySet[ModelPrice]:
        qs = super().get_queryset(request)
        pattern = request.GET.get("pattern")
        return qs.filter(pattern=pattern) if pattern else qs

    def lookup_allowed(self, lookup: str, value: str, request: HttpRequest | None = None) -> bool:
        return lookup == "pattern" or super().lookup_allowed(lookup, value, request)

    def save_model(self, request: HttpRequest, obj: ModelPrice, form: Any, change: bool) -> None:
        price_save(price=obj, actor=request.user)

    def delete_model(self, request: HttpRequest, obj: ModelPrice) -> None:
        price_delete(price=obj, actor=request.user)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[ModelPrice]) -> None:
        for obj in queryset:
            price_delete(price=obj, actor=request.user)

    def get_urls(self) -> list[Any]:
        extra = [path("match/", self.admin_site.admin_view(self.match_view), name="observability_modelprice_match")]
        return extra + super().get_urls()

    def match_view(self, request: HttpRequest) -> HttpResponse:
        """Which price applies to a model name (and every row that matches, best first)?"""
        form = MatchCheckForm(request.GET or None)
        result = candidates = None
        if form.is_valid():
            at = form.cleaned_data["at"] or timezone.now()
            model, provider = form.cleaned_data["model"], form.cleaned_data["provider"] or ""
            prices.invalidate()
            chosen = prices.price_for(model, at, provider)
            result = ModelPrice.objects.filter(pk=chosen.id).first() if chosen else None
            candidates = [ModelPrice.objects.get(pk=p.id) for p in prices._match(model, provider)]
        context = {**self.admin_site.each_context(request), "form": form, "result": result, "candidates": candidates,
                   "title": "Which price matches this model name?", "opts": self.model._meta}  # fmt: skip
        return render(request, "admin/observability/modelprice/match.html", context)

    @admin.action(description="Recompute costs for this model from a date…")
    def recompute_costs(self, request: HttpRequest, queryset: QuerySet[ModelPrice]) -> HttpResponse | None:
        if queryset.count() != 1:
            self.message_user(request, "Choose exactly one price row.", messages.ERROR)
            return None
        price = queryset.get()
        form = RecomputeForm(request.POST if "apply" in request.POST else None)
        if form.is_valid():
            since: datetime = form.cleaned_data["since"]
            result = costs_recompute(price=price, since=since, actor=request.user)
            self.message_user(
                request,
                f"Re-priced {result['spans_updated']} of {result['spans_checked']} spans of "
                f"{', '.join(result['models']) or 'no model'}.",
            )  # fmt: skip
            return None
        context = {**self.admin_site.each_context(request), "form": form, "price": price, "opts": self.model._meta,
                   "title": f"Recompute costs with {price}"}  # fmt: skip
        return render(request, "admin/observability/modelprice/recompute.html", context)


@admin.register(UnpricedSpan)
class UnpricedSpanAdmin(admin.ModelAdmin):
    """Spans with tokens but no matching price: their cost is unknown, never $0."""

    list_display = ("started_at", "model", "provider", "agent", "name", "input_tokens", "output_tokens")
    list_filter = ("model",)
    ordering = ("-started_at",)
    show_full_result_count = False
    list_per_page = 100

    def get_queryset(self, request: HttpRequest) -> QuerySet[UnpricedSpan]:
        return super().get_queryset(request).filter(cost_status="unknown_model")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False
