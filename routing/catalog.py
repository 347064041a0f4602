"""The model catalog as the router sees it: enabled endpoints whose provider can be called.

A provider can be called when its key is in the environment or entered by an admin. With no
key at all, each tier falls back to the simulator model of that tier, so the whole path
(router, gateway, traces, costs) works offline; pages say when results are simulated.
"""

from __future__ import annotations

from dataclasses import dataclass

from aios_core.versioned import VersionedValue
from routing.providers.registry import is_configured

TIERS = ("simple", "medium", "complex")


@dataclass(frozen=True, slots=True)
class Endpoint:
    provider: str
    model: str
    tier: str
    is_baseline: bool
    vision: bool
    context_window: int
    typical_latency_ms: int
    priority: int

    @property
    def model_id(self) -> str:
        return f"{self.provider}/{self.model}"

    @property
    def simulated(self) -> bool:
        return self.provider == "sim"

    @property
    def span_model(self) -> str:
        """The model name spans and prices use (`sim/medium` for the simulator)."""
        return self.model_id if self.simulated else self.model


@dataclass(frozen=True, slots=True)
class Credential:
    api_key: str | None
    base_url: str | None


def _load_endpoints() -> tuple[Endpoint, ...]:
    from routing.models import ModelEndpoint

    return tuple(
        Endpoint(
            e.provider, e.model, e.tier, e.is_baseline, e.vision, e.context_window, e.typical_latency_ms, e.priority
        )
        for e in ModelEndpoint.objects.filter(enabled=True).order_by("tier", "-priority", "provider", "model")
    )


def _load_credentials() -> dict[str, Credential]:
    from routing.models import ProviderCredential
    from routing.secrets import decrypt

    out = {}
    for row in ProviderCredential.objects.all():
        key = decrypt(row.encrypted_key) if row.encrypted_key else None
        out[row.provider] = Credential(key, row.base_url or None)
    return out


endpoints = VersionedValue("routing:catalog_version", _load_endpoints)
credentials = VersionedValue("routing:credentials_version", _load_credentials)


def provider_available(provider: str, creds: dict[str, Credential] | None = None) -> bool:
    creds = credentials.get() if creds is None else creds
    cred = creds.get(provider)
    if cred and (cred.api_key or (provider == "openai_compatible" and cred.base_url)):
        return True
    return is_configured(provider)


_available: tuple[int, int, list[Endpoint]] | None = None


def available_endpoints() -> list[Endpoint]:
    """Enabled endpoints we can call. Real models when any real provider is configured for a
    tier; otherwise that tier's simulator model. Recomputed only when the catalog or the keys
    were reloaded (environment keys are read at that moment)."""
    global _available
    creds = credentials.get()
    all_endpoints = endpoints.get()
    if _available is not None and _available[0] == id(all_endpoints) and _available[1] == id(creds):
        return _available[2]
    out: list[Endpoint] = []
    for tier in TIERS:
        real = [
            e for e in all_endpoints if e.tier == tier and not e.simulated and provider_available(e.provider, creds)
        ]
        out += real or [e for e in all_endpoints if e.tier == tier and e.simulated and not e.is_baseline]
    _available = (id(all_endpoints), id(creds), out)
    return out


def baseline_endpoint() -> Endpoint | None:
    """What savings are measured against: the real baseline if any real model is used, else
    the simulator's baseline."""
    all_endpoints = endpoints.get()
    real_in_use = any(not e.simulated for e in available_endpoints())
    for e in all_endpoints:
        if e.is_baseline and e.simulated != real_in_use:
            return e
    return next((e for e in all_endpoints if e.is_baseline), None)


def find(model: str) -> Endpoint | None:
    """The endpoint named `provider/model` or just `model` (first match)."""
    for e in endpoints.get():
        if model in (e.model_id, e.model):
            return e
    return None
