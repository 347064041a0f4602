"""LLM provider clients (OpenAI, Anthropic, Gemini, OpenAI-compatible servers) and a simulator,
all speaking one normalized model: `ChatRequest` in, `ChatResponse` or `StreamEvent`s out."""

from routing.providers.base import (
    ChatRequest,
    ChatResponse,
    Provider,
    ProviderError,
    StreamEvent,
    Usage,
    call_with_retries,
    complete_sync,
    run_sync,
)
from routing.providers.registry import ProviderNotConfigured, is_configured, parse_model_id, provider_for

__all__ = [
    "ChatRequest",
    "ChatResponse",
    "Provider",
    "ProviderError",
    "ProviderNotConfigured",
    "StreamEvent",
    "Usage",
    "call_with_retries",
    "complete_sync",
    "is_configured",
    "parse_model_id",
    "provider_for",
    "run_sync",
]
