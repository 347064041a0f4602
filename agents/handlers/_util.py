"""Small helpers shared by the agents."""

from __future__ import annotations

from typing import Any

from agents.manifest import ActionResult


def ok(
    message: str, payload: dict[str, Any] | None = None, *, confidence: float = 1.0, **metadata: Any
) -> ActionResult:
    return ActionResult(
        success=True, message=message, payload=payload or {}, metadata={"confidence": confidence, **metadata}
    )


def fail(message: str, error_type: str, payload: dict[str, Any] | None = None, **metadata: Any) -> ActionResult:
    return ActionResult(
        success=False,
        message=message,
        error=message,
        error_type=error_type,
        payload=payload or {},
        metadata={"confidence": 1.0, **metadata},
    )


def read_text(path: str, default: str = "") -> str:
    try:
        with open(path) as fh:
            return fh.read()
    except OSError:
        return default


def has_key(key: str) -> Any:
    """A validation gate: the result payload must carry `key`."""

    def gate(result: ActionResult, payload: Any) -> str | None:
        return None if key in result.payload else f"result has no {key!r}"

    return gate
