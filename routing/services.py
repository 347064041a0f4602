"""Routing writes: provider keys, the model catalog, learned-router versions, training rows."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import pydantic
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Max
from django.utils import timezone

from aios_core.errors import ConflictError
from observability.audit import audit_append
from routing import catalog
from routing.models import ModelEndpoint, ProviderCredential, RouterModel, RouterTrainingExample, RoutingPolicy
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


def routing_policy_set(
    *, name: str, variants: list[dict[str, Any]], weights: list[float], label: str = "", actor: Any = None
) -> RoutingPolicy:
    """Create or replace the policy `name` and make it the active split of `auto` gateway traffic.
    Raises ValidationError for a bad spec or an unknown model, ConflictError while another policy is active."""
    from routing.policies import PolicySpec, active_policy

    try:
        spec = PolicySpec.model_validate({"variants": variants, "weights": weights})
    except pydantic.ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"])
        raise ValidationError({"variants": f"{where}: {err['msg']}" if where else err["msg"]}) from None
    unknown = [v.model for v in spec.variants if v.model != "auto" and catalog.find(v.model) is None]
    if unknown:
        raise ValidationError({"variants": f"Unknown model {unknown[0]!r}."})
    with transaction.atomic():
        other = RoutingPolicy.objects.select_for_update().filter(active=True).exclude(name=name).first()
        if other is not None:
            raise ConflictError(f"The routing policy {other.name} is active; clear it first.", policy=other.name)
        try:
            with transaction.atomic():  # a concurrent set may win the one-active constraint
                row, _ = RoutingPolicy.objects.update_or_create(
                    name=name,
                    defaults={"label": label, "variants": [v.model_dump() for v in spec.variants],
                              "weights": list(spec.weights), "active": True, "updated_at": timezone.now(),
                              "updated_by": actor.get_username() if actor else ""},
                )  # fmt: skip
        except IntegrityError:
            raise ConflictError("Another routing policy became active.", policy=name) from None
        audit_append(action="routing_policy.set", object_type="routing_policy", object_id=name,
                     data={"label": label, "variants": row.variants, "weights": row.weights}, actor=actor)  # fmt: skip
        transaction.on_commit(active_policy.bump)
    return row


def routing_policy_clear(*, name: str, actor: Any = None) -> bool:
    """Deactivate the policy `name`; `auto` traffic is routed as usual again. False if it was not active."""
    from routing.policies import active_policy

    with transaction.atomic():
        changed = RoutingPolicy.objects.filter(name=name, active=True).update(active=False, updated_at=timezone.now())
        if changed:
            audit_append(action="routing_policy.cleared", object_type="routing_policy", object_id=name, actor=actor)
            transaction.on_commit(active_policy.bump)
    return bool(changed)


__all__ = [
    "ModelEndpoint",
    "credential_save",
    "endpoint_changed",
    "router_model_activate",
    "router_model_save",
    "routing_policy_clear",
    "routing_policy_set",
    "training_example_add",
]
