"""What a handler gets besides its payload."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

from agents.runtime.errors import ActionTimeout
from agents.runtime.executor import Executor


@dataclass
class ExecutionContext:
    agent: str
    action: str
    executor: Executor
    forensic: bool = False
    run_id: UUID | None = None
    attempt: int = 1
    user_id: int | None = None
    deadline: float = field(default_factory=lambda: time.monotonic() + 60)
    span: Any = None
    notes: list[str] = field(default_factory=list)

    @property
    def idempotency_key(self) -> str:
        """Stable across redeliveries and retries of one run: key side effects by it."""
        return f"run:{self.run_id}" if self.run_id else f"preview:{id(self)}"

    def note(self, text: str) -> None:
        self.notes.append(text)

    def check_deadline(self) -> None:
        """Long handlers call this between steps; the timeout is retryable."""
        if time.monotonic() > self.deadline:
            raise ActionTimeout(f"{self.agent}.{self.action} ran past its run timeout")

    def remaining_s(self) -> float:
        return max(self.deadline - time.monotonic(), 0.0)
