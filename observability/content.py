"""Prompt and response content on spans: behind a setting, capped in size, redacted.

Stored as OpenTelemetry's `gen_ai.input.messages` / `gen_ai.output.messages` attributes.
`AIOS_CAPTURE_CONTENT=0` turns capture off; `AIOS_CONTENT_REDACTOR` names a function
(text -> text) applied to every captured string (default: mask keys and tokens).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache
from typing import Any

from django.conf import settings
from django.utils.module_loading import import_string

TRUNCATED = "…[truncated]"


@lru_cache(maxsize=1)
def _redactor() -> Callable[[str], str]:
    return import_string(getattr(settings, "AIOS_CONTENT_REDACTOR", "aios_core.logging.redact"))


def _clip(text: str, budget: list[int]) -> str:
    text = _redactor()(text)
    if len(text) > budget[0]:
        text = text[: max(0, budget[0])] + TRUNCATED
    budget[0] -= len(text)
    return text


def _clean(value: Any, budget: list[int]) -> Any:
    if isinstance(value, str):
        return _clip(value, budget)
    if isinstance(value, dict):
        return {k: _clean(v, budget) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v, budget) for v in value]
    return value


def capture(attributes: dict[str, Any], *, input_messages: Any = None, output_messages: Any = None) -> None:
    if not getattr(settings, "AIOS_CAPTURE_CONTENT", True):
        return
    limit = int(getattr(settings, "AIOS_CONTENT_MAX_CHARS", 8000))
    if input_messages is not None:
        attributes["gen_ai.input.messages"] = _clean(input_messages, [limit])
    if output_messages is not None:
        attributes["gen_ai.output.messages"] = _clean(output_messages, [limit])
