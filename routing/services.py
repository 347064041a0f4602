"""Routing writes: provider keys, the model catalog, learned-router versions, training rows."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Max

from observability.audit import audit_append
from routing import catalog
from routing.models import ModelEndpoint, ProviderCredential, RouterModel, RouterTrainingExample
from routing.router import learned_router
from routing.secrets import encrypt


def credential_save(*, provider: str, api_key: str | None, base_url: str = "", actor: Any) -> ProviderCredential:
    """Store (or replace) a provider key, encrypted. The key is never returned or logged."""
    with transaction.atomic():
        row, _ = ProviderCredential.objects.get_or_create(provider=provider)
        if api_key:
            row.encrypted_key = encrypt(api_key)
            row.key_hint = api_key[-4:]
        row.base_url = base_url
        row.updated_by = actor.get_username() if actor else ""
        row.save()
        audit_append(
            action="provider_key.saved",
            object_type="provider_credential",
            object_id=provider,
            data={"provider": provider, "key_hint": row.key_hint, "base_url": base_url},
            actor=actor,
        )
        transaction.on_commit(catalog.credentials.bump)
    return row


def endpoint_changed() -> None:
    """Tell every process to reload the catalog (admin edits of ModelEndpoint)."""
    transaction.on_commit(catalog.endpoints.bump)


def router_model_save(
    *, artifact: bytes, metadata: dict[str, Any], actor: Any = None, activate: bool = True
) -> RouterModel:
    with transaction.atomic():
        version = (RouterModel.objects.aggregate(v=Max("version"))["v"] or 0) + 1
        if activate:
            RouterModel.objects.filter(active=True).update(active=False)
        row = RouterModel.objects.create(
            version=version,
            artifact=artifact,
            metadata=metadata,
            active=activate,
            created_by=actor.get_username() if actor else "",
        )
        audit_append(
            action="router_model.saved",
            object_type="router_model",
            object_id=row.pk,
            data={
                "version": version,
                "active": activate,
                "metrics": metadata.get("metrics") or metadata.get("train_metrics"),
            },
            actor=actor,
        )
        transaction.on_commit(learned_router.bump)
    return row


def router_model_activate(*, model: RouterModel | None, actor: Any) -> None:
    """Make `model` the active learned router (None: heuristics only)."""
    with transaction.atomic():
        RouterModel.objects.filter(active=True).update(active=False)
        if model is not None:
            RouterModel.objects.filter(pk=model.pk).update(active=True)
        audit_append(
            action="router_model.activated",
            object_type="router_model",
            object_id=model.pk if model else "",
            data={"version": model.version if model else None},
            actor=actor,
        )
        transaction.on_commit(learned_router.bump)


def training_example_add(
    *,
    prompt: str,
    weak_correct: bool | None,
    strong_correct: bool | None,
    source: str,
    provenance: dict[str, Any] | None = None,
    user: Any = None,
) -> RouterTrainingExample:
    """A labelled prompt for the learned router. Evaluation writes human and judge scores here
    (routing never imports evaluation). A score on a routed request labels only the tier that
    answered: pass None for the other."""
    if weak_correct is None and strong_correct is None:
        raise ValidationError("a training example needs weak_correct or strong_correct")
    return RouterTrainingExample.objects.create(
        prompt=prompt,
        weak_correct=weak_correct,
        strong_correct=strong_correct,
        source=source,
        provenance=provenance or {},
        created_by=user if getattr(user, "pk", None) else None,
    )


def training_examples() -> Iterable[RouterTrainingExample]:
    return RouterTrainingExample.objects.order_by("pk").iterator()


__all__ = [
    "ModelEndpoint",
    "credential_save",
    "endpoint_changed",
    "router_model_activate",
    "router_model_save",
    "training_example_add",
]
