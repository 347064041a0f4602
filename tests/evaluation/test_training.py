"""Closing the loop: human and judge scores on routed requests become router training rows, with provenance."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from evaluation.models import ContinuousEvaluation, EvalResult, EvalRun
from evaluation.services import (
    annotation_items_add_spans,
    annotation_items_add_traces,
    annotation_next,
    annotation_queue_create,
    annotation_submit,
    evalrun_create,
    evalrun_training_rows_write,
)
from evaluation.tasks import continuous_tick
from observability.models import Span, Trace
from routing.models import ModelEndpoint, ProviderCredential, RouterTrainingExample, RoutingDecision
from tests.evaluation.factories import make_dataset, make_evaluator
from tests.factories import make_user
from tests.routing.provider_server import ProviderServer, ScriptedResponse

QUESTION = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "What is 2+2?"}]
_ids = iter(range(1000, 10**6, 10))


def _decision(trace_id: uuid.UUID, model: str, at: Any, decided_by: str = "heuristic", **fields: Any) -> Any:
    return RoutingDecision.objects.create(created_at=at, trace_id=trace_id, complexity="simple", score=0.3,
                                          decided_by=decided_by, chosen_model=model, **fields)  # fmt: skip


AGENT = "training-test"  # continuous evaluation here samples only this test's spans (others may still be flushing)


def _routed_span(model: str, *, decided_by: str | None = "heuristic", answer: str = "5") -> Span:
    """An LLM call in a gateway trace, routed by a decision made just before it (None: no decision)."""
    now, trace_id = timezone.now(), uuid.uuid4()
    if decided_by:
        _decision(trace_id, model, now - timedelta(milliseconds=5), decided_by)
    Trace.objects.create(trace_id=trace_id, name="gateway.chat_completions", started_at=now, ended_at=now)
    return Span.objects.create(
        span_id=next(_ids), trace_id=trace_id, parent_span_id=1, name=f"chat {model}", kind="llm", model=model,
        agent=AGENT, started_at=now, ended_at=now, latency_ms=5,
        attributes={"gen_ai.input.messages": QUESTION,
                    "gen_ai.output.messages": [{"role": "assistant", "content": answer}]},
    )  # fmt: skip


def _review(queue: Any, scores: dict[str, Any], annotator: Any) -> None:
    item = annotation_next(queue=queue, user=annotator)
    annotation_submit(item=item, user=annotator, scores=scores)


@pytest.mark.django_db
def test_a_human_verdict_on_a_routed_answer_labels_the_tier_that_answered() -> None:
    annotator = make_user("annotator", username="ana")
    scores = [{"kind": "boolean", "name": "correct"}, {"kind": "numeric", "name": "style", "min": 1, "max": 5}]
    queue = annotation_queue_create(name="answers", score_configs=scores, user=annotator)
    weak, strong = _routed_span("sim/simple"), _routed_span("sim/complex")
    skipped = [_routed_span("sim/medium"), _routed_span("sim/simple", decided_by="explicit"),
               _routed_span("sim/simple", decided_by=None)]  # fmt: skip
    refs = [(s.trace_id, s.span_id) for s in (weak, strong, *skipped)]
    annotation_items_add_spans(queue=queue, refs=refs, user=annotator)
    _review(queue, {"correct": False, "style": 5}, annotator)  # the boolean decides, not the 5/5 style
    _review(queue, {"correct": True, "style": 1}, annotator)
    for _ in skipped:
        _review(queue, {"correct": True, "style": 3}, annotator)
    rows = list(RouterTrainingExample.objects.order_by("id"))
    assert [(r.prompt, r.weak_correct, r.strong_correct, r.source) for r in rows] == [
        ("Be brief.\nWhat is 2+2?", False, None, "human"), ("Be brief.\nWhat is 2+2?", None, True, "human")
    ]  # fmt: skip
    provenance = rows[0].provenance
    decision = RoutingDecision.objects.get(trace_id=weak.trace_id)
    item = queue.items.get(span_id=weak.span_id)
    assert provenance == provenance | {"queue": str(queue.uuid), "item": str(item.uuid), "annotator": "ana",
                                       "decision": decision.id, "score": 0.0, "threshold": 0.5, "tier": "simple",
                                       "model": "sim/simple", "score_name": "correct"}  # fmt: skip
    assert rows[0].created_by == annotator


@pytest.mark.django_db
def test_a_trace_item_is_labelled_by_its_last_call_and_a_numeric_score_scaled_to_its_range() -> None:
    annotator = make_user("annotator")
    scores = [{"kind": "numeric", "name": "quality", "min": 1, "max": 5}]
    queue = annotation_queue_create(name="traces", score_configs=scores, user=annotator)
    span = _routed_span("sim/simple")
    # A second call later in the same trace, routed to the strong tier: the item's answer is its.
    later = span.started_at + timedelta(seconds=1)
    _decision(span.trace_id, "sim/complex", later - timedelta(milliseconds=5))
    Span.objects.create(span_id=next(_ids), trace_id=span.trace_id, parent_span_id=1, name="chat", kind="llm",
                        model="sim/complex", started_at=later, ended_at=later, latency_ms=5,
                        attributes={"gen_ai.input.messages": QUESTION, "gen_ai.output.messages": "4"})  # fmt: skip
    annotation_items_add_traces(queue=queue, trace_ids=[span.trace_id], user=annotator)
    _review(queue, {"quality": 4}, annotator)  # (4 - 1) / (5 - 1) = 0.75: correct
    row = RouterTrainingExample.objects.get()
    assert (row.weak_correct, row.strong_correct, row.provenance["score"]) == (None, True, 0.75)
    assert row.provenance["decision"] == RoutingDecision.objects.filter(trace_id=span.trace_id).latest("id").id


@pytest.mark.django_db
def test_judge_scores_of_a_finished_router_run_label_its_answers_once() -> None:
    dataset = make_dataset([(QUESTION, "4")])
    run = EvalRun.objects.create(dataset=dataset, target="auto", items_total=1, status="succeeded",
                                 finished_at=timezone.now(), evaluator_configs=[
                                     {"name": "judge", "kind": "llm_judge", "config": {"rubric": "right?"}},
                                     {"name": "exact", "kind": "exact_match", "config": {}}])  # fmt: skip
    started, trace_id = timezone.now(), uuid.uuid4()
    EvalResult.objects.create(run=run, item=dataset.items.get(), output="4", model="sim/complex", latency_ms=50,
                              trace_id=trace_id, created_at=started,
                              scores={"judge": {"value": 0.9}, "exact": {"value": 0.0}})  # fmt: skip
    target = _decision(trace_id, "sim/complex", started + timedelta(milliseconds=2))
    _decision(trace_id, "sim/simple", started + timedelta(milliseconds=80), username="evaluation-judge")
    assert evalrun_training_rows_write(run_id=run.pk) == 1
    row = RouterTrainingExample.objects.get()
    assert (row.weak_correct, row.strong_correct, row.source) == (None, True, "judge")  # the judge's 0.9, only
    assert row.provenance | {"eval_run": str(run.uuid), "evaluator": "judge", "decision": target.id} == row.provenance
    assert evalrun_training_rows_write(run_id=run.pk) == 0  # once per run


# --- end to end, with a judge that answers through the router -------------------------------------------


def _verdict(score: float) -> ScriptedResponse:
    content = json.dumps({"score": score, "label": "ok" if score >= 0.5 else "wrong", "reasoning": "checked"})
    return ScriptedResponse(body={
        "id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "judge-1",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 50, "completion_tokens": 20, "total_tokens": 70},
    })  # fmt: skip


@pytest.fixture
def judge_server() -> Iterator[ProviderServer]:
    """A local OpenAI-compatible server standing in for the judge's model, in the catalog as
    `openai_compatible/judge-1` (lowest priority, so the router never picks it for a target)."""
    from routing import catalog

    server = ProviderServer().start()
    ProviderCredential.objects.update_or_create(provider="openai_compatible", defaults={"base_url": server.url + "/v1"})
    ModelEndpoint.objects.update_or_create(provider="openai_compatible", model="judge-1",
                                           defaults={"tier": "medium", "priority": -1000})  # fmt: skip
    catalog.endpoints.bump()
    catalog.credentials.bump()
    yield server
    server.stop()
    catalog.endpoints.bump()
    catalog.credentials.bump()


JUDGE = {"rubric": "Is the answer right?", "model": "openai_compatible/judge-1", "max_attempts": 1}


@pytest.mark.django_db(transaction=True)  # the router loads its catalog on another connection
def test_continuous_evaluation_turns_judge_verdicts_on_routed_calls_into_training_rows(
    judge_server: Any, settings: Any
) -> None:
    from tests.seeds import ensure_seed_data

    settings.AIOS_EVAL_CONCURRENCY = 1  # spans judged one by one, in order: the scripted verdicts match them

    ensure_seed_data()  # transactional tests truncate the seeded catalog
    config = ContinuousEvaluation.objects.create(name="judged", sample_rate=1.0, threshold=0.5, agent=AGENT)
    config.evaluators.set([make_evaluator("llm_judge", name="judge", **JUDGE)])
    # Different answers: the judge's verdict on an identical question and answer may come from the cache.
    weak, strong = _routed_span("sim/simple", answer="5"), _routed_span("sim/complex", answer="4")
    judge_server.enqueue(_verdict(0.1), _verdict(0.8))  # in the order the spans are judged (their pk order)
    result = continuous_tick.apply().get()
    assert (result["scored"], result["trained"]) == (2, 2)
    rows = {r.provenance["span"]: r for r in RouterTrainingExample.objects.all()}
    assert (rows[weak.span_id_hex].weak_correct, rows[weak.span_id_hex].strong_correct) == (False, None)
    assert (rows[strong.span_id_hex].weak_correct, rows[strong.span_id_hex].strong_correct) == (None, True)
    assert rows[weak.span_id_hex].provenance | {"continuous": "judged", "evaluator": "judge", "threshold": 0.5,
                                                "score": 0.1} == rows[weak.span_id_hex].provenance  # fmt: skip
    # A later tick labels nothing twice (the judge's own calls are never sampled: test_continuous.py).
    judge_server.enqueue(_verdict(0.9), _verdict(0.9))
    assert continuous_tick.apply().get() == {"scored": 0, "queued": 0, "trained": 0}
    assert RouterTrainingExample.objects.count() == 2


@pytest.mark.django_db(transaction=True)
def test_a_router_eval_run_through_a_real_worker_labels_the_router_after_it_finishes(
    celery_worker: Any, judge_server: Any
) -> None:
    from routing import catalog
    from tests.seeds import ensure_seed_data

    ensure_seed_data()  # transactional tests truncate the seeded catalog
    ModelEndpoint.objects.update_or_create(provider="openai_compatible", model="judge-1",
                                           defaults={"tier": "medium", "priority": -1000})  # fmt: skip
    catalog.endpoints.bump()  # the worker reloads its catalog on the version
    judge_server.enqueue(_verdict(0.9))
    dataset = make_dataset([("Say hello.", None)], name="routed")
    run = evalrun_create(dataset=dataset, target="auto", user=make_user("operator"),
                         evaluators=[make_evaluator("llm_judge", name="judge", **JUDGE)])  # fmt: skip
    deadline = time.monotonic() + 60
    while not RouterTrainingExample.objects.exists() and time.monotonic() < deadline:
        time.sleep(0.3)
    run.refresh_from_db()
    result = run.results.get()
    assert run.status == "succeeded" and result.scores["judge"]["value"] == 0.9, result.scores
    row = RouterTrainingExample.objects.get()
    assert row.source == "judge" and row.prompt == "Say hello." and row.provenance["eval_run"] == str(run.uuid)
    assert row.provenance["model"] == result.model and run.training_rows_at is not None
