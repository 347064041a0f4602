"""Routing decisions are written like spans: buffered, in batches, off the request path."""

from __future__ import annotations

import json
import os
import threading
from typing import Any
from uuid import UUID

from observability.batching import BufferedWriter
from routing.router import Decision

COLUMNS = (
    "created_at",
    "trace_id",
    "complexity",
    "score",
    "decided_by",
    "chosen_model",
    "alternatives",
    "constraints",
    "features",
    "estimated_input_tokens",
    "estimated_output_tokens",
    "estimated_cost_usd",
    "baseline_cost_usd",
    "reason",
    "username",
    "api_token",
)
COPY_SQL = f"COPY routing_routingdecision ({', '.join(COLUMNS)}) FROM STDIN"


def decision_row(decision: Decision, *, trace_id: UUID | None, username: str = "", api_token: str = "") -> tuple:
    return (
        decision.created_at,
        trace_id,
        decision.complexity,
        decision.score,
        decision.decided_by,
        decision.chosen.model_id,
        json.dumps([e.model_id for e in decision.alternatives]),
        json.dumps(decision.constraints.as_dict()),
        json.dumps(decision.features, default=str),
        decision.estimated_input_tokens,
        decision.estimated_output_tokens,
        decision.estimated_cost_usd,
        decision.baseline_cost_usd,
        decision.reason[:2000],
        username or "",
        api_token or "",
    )


class DecisionWriter(BufferedWriter):
    name = "routing-decision"

    def write_batch(self, conn: Any, batch: list[tuple]) -> None:
        with conn.transaction(), conn.cursor() as cur, cur.copy(COPY_SQL) as copy:
            for row in batch:
                copy.write_row(row)


_writer: DecisionWriter | None = None
_pid: int | None = None
_lock = threading.Lock()


def get_decision_writer() -> DecisionWriter:
    global _writer, _pid
    if _writer is None or _pid != os.getpid():
        with _lock:
            if _writer is None or _pid != os.getpid():
                _writer = DecisionWriter(max_items=100_000, flush_interval_s=0.5, batch_size=2000)
                _pid = os.getpid()
    return _writer


def record(decision: Decision, *, trace_id: UUID | None, username: str = "", api_token: str = "") -> None:
    get_decision_writer().add(decision_row(decision, trace_id=trace_id, username=username, api_token=api_token))


def flush_at_exit() -> None:
    if _writer is not None and _pid == os.getpid():
        _writer.close(timeout=10)
