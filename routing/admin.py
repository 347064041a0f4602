from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from routing.models import (
    CacheEntry,
    CachePolicy,
    ModelEndpoint,
    ProviderCredential,
    RouterModel,
    RouterTrainingExample,
)
from routing.services import credential_save, endpoint_changed, router_model_activate


@admin.register(ModelEndpoint)
class ModelEndpointAdmin(admin.ModelAdmin):
    list_display = (
        "model_id",
        "tier",
        "is_baseline",
        "vision",
        "context_window",
        "typical_latency_ms",
        "priority",
        "enabled",
    )
    list_filter = ("tier", "provider", "enabled")
    list_editable = ("enabled", "priority")
    search_fields = ("model", "provider")

    def save_model(self, request: HttpRequest, obj: ModelEndpoint, form: Any, change: bool) -> None:
        super().save_model(request, obj, form, change)
        endpoint_changed()

    def delete_model(self, request: HttpRequest, obj: ModelEndpoint) -> None:
        super().delete_model(request, obj)
        endpoint_changed()


class CredentialForm(forms.ModelForm):
    api_key = forms.CharField(
        required=False,
        widget=forms.PasswordInput(render_value=False),
        help_text="Stored encrypted and never shown again. Leave empty to keep the current key.",
    )

    class Meta:
        model = ProviderCredential
        fields = ["provider", "base_url"]


@admin.register(ProviderCredential)
class ProviderCredentialAdmin(admin.ModelAdmin):
    form = CredentialForm
    list_display = ("provider", "key_hint", "base_url", "updated_at", "updated_by")
    readonly_fields = ("key_hint", "updated_at", "updated_by")

    def save_model(self, request: HttpRequest, obj: ProviderCredential, form: Any, change: bool) -> None:
        credential_save(
            provider=obj.provider,
            api_key=form.cleaned_data.get("api_key") or None,
            base_url=obj.base_url,
            actor=request.user,
        )


@admin.register(RouterModel)
class RouterModelAdmin(admin.ModelAdmin):
    list_display = ("version", "active", "created_at", "created_by")
    readonly_fields = ("version", "active", "created_at", "created_by", "metadata")
    exclude = ("artifact",)
    actions = ["activate"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # versions come from `manage.py train_router`

    @admin.action(description="Make this version the active learned router")
    def activate(self, request: HttpRequest, queryset: QuerySet[RouterModel]) -> None:
        if queryset.count() != 1:
            self.message_user(request, "Choose exactly one version.", messages.ERROR)
            return
        router_model_activate(model=queryset.get(), actor=request.user)


@admin.register(RouterTrainingExample)
class RouterTrainingExampleAdmin(admin.ModelAdmin):
    list_display = ("created_at", "source", "weak_correct", "strong_correct", "prompt")
    list_filter = ("source",)
    search_fields = ("prompt",)


@admin.register(CachePolicy)
class CachePolicyAdmin(admin.ModelAdmin):
    list_display = ("namespace", "mode", "ttl_s", "max_entries", "max_bytes", "semantic", "similarity_threshold")
    search_fields = ("namespace",)


@admin.register(CacheEntry)
class CacheEntryAdmin(admin.ModelAdmin):
    list_display = ("namespace", "model", "hit_count", "created_at", "last_hit_at", "expires_at", "size_bytes")
    list_filter = ("namespace",)
    search_fields = ("prompt_text",)
    exclude = ("embedding",)
    readonly_fields = [f.name for f in CacheEntry._meta.fields if f.name != "embedding"]
    actions = ["purge"]
    show_full_result_count = False

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    @admin.action(description="Purge the selected entries (every process forgets them)")
    def purge(self, request: HttpRequest, queryset: QuerySet[CacheEntry]) -> None:
        from routing.response_cache import purge

        for entry in queryset:
            purge(entry_id=entry.pk)
