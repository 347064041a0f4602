"""Provider lookup: model ids (`provider/model`), keys and base URLs from arguments or the environment,
and one long-lived client per (provider, base URL, key) so connections are pooled across calls."""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Callable, Mapping
from typing import Any

from routing.providers.anthropic import ANTHROPIC_BASE_URL, AnthropicProvider
from routing.providers.base import Provider
from routing.providers.gemini import GEMINI_BASE_URL, GeminiProvider
from routing.providers.openai import OPENAI_BASE_URL, OpenAICompatibleProvider, OpenAIProvider
from routing.providers.simulator import SimulatorProvider

PROVIDER_NAMES = ("openai", "anthropic", "gemini", "openai_compatible", "sim")
_KEY_ENV: dict[str, tuple[str, ...]] = {
    "openai": ("OPENAI_API_KEY",),
    "anthropic": ("ANTHROPIC_API_KEY",),
    "gemini": ("GEMINI_API_KEY", "GOOGLE_API_KEY"),
    "openai_compatible": ("AIOS_OPENAI_COMPATIBLE_API_KEY",),
}
_BASE_URL_ENV: dict[str, tuple[str, ...]] = {
    "openai": ("OPENAI_BASE_URL",),
    "anthropic": ("ANTHROPIC_BASE_URL",),
    "gemini": ("GEMINI_BASE_URL", "GOOGLE_GEMINI_BASE_URL"),
    "openai_compatible": ("AIOS_OPENAI_COMPATIBLE_BASE_URL",),
}
_DEFAULT_BASE_URL = {"openai": OPENAI_BASE_URL, "anthropic": ANTHROPIC_BASE_URL, "gemini": GEMINI_BASE_URL}
_KEY_OPTIONAL = frozenset({"openai_compatible"})  # local vLLM / Ollama / llama.cpp usually run without one

_providers: dict[tuple[str, str, str], Provider] = {}
_lock = threading.Lock()


class ProviderNotConfigured(LookupError):
    """No key (or, for openai_compatible, no base URL) for a provider."""


def parse_model_id(model_id: str) -> tuple[str, str]:
    """`openai/gpt-4o-mini` -> ("openai", "gpt-4o-mini"); the model part may itself contain slashes."""
    provider, sep, model = model_id.partition("/")
    if not sep or not model or provider not in PROVIDER_NAMES:
        raise ValueError(f"model id must be <provider>/<model> with provider in {PROVIDER_NAMES}: {model_id!r}")
    return provider, model


_PROVIDER_CLASSES = {
    "openai": OpenAIProvider,
    "openai_compatible": OpenAICompatibleProvider,
    "anthropic": AnthropicProvider,
    "gemini": GeminiProvider,
}


def unsupported_params(provider: str, extra: Mapping[str, Any]) -> list[str]:
    """The request parameters (`ChatRequest.extra`) that `provider` cannot honour. The simulator
    takes every one: its answers are synthetic, and it says so."""
    cls = _PROVIDER_CLASSES.get(provider)
    return cls.unsupported(extra) if cls is not None and extra else []


def _first_env(names: tuple[str, ...], env: Mapping[str, str]) -> str | None:
    return next((env[name] for name in names if env.get(name)), None)


def is_configured(name: str, env: Mapping[str, str] | None = None) -> bool:
    """Whether `provider_for(name)` would find what it needs in the environment."""
    env = os.environ if env is None else env
    if name == "sim":
        return True
    if name == "openai_compatible":
        return _first_env(_BASE_URL_ENV[name], env) is not None
    return _first_env(_KEY_ENV.get(name, ()), env) is not None


def provider_for(name: str, *, api_key: str | None = None, base_url: str | None = None) -> Provider:
    """The shared provider for `name`; arguments win over OPENAI_API_KEY, ANTHROPIC_API_KEY,
    GEMINI_API_KEY / GOOGLE_API_KEY, *_BASE_URL and AIOS_OPENAI_COMPATIBLE_* variables."""
    if name not in PROVIDER_NAMES:
        raise ValueError(f"unknown provider {name!r}; expected one of {PROVIDER_NAMES}")
    if name == "sim":
        return _cached(("sim", "", ""), lambda: SimulatorProvider())
    api_key = api_key or _first_env(_KEY_ENV[name], os.environ)
    base_url = (base_url or _first_env(_BASE_URL_ENV[name], os.environ) or _DEFAULT_BASE_URL.get(name, "")).rstrip("/")
    if not base_url:
        raise ProviderNotConfigured(f"{name} needs a base URL (AIOS_OPENAI_COMPATIBLE_BASE_URL)")
    if not api_key and name not in _KEY_OPTIONAL:
        raise ProviderNotConfigured(f"{name} has no API key: set {' or '.join(_KEY_ENV[name])} or enter one")
    # The cache holds a fingerprint, not the key, so dumping it (debuggers, error pages) shows nothing.
    fingerprint = hashlib.sha256(api_key.encode()).hexdigest()[:16] if api_key else ""
    return _cached((name, base_url, fingerprint), lambda: _build(name, api_key=api_key, base_url=base_url))


def _build(name: str, *, api_key: str | None, base_url: str) -> Provider:
    if name == "openai":
        return OpenAIProvider(api_key=api_key, base_url=base_url)
    if name == "openai_compatible":
        return OpenAICompatibleProvider(api_key=api_key, base_url=base_url)
    if name == "anthropic":
        return AnthropicProvider(api_key=api_key, base_url=base_url)
    return GeminiProvider(api_key=api_key, base_url=base_url)


def _cached(key: tuple[str, str, str], build: Callable[[], Provider]) -> Provider:
    provider = _providers.get(key)
    if provider is None:
        with _lock:  # two threads asking at once must not end up with two pools
            provider = _providers.get(key) or _providers.setdefault(key, build())
    return provider


async def aclose_providers() -> None:
    """Close every shared provider's connections on the running loop (gateway shutdown, tests)."""
    for provider in list(_providers.values()):
        await provider.aclose()


def forget_providers() -> None:
    """Drop the shared providers so the next lookup re-reads the environment (tests, key rotation)."""
    with _lock:
        _providers.clear()
