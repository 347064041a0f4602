"""The tracing API: nesting (threads, asyncio, Celery), failures, tokens and cost, content."""

from __future__ import annotations

import asyncio
import threading
from decimal import Decimal

import pytest
from django.test import override_settings

from observability import get_observability
from observability.models import ModelPrice, Span, Trace
from observability.pricing import prices
from tests.observability.helpers import flushed, spans_named

pytestmark = pytest.mark.django_db(transaction=True)
obs = get_observability()


def test_nested_spans_share_the_trace_and_point_at_their_parent() -> None:
    with obs.trace_span("agent.action", agent_name="security", kind="action"), obs.trace_span("llm.call", kind="llm"):
        pass
    spans = spans_named("agent.action", "llm.call")
    root, child = spans["agent.action"], spans["llm.call"]
    assert root.parent_span_id is None and child.parent_span_id == root.span_id
    assert child.trace_id == root.trace_id
    assert child.agent == "security"  # inherited
    trace = Trace.objects.get(pk=root.trace_id)
    assert trace.name == "agent.action" and trace.span_count == 2 and trace.agent == "security"


def test_threads_nest_through_wrap() -> None:
    with obs.trace_span("parent") as parent:
        worker = threading.Thread(target=obs.wrap(lambda: obs.trace_span("in.thread").__enter__().end()))
        worker.start()
        worker.join()
        unwrapped = threading.Thread(target=lambda: obs.trace_span("bare.thread").end())
        unwrapped.start()
        unwrapped.join()
    spans = spans_named("parent", "in.thread", "bare.thread")
    assert spans["in.thread"].parent_span_id == parent.span_id
    assert spans["bare.thread"].parent_span_id is None  # no context copied: a new trace
    assert spans["bare.thread"].trace_id != parent.trace_id


def test_asyncio_tasks_inherit_the_current_span() -> None:
    async def child(name: str) -> None:
        async with obs.trace_span(name):
            await asyncio.sleep(0.01)

    async def main() -> int:
        async with obs.trace_span("async.parent") as parent:
            await asyncio.gather(child("async.a"), child("async.b"))
        return parent.span_id

    parent_id = asyncio.run(main())
    spans = spans_named("async.a", "async.b")
    assert {s.parent_span_id for s in spans.values()} == {parent_id}


def test_an_exception_marks_the_span_failed_and_is_reraised() -> None:
    with pytest.raises(ZeroDivisionError), obs.trace_span("will.fail"):
        1 / 0  # noqa: B018
    span = spans_named("will.fail")["will.fail"]
    assert span.status == "error" and span.error_type == "ZeroDivisionError"
    assert span.error_message == "division by zero" and "1 / 0" in span.error_stack
    assert Trace.objects.get(pk=span.trace_id).error_count == 1


def test_tokens_and_cost_are_recorded_from_the_price_table() -> None:
    ModelPrice.objects.create(provider="openai", pattern="test-model", input_per_mtok=Decimal("1"),
                              output_per_mtok=Decimal("4"), cached_input_per_mtok=Decimal("0.5"),
                              effective_from="2020-01-01T00:00:00Z")  # fmt: skip
    prices.invalidate()
    with obs.trace_span("llm", kind="llm") as span:
        span.set_tokens(input_tokens=1000, output_tokens=200, cached_input_tokens=400, reasoning_tokens=50,
                        model="test-model", provider="openai")  # fmt: skip
    row = spans_named("llm")["llm"]
    assert (row.input_tokens, row.output_tokens, row.cached_input_tokens, row.reasoning_tokens) == (1000, 200, 400, 50)
    assert row.cost_usd == Decimal("0.0016")  # (600 x 1 + 400 x 0.5 + 200 x 4) / 1e6
    assert row.cost_status == "priced"


def test_a_model_without_price_is_flagged_unknown() -> None:
    with obs.trace_span("llm.unknown", kind="llm") as span:
        span.set_tokens(input_tokens=10, output_tokens=10, model="nobody-prices-this")
    row = spans_named("llm.unknown")["llm.unknown"]
    assert row.cost_usd is None and row.cost_status == "unknown_model"


def test_spans_carry_who_caused_them() -> None:
    from aios_core import context

    with context.bound(username="dana", api_token="billing-app"), obs.trace_span("by.token"):
        pass
    row = spans_named("by.token")["by.token"]
    assert (row.username, row.api_token) == ("dana", "billing-app")


def test_content_is_capped_redacted_and_can_be_turned_off() -> None:
    secret = "aios_deadbeef_" + "S" * 40
    with obs.trace_span("with.content") as span:
        span.set_messages(input_messages=[{"role": "user", "content": "x" * 20000 + secret}], output_messages=["ok"])
    with override_settings(AIOS_CAPTURE_CONTENT=False), obs.trace_span("no.content") as span2:
        span2.set_messages(input_messages=[{"role": "user", "content": "hello"}])
    spans = spans_named("with.content", "no.content")
    stored = spans["with.content"].attributes["gen_ai.input.messages"][0]["content"]
    assert len(stored) < 9000 and stored.endswith("[truncated]")
    assert "gen_ai.input.messages" not in spans["no.content"].attributes
    with obs.trace_span("short.secret") as span3:
        span3.set_messages(input_messages=[{"role": "user", "content": f"my token is {secret}"}])
    assert "S" * 40 not in str(spans_named("short.secret")["short.secret"].attributes)


def test_a_celery_task_nests_under_the_span_that_sent_it(celery_worker) -> None:  # type: ignore[no-untyped-def]
    from observability.tasks import trace_probe

    with obs.trace_span("sends.task") as parent:
        result = trace_probe.delay("in.worker").get(timeout=60)
    flushed()
    child = Span.objects.get(name="in.worker")
    assert result["trace_id"] == parent.trace_id.hex
    assert child.trace_id == parent.trace_id and child.parent_span_id == parent.span_id
    trace = Trace.objects.get(pk=parent.trace_id)
    assert trace.name == "sends.task" and trace.span_count == 2
