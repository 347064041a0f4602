"""A/B tests end to end: an eval-run test through a real Celery worker reaching a verdict, and a live test
whose routing policy the real gateway applies to traffic sent with the official openai SDK."""

from __future__ import annotations

import time
import uuid
from collections import Counter
from collections.abc import Callable
from typing import Any

import openai
import pytest
from asgiref.sync import async_to_sync

from aios_site.tokens import token_create
from evaluation import stats
from evaluation.abtests import analysis as abtest_analysis
from evaluation.abtests.collect import abtest_collect
from evaluation.abtests.runner import call_variant
from evaluation.abtests.services import abtest_create, abtest_start, abtest_stop
from evaluation.models import ABTest
from observability.models import Span
from routing.models import RoutingDecision
from routing.policies import PolicyVariant, assign
from tests.evaluation.factories import abtest_spec, make_effect_dataset, make_evaluator
from tests.factories import make_user
from tests.observability.helpers import flushed
from tests.seeds import ensure_seed_data

pytestmark = pytest.mark.django_db(transaction=True)

SIMPLE = "Translate 'good morning' to French."


def _until(check: Callable[[], Any], timeout_s: float = 60, what: str = "the condition") -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"{what} did not happen within {timeout_s} s")


def test_an_eval_run_ab_test_reaches_a_verdict_through_a_real_worker(celery_worker: Any) -> None:
    operator = make_user("operator")
    make_evaluator("contains")
    # True success rates 0.5 (control) and 0.8 (treatment); the plan is sized for 0.2 and needs 96 per arm.
    test = abtest_create(spec=abtest_spec(make_effect_dataset(300)), user=operator)
    abtest_start(test=test, user=operator)

    def finished() -> ABTest | None:
        test.refresh_from_db()
        return test if test.status != "running" else None

    _until(finished, what="the verdict")
    assert test.status == "decided" and "Ship B." in test.verdict, test.verdict
    a, b, missing = abtest_analysis.arm_values(test)
    assert missing == [0, 0] and a.size == b.size and a.size < 300  # it stopped before the dataset ran out
    size = test.analysis_plan.look_sizes[test.decided_look]
    result, decision = stats.decide(test.analysis_plan, a[:size], b[:size], kind="proportion")
    assert decision.status == "significant" and result is not None and result.difference > 0.1
    assert test.verdict == stats.verdict(result, abtest_analysis.analyse(test).decision, metric="success rate")


def test_a_model_variant_in_an_eval_run_is_routed_by_its_policy_and_tagged() -> None:
    ensure_seed_data()
    variant = PolicyVariant(name="strong", model="auto", min_tier="complex", template="Q: {input}")
    attributes = {"aios.ab.test": "t-1", "aios.ab.variant": "strong"}
    output, cost = async_to_sync(call_variant)(variant, "hello", attributes)
    assert output.startswith("[simulated sim/complex] On 'Q: hello'") and cost > 0
    flushed()
    llm = Span.objects.get(kind="llm", attributes__contains=attributes)
    assert llm.model == "sim/complex"
    decision = _until(lambda: RoutingDecision.objects.filter(trace_id=llm.trace_id).first(), 10, "the decision")
    assert decision.features["aios.ab.variant"] == "strong" and "raised to complex" in decision.reason


@pytest.fixture
def client(asgi_server: str) -> Any:
    ensure_seed_data()
    _, raw = token_create(user=make_user("operator", username=f"app-{uuid.uuid4().hex[:6]}"), name="app",
                          scopes=["gateway"])  # fmt: skip
    c = openai.OpenAI(base_url=f"{asgi_server}/v1", api_key=raw, max_retries=0)
    time.sleep(0.6)  # the server notices new versions within AIOS_CONFIG_RECHECK_S (0.5 s)
    yield c
    c.close()


def _ask(client: openai.OpenAI, model: str = "auto") -> tuple[str, str]:
    raw = client.chat.completions.with_raw_response.create(model=model, messages=[{"role": "user", "content": SIMPLE}])
    return raw.headers["x-aios-model"], raw.headers["x-aios-trace-id"]


def _spans(trace_ids: list[str], kind: str) -> dict[str, Span]:
    ids = [uuid.UUID(t) for t in trace_ids]

    def written() -> dict[str, Span] | None:
        spans = {s.trace_id.hex: s for s in Span.objects.filter(trace_id__in=ids, kind=kind)}
        return spans if len(spans) == len(ids) else None

    return _until(written, 20, f"the {kind} spans")


def test_the_gateway_splits_auto_traffic_by_a_live_tests_routing_policy(client: openai.OpenAI) -> None:
    operator = make_user("operator")
    make_evaluator("contains")
    strong = {"name": "strong", "model": "auto", "min_tier": "complex", "system_prompt": "Answer briefly."}
    variants = [{"name": "router", "model": "auto"}, strong]
    test = abtest_create(spec=abtest_spec(None, scope="live", variants=variants, settle_seconds=0), user=operator)
    test = abtest_start(test=test, user=operator)
    time.sleep(0.7)  # the server reloads the active policy within AIOS_CONFIG_RECHECK_S

    answers = [_ask(client) for _ in range(30)]
    expected = {trace: variants[assign(test.policy_name, trace, [50, 50])]["name"] for _, trace in answers}
    for model, trace in answers:  # the variant decides the model: the strong arm never routes below complex
        assert model == ("sim/complex" if expected[trace] == "strong" else "sim/simple")
    assert set(Counter(expected.values())) == {"router", "strong"}
    named_model, named_trace = _ask(client, model="sim/medium")  # a named model is not part of the test
    assert named_model == "sim/medium"

    llm = _spans(list(expected), "llm")
    for trace, span in llm.items():
        assert span.attributes["aios.ab.test"] == str(test.pk)
        assert span.attributes["aios.ab.variant"] == expected[trace]
    strong_trace = next(t for t, v in expected.items() if v == "strong")
    assert llm[strong_trace].attributes["gen_ai.input.messages"][0] == {"role": "system", "content": "Answer briefly."}
    assert "aios.ab.test" not in _spans([named_trace], "llm")[named_trace].attributes
    recorded = RoutingDecision.objects.filter(trace_id__in=[uuid.UUID(t) for t in expected])
    decisions = _until(lambda: len(rows := list(recorded.all())) == 30 and rows, 20, "the routing decisions")
    assert all(d.features["aios.ab.variant"] == expected[d.trace_id.hex] for d in decisions)

    _spans(list(expected), "internal")  # the root spans the collector reads
    assert abtest_collect(test_id=str(test.pk)) == 30
    observed = dict(test.observations.values_list("trace_id", "variant"))
    assert {t.hex: ["router", "strong"][v] for t, v in observed.items()} == expected
    assert set(test.observations.values_list("value", flat=True)) == {1.0}

    abtest_stop(test=test, user=operator)
    time.sleep(0.7)

    # The gateway never waits on the database: the first request after the recheck interval may still see the
    # old policy while a thread reloads it; requests after that are routed as usual.
    def untagged() -> bool:
        _, trace = _ask(client)
        return "aios.ab.test" not in _spans([trace], "llm")[trace].attributes

    _until(untagged, 5, "the policy cleared")
