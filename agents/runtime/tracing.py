"""Spans opened on behalf of a run nest under the run's own request span."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from observability import tracing as obs_tracing


@contextmanager
def under_run_trace(run: Any) -> Iterator[None]:
    """Spans opened inside join the run's trace (as children of its root span), wherever this
    runs: the API request, a worker, a beat task or an approver's request."""
    token = None
    if run.trace_id and run.root_span_id:
        span_hex = obs_tracing.span_id_hex(run.root_span_id)
        token = obs_tracing.attach_remote_parent(f"00-{run.trace_id.hex}-{span_hex}-01")
    try:
        yield
    finally:
        obs_tracing.detach(token)
