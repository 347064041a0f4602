from __future__ import annotations

import random

import pytest
from celery.exceptions import SoftTimeLimitExceeded
from pydantic import BaseModel

from agents.manifest import RetryPolicy
from agents.runtime.backoff import backoff_delay
from agents.runtime.errors import (
    ActionTimeout,
    PermanentError,
    RetryableError,
    classify_error_type,
    classify_exception,
)


class _HttpError(Exception):
    def __init__(self, status: int) -> None:
        super().__init__(f"HTTP {status}")
        self.status_code = status


class ReadTimeout(Exception):
    """Named like httpx's: recognized without importing httpx."""


class _Model(BaseModel):
    x: int


def _pydantic_error() -> Exception:
    try:
        _Model.model_validate({"x": "no"})
    except Exception as exc:  # noqa: BLE001
        return exc
    raise AssertionError


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (TimeoutError("slow"), "retryable"),
        (TimeoutError("slow"), "retryable"),
        (ConnectionRefusedError("refused"), "retryable"),
        (ConnectionResetError("reset"), "retryable"),
        (SoftTimeLimitExceeded(), "retryable"),
        (ActionTimeout("late"), "retryable"),
        (ReadTimeout("late"), "retryable"),
        (_HttpError(429), "retryable"),
        (_HttpError(500), "retryable"),
        (_HttpError(503), "retryable"),
        (_HttpError(400), "permanent"),
        (_HttpError(401), "permanent"),
        (_HttpError(403), "permanent"),
        (_HttpError(404), "permanent"),
        (PermissionError("no"), "permanent"),
        (ValueError("bad"), "permanent"),
        (RetryableError("x"), "retryable"),
        (PermanentError("x"), "permanent"),
        (RetryableError("x", status=404), "permanent"),
        (RuntimeError("unknown"), "permanent"),
    ],
)
def test_exceptions_are_classified(exc: Exception, expected: str) -> None:
    assert classify_exception(exc) == expected


def test_validation_errors_are_permanent() -> None:
    assert classify_exception(_pydantic_error()) == "permanent"


@pytest.mark.parametrize(
    ("error_type", "expected"),
    [
        ("transient_fault", "retryable"),
        ("resolver_timeout", "retryable"),
        ("http_429", "retryable"),
        ("status_502", "retryable"),
        ("http_404", "permanent"),
        ("dependency_unavailable", "retryable"),
        ("validation_gate", "permanent"),
        ("injected_permanent_fault", "permanent"),
    ],
)
def test_failed_results_are_classified_by_error_type(error_type: str, expected: str) -> None:
    assert classify_error_type(error_type) == expected


def test_backoff_doubles_up_to_the_cap_without_jitter(settings) -> None:  # type: ignore[no-untyped-def]
    settings.AIOS_RUN_BACKOFF_SCALE = 1.0
    policy = RetryPolicy(backoff_base_s=1, backoff_cap_s=10, jitter=False)
    assert [backoff_delay(policy, n) for n in range(1, 7)] == [1, 2, 4, 8, 10, 10]


def test_backoff_jitter_stays_between_half_and_all_of_the_step(settings) -> None:  # type: ignore[no-untyped-def]
    settings.AIOS_RUN_BACKOFF_SCALE = 1.0
    policy = RetryPolicy(backoff_base_s=2, backoff_cap_s=60, jitter=True)
    rng = random.Random(7)
    for attempt in range(1, 8):
        step = min(60, 2 * 2 ** (attempt - 1))
        delays = [backoff_delay(policy, attempt, rng=rng) for _ in range(200)]
        assert all(step / 2 <= d <= step for d in delays)
        assert max(delays) - min(delays) > step / 4  # actually spread


def test_backoff_scale_makes_test_waits_tiny(settings) -> None:  # type: ignore[no-untyped-def]
    settings.AIOS_RUN_BACKOFF_SCALE = 0.001
    assert backoff_delay(RetryPolicy(jitter=False), 3) == pytest.approx(0.004)
