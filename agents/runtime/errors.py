"""Error classification: retryable (timeouts, connection errors, 429, 5xx, soft time limit) or
permanent (validation, permission, other 4xx, and anything we do not recognize)."""

from __future__ import annotations

import re
import socket
from typing import Literal

from celery.exceptions import SoftTimeLimitExceeded
from django.db import InterfaceError, OperationalError
from pydantic import ValidationError as PydanticValidationError

ErrorClass = Literal["retryable", "permanent"]
RETRYABLE: ErrorClass = "retryable"
PERMANENT: ErrorClass = "permanent"


class ActionError(Exception):
    """Raised by handlers that know what kind of failure they hit."""

    error_class: ErrorClass = PERMANENT

    def __init__(self, message: str, *, error_type: str = "", status: int | None = None) -> None:
        super().__init__(message)
        self.error_type = error_type or type(self).__name__
        self.status = status


class RetryableError(ActionError):
    error_class = RETRYABLE


class PermanentError(ActionError):
    error_class = PERMANENT


class ActionTimeout(TimeoutError):
    """The action ran past its policy's run_timeout_s."""


class GateFailed(PermanentError):
    """The validation gate refused a successful-looking result."""


class ForensicRefusal(PermissionError):
    """A change was attempted outside the executor while the run is forensic."""


_RETRYABLE_TYPES: tuple[type[BaseException], ...] = (
    TimeoutError,
    socket.timeout,
    ConnectionError,
    SoftTimeLimitExceeded,
    OperationalError,
    InterfaceError,
)
_PERMANENT_TYPES: tuple[type[BaseException], ...] = (
    PydanticValidationError,
    PermissionError,
    ValueError,
    TypeError,
    KeyError,
    LookupError,
    NotImplementedError,
)
# error_type strings a handler may put in a failed ActionResult
_RETRYABLE_NAMES = re.compile(
    r"(timeout|timed_?out|connection|connect_error|unavailable|throttl|rate_?limit|transient)", re.I
)
_HTTP_IN_NAME = re.compile(r"(?:http|status)[_ ]?(\d{3})", re.I)


def classify_status(status: int) -> ErrorClass:
    return RETRYABLE if status == 429 or status >= 500 else PERMANENT


def _status_of(exc: BaseException) -> int | None:
    for attr in ("status", "status_code"):
        value = getattr(exc, attr, None)
        if isinstance(value, int) and 400 <= value <= 599:
            return value
    response = getattr(exc, "response", None)
    value = getattr(response, "status_code", None)
    return value if isinstance(value, int) and 400 <= value <= 599 else None


def classify_exception(exc: BaseException) -> ErrorClass:
    if isinstance(exc, ActionError):
        if exc.status is not None:
            return classify_status(exc.status)
        return exc.error_class
    status = _status_of(exc)
    if status is not None:
        return classify_status(status)
    if isinstance(exc, ForensicRefusal):
        return PERMANENT
    if isinstance(exc, _RETRYABLE_TYPES):
        return RETRYABLE
    name = type(exc).__name__
    if "Timeout" in name or "ConnectError" in name or "ConnectionError" in name:
        return RETRYABLE  # httpx, requests, redis: no need to import them here
    if isinstance(exc, _PERMANENT_TYPES):
        return PERMANENT
    return PERMANENT  # unknown: do not repeat what we do not understand


def classify_error_type(error_type: str) -> ErrorClass:
    """For a failed ActionResult: its `error_type` names the failure."""
    match = _HTTP_IN_NAME.search(error_type)
    if match:
        return classify_status(int(match.group(1)))
    return RETRYABLE if _RETRYABLE_NAMES.search(error_type) else PERMANENT


def error_type_of(exc: BaseException) -> str:
    if isinstance(exc, ActionError):
        return exc.error_type
    return f"{type(exc).__module__}.{type(exc).__qualname__}".removeprefix("builtins.")
