"""A/B tests: creation and its validation, eval-run assignment, live collection in assignment order, the
analysis against evaluation.stats, the stop rules, the API and the pages with their role checks."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from decimal import Decimal
from typing import Any

import numpy as np
import pytest
from django.core.exceptions import ValidationError
from django.db import transaction
from django.urls import reverse
from django.utils import timezone

from aios_core.errors import ConflictError
from evaluation import stats
from evaluation.abtests import analysis as abtest_analysis
from evaluation.abtests.collect import abtest_collect
from evaluation.abtests.runner import abtest_run_batch
from evaluation.abtests.services import abtest_conclude, abtest_create, abtest_start, abtest_stop
from evaluation.models import (
    ABObservation,
    ABTest,
    Annotation,
    AnnotationItem,
    AnnotationQueue,
    ContinuousEvaluation,
    Evaluator,
    SpanScore,
)
from observability.models import AuditEvent, Span
from routing.models import RoutingPolicy
from routing.policies import assign
from tests.evaluation.factories import abtest_spec, make_dataset, make_effect_dataset, make_evaluator
from tests.factories import make_user
from tests.helpers import login

pytestmark = pytest.mark.django_db

LIVE = [{"name": "router", "model": "auto"}, {"name": "strong", "model": "auto", "min_tier": "complex"}]


def _audit(test: ABTest) -> list[str]:
    return list(AuditEvent.objects.filter(object_id=str(test.pk)).order_by("seq").values_list("action", flat=True))


def _observe(test: ABTest, a: list[float], b: list[float]) -> None:
    now = timezone.now()
    ABObservation.objects.bulk_create(
        [ABObservation(test=test, variant=arm, seq=i + 1, value=v, source="eval_run", observed_at=now)
         for arm, values in enumerate((a, b)) for i, v in enumerate(values)]
    )  # fmt: skip


@pytest.fixture
def contains() -> Any:
    return make_evaluator("contains")


# --- creation ----------------------------------------------------------------------------------


def test_creating_a_test_sizes_it_and_fixes_a_sequential_plan(operator: Any, contains: Any) -> None:
    test = abtest_create(spec=abtest_spec(make_effect_dataset(120)), user=operator)
    n = stats.sample_size_two_proportions(0.5, 0.2, alpha=0.05, power=0.8)
    assert (test.status, test.sample_size, test.metric_kind, test.higher_is_better) == ("draft", n, "proportion", True)
    assert test.analysis_plan == stats.sequential_plan(n, looks=5, alpha=0.05, power=0.8)
    assert test.evaluator == contains and test.paired
    assert _audit(test) == ["evaluation.abtest_create"]


def test_a_fixed_horizon_mean_metric_is_sized_with_the_t_test(operator: Any, contains: Any) -> None:
    spec = abtest_spec(make_effect_dataset(100), metric="latency", evaluator="", standard_deviation=100,
                       minimum_detectable_effect=50, design="fixed_horizon")  # fmt: skip
    test = abtest_create(spec=spec, user=operator)
    assert test.sample_size == stats.sample_size_two_means(100, 50) == test.analysis_plan.planned_per_arm
    assert (test.metric_kind, test.higher_is_better, test.analysis_plan.looks) == ("mean", False, 1)


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"evaluator": ""}, "evaluator"),
        ({"evaluator": "nope"}, "evaluator"),
        ({"metric": "judge", "standard_deviation": 0.3}, "evaluator"),  # contains is not a judge
        ({"metric": "human", "score_name": "quality", "standard_deviation": 1}, "metric"),
        ({"baseline_rate": None}, "baseline_rate"),
        ({"metric": "cost"}, "standard_deviation"),
        ({"dataset": None}, "dataset"),
        ({"minimum_detectable_effect": 0.05}, "dataset"),  # needs ~1,600 per arm; the dataset has 120
        ({"paired": False}, "dataset"),  # a split halves each arm: 60 of the 96 needed
        ({"variants": [{"name": "a", "model": "echo"}, {"name": "b", "model": "acme/nope"}]}, "variants.1.model"),
        ({"variants": [{"name": "a", "model": "echo"}, {"name": "a", "model": "echo"}]}, "variants"),
        ({"scope": "live", "variants": [{"name": "a", "model": "echo"}, {"name": "b"}]}, "variants"),
        ({"baseline_rate": 0.9, "minimum_detectable_effect": 0.95}, "minimum_detectable_effect"),
    ],
)
def test_an_incoherent_test_is_refused_naming_the_field(
    operator: Any, contains: Any, overrides: dict[str, Any], field: str
) -> None:
    dataset = make_effect_dataset(120)
    with pytest.raises(ValidationError) as raised:
        abtest_create(spec=abtest_spec(dataset, **overrides), user=operator)
    assert field in raised.value.message_dict, raised.value.message_dict
    assert not ABTest.objects.exists()


def test_names_are_unique(operator: Any, contains: Any) -> None:
    dataset = make_effect_dataset(120)
    abtest_create(spec=abtest_spec(dataset), user=operator)
    with pytest.raises(ValidationError, match="exists"):
        abtest_create(spec=abtest_spec(dataset), user=operator)


# --- eval runs ---------------------------------------------------------------------------------


def test_a_split_eval_run_sends_each_item_to_its_hashed_variant(
    operator: Any, contains: Any, settings: Any, django_capture_on_commit_callbacks: Any
) -> None:
    settings.AIOS_EVAL_BATCH_SIZE = 100
    dataset = make_effect_dataset(400)
    spec = abtest_spec(dataset, paired=False, weights=[30, 70], minimum_detectable_effect=0.3)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        test = abtest_start(test=abtest_create(spec=spec, user=operator), user=operator)
    assert test.status == "running" and len(callbacks) == 1  # the first batch, enqueued on commit
    batches = 0
    while test.status == "running":
        with django_capture_on_commit_callbacks(execute=False) as callbacks:
            abtest_run_batch(test_id=str(test.pk))
        test.refresh_from_db()
        batches += 1
        assert len(callbacks) == (1 if test.status == "running" else 0)  # the next batch, or none when decided
    assert test.status == "decided" and batches < 4
    assert abtest_run_batch(test_id=str(test.pk)) == "decided"  # a late delivery changes nothing
    observations = list(test.observations.all())
    items = list(dataset.items.order_by("pk")[: 100 * batches])
    assert sorted(o.seq for o in observations) == [i.pk for i in items]  # one arm per item, in id order
    for o in observations:
        assert o.variant == assign(str(test.pk), str(o.seq), [30, 70])
        assert o.value in (0.0, 1.0) and o.detail["output"].startswith("Q: " if o.variant else "question")
    share_b = sum(o.variant for o in observations) / len(observations)
    assert 0.5 < share_b < 0.9  # 70% ± four standard errors of 100 items


def test_a_paired_eval_run_decides_at_the_first_look_that_crosses(
    operator: Any, contains: Any, django_capture_on_commit_callbacks: Any
) -> None:
    with django_capture_on_commit_callbacks(execute=False):
        test = abtest_start(test=abtest_create(spec=abtest_spec(make_effect_dataset(200)), user=operator),
                            user=operator)  # fmt: skip
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        assert abtest_run_batch(test_id=str(test.pk)) == "decided"
    assert callbacks == []  # decided: no further batch
    test.refresh_from_db()
    a, b, _ = abtest_analysis.arm_values(test)
    assert a.size == b.size == 200  # every item through both variants
    # All five looks were reached at once; the decision is the first that crossed, replayed by hand here.
    plan = test.analysis_plan
    first = next(k for k, size in enumerate(plan.look_sizes)
                 if stats.decide(plan, a[:size], b[:size], kind="proportion")[1].status == "significant")  # fmt: skip
    assert test.decided_look == first < plan.looks - 1
    assert "Ship B." in test.verdict and test.verdict == abtest_analysis.analyse(test).verdict
    assert _audit(test) == ["evaluation.abtest_create", "evaluation.abtest_start", "evaluation.abtest_decide"]


# --- analysis ----------------------------------------------------------------------------------


def test_the_analysis_is_evaluation_stats_on_each_arms_first_observations(operator: Any, contains: Any) -> None:
    spec = abtest_spec(make_effect_dataset(120), metric="latency", evaluator="", standard_deviation=20,
                       minimum_detectable_effect=10)  # fmt: skip
    test = abtest_create(spec=spec, user=operator)
    rng = np.random.default_rng(3)
    plan = test.analysis_plan
    n = plan.look_sizes[2] + 5  # past look 3, short of look 4
    a, b = list(rng.normal(100, 20, n)), list(rng.normal(104, 20, n))
    _observe(test, a, b)
    ABObservation.objects.create(test=test, variant=0, seq=10**6, value=None, source="eval_run",
                                 observed_at=timezone.now())  # a unit without a value is left out  # fmt: skip
    result = abtest_analysis.analyse(test)
    size = plan.look_sizes[2]
    expected, decision = stats.decide(plan, a[:size], b[:size], kind="mean")
    assert expected is not None and decision.status == "collecting"  # a modest effect does not cross early
    assert result.result == expected and result.decision.look == 2 == decision.look
    assert result.decision.difference_ci == decision.difference_ci and result.decision.collected_per_arm == n
    assert result.arms[0].missing == 1 and result.arms[0].mean == pytest.approx(np.mean(a[:size]))
    seed = test.pk.int % 2**32
    assert result.bootstrap_difference == stats.bootstrap_ci(a[:size], b[:size], statistic="mean_diff", alpha=0.05,
                                                             n_resamples=2000, seed=seed)  # fmt: skip
    assert result.bootstrap_lift == stats.bootstrap_ci(a[:size], b[:size], statistic="relative_lift", alpha=0.05,
                                                       n_resamples=2000, seed=seed)  # fmt: skip
    assert result.verdict == stats.verdict(expected, result.decision, metric="mean latency", higher_is_better=False,
                                           unit=" ms")  # fmt: skip
    assert result.verdict.startswith("Keep collecting: at look 3 of 5")
    assert [look.p_value is not None for look in result.looks] == [True, True, True, False, False]


def test_an_aa_test_runs_to_its_last_look_and_says_so(operator: Any, contains: Any) -> None:
    test = abtest_create(spec=abtest_spec(make_effect_dataset(120)), user=operator)
    ABTest.objects.filter(pk=test.pk).update(status="running")
    test.refresh_from_db()
    n = test.analysis_plan.planned_per_arm
    _observe(test, [float(i % 2) for i in range(n)], [float((i + 1) % 2) for i in range(n)])
    with transaction_locked(test) as locked:
        analysis = abtest_conclude(locked)
    assert analysis.decision.status == "not_significant" and analysis.decision.look == 4
    test.refresh_from_db()
    assert test.status == "decided" and test.verdict.startswith("No significant difference")


@contextmanager
def transaction_locked(test: ABTest) -> Iterator[ABTest]:
    """The row lock abtest_conclude expects its caller to hold."""
    with transaction.atomic():
        yield ABTest.objects.select_for_update().get(pk=test.pk)


# --- live collection ----------------------------------------------------------------------------


def _live(operator: Any, **overrides: Any) -> ABTest:
    make_evaluator("contains") if not Evaluator.objects.filter(name="contains").exists() else None
    spec = abtest_spec(None, scope="live", variants=LIVE, settle_seconds=60, **overrides)
    return abtest_start(test=abtest_create(spec=spec, user=operator), user=operator)


def _request(test: ABTest, variant: str, started: Any, *, status: str = "ok", cost: str = "0.001") -> uuid.UUID:
    """The spans the gateway writes for one assigned request: the root and its llm span."""
    trace_id = uuid.uuid4()
    attributes = {"aios.ab.test": str(test.pk), "aios.ab.policy": test.policy_name, "aios.ab.variant": variant}
    common = {"trace_id": trace_id, "started_at": started, "ended_at": started, "attributes": attributes,
              "status": status}  # fmt: skip
    Span.objects.create(span_id=1, name="gateway.chat_completions", kind="internal", latency_ms=120, **common)
    Span.objects.create(span_id=2, parent_span_id=1, name="chat sim/simple", kind="llm", latency_ms=100,
                        cost_usd=Decimal(cost), **common)  # fmt: skip
    return trace_id


def test_a_live_test_sets_the_routing_policy_and_stopping_clears_it(operator: Any) -> None:
    test = _live(operator)
    policy = RoutingPolicy.objects.get(active=True)
    assert (policy.name, policy.label, policy.weights) == (test.policy_name, str(test.pk), [50.0, 50.0])
    with pytest.raises(ConflictError, match="is active"):
        _live(operator, name="another live test")
    with pytest.raises(ConflictError):
        abtest_start(test=test, user=operator)
    test = abtest_stop(test=test, user=operator, reason="wrong prompt")
    assert (test.status, test.stop_reason) == ("stopped", "wrong prompt")
    assert not RoutingPolicy.objects.filter(active=True).exists()
    assert "routing_policy.cleared" in AuditEvent.objects.values_list("action", flat=True)
    with pytest.raises(ConflictError):
        abtest_stop(test=test, user=operator)
    assert _audit(test) == ["evaluation.abtest_create", "evaluation.abtest_start", "evaluation.abtest_stop"]


def test_live_requests_are_admitted_in_start_order_once_they_settle(operator: Any) -> None:
    test = _live(operator)  # settles for 60 s
    base = timezone.now() - timedelta(seconds=100)
    ABTest.objects.filter(pk=test.pk).update(collected_until=base)
    _request(test, "strong", base - timedelta(seconds=1))  # before the window: already collected
    late = _request(test, "strong", base + timedelta(seconds=3), status="error")
    early = _request(test, "router", base + timedelta(seconds=1))
    middle = _request(test, "strong", base + timedelta(seconds=2))
    recent = _request(test, "router", timezone.now() - timedelta(seconds=5))  # not settled yet
    assert abtest_collect(test_id=str(test.pk)) == 3
    rows = list(test.observations.order_by("seq").values_list("variant", "value", "trace_id"))
    assert rows == [(0, 1.0, early), (1, 1.0, middle), (1, 0.0, late)]  # start order, whatever the write order
    assert abtest_collect(test_id=str(test.pk)) == 0  # idempotent: the window moved on
    # A request that started inside an admitted window but was written late never joins: the prefix is fixed.
    _request(test, "router", base + timedelta(seconds=2.5))
    ABTest.objects.filter(pk=test.pk).update(settle_seconds=0)
    assert abtest_collect(test_id=str(test.pk)) == 1
    assert test.observations.order_by("seq").last().trace_id == recent


def test_live_values_come_from_judge_scores_and_human_annotations(operator: Any) -> None:
    judge = make_evaluator("llm_judge", name="helpful", rubric="Is it helpful?")
    spec = abtest_spec(None, scope="live", variants=LIVE, metric="judge", evaluator="helpful", standard_deviation=0.3,
                       settle_seconds=60)  # fmt: skip
    draft = abtest_create(spec=spec, user=operator)
    with pytest.raises(ValidationError, match="continuous evaluation"):
        abtest_start(test=draft, user=operator)  # nothing would ever score its spans
    continuous = ContinuousEvaluation.objects.create(name="all llm spans", sample_rate=1.0)
    continuous.evaluators.set([judge])
    judged = abtest_start(test=draft, user=operator)
    before = judged.started_at - timedelta(seconds=100)
    scored = _request(judged, "router", before + timedelta(seconds=1))
    unscored = _request(judged, "strong", before + timedelta(seconds=2))
    SpanScore.objects.create(continuous=continuous, trace_id=scored, span_id=2, evaluator="helpful", value=0.75)
    ABTest.objects.filter(pk=judged.pk).update(collected_until=before)
    assert abtest_collect(test_id=str(judged.pk)) == 2
    values = dict(judged.observations.values_list("trace_id", "value"))
    assert values == {scored: 0.75, unscored: None}  # unscored when admitted: kept without a value, for good
    abtest_stop(test=judged, user=operator)

    humans = _live(operator, metric="human", evaluator="", score_name="quality", standard_deviation=1, name="human")
    queue = AnnotationQueue.objects.create(name="q", score_configs=[{"kind": "numeric", "name": "quality"}])
    reviewed = _request(humans, "strong", before + timedelta(seconds=1))
    item = AnnotationItem.objects.create(queue=queue, source_key="span:x:2", trace_id=reviewed, span_id=2, content={})
    for score in (4, 5):
        Annotation.objects.create(item=item, annotator=make_user("annotator"), scores={"quality": score})
    ABTest.objects.filter(pk=humans.pk).update(collected_until=before)
    assert abtest_collect(test_id=str(humans.pk)) == 1
    assert humans.observations.get().value == 4.5  # the reviewers' mean


def test_a_live_test_that_crosses_a_boundary_is_decided_and_frees_the_gateway(operator: Any) -> None:
    test = _live(operator)
    before = test.started_at - timedelta(seconds=500)
    size = test.analysis_plan.look_sizes[0]
    for i in range(size):
        _request(test, "router", before + timedelta(seconds=2 * i), status="error")
        _request(test, "strong", before + timedelta(seconds=2 * i + 1))
    ABTest.objects.filter(pk=test.pk).update(collected_until=before - timedelta(seconds=1))
    assert abtest_collect(test_id=str(test.pk)) == 2 * size
    test.refresh_from_db()
    assert (test.status, test.decided_look) == ("decided", 0) and "Ship B." in test.verdict
    assert not RoutingPolicy.objects.filter(active=True).exists()


# --- API ---------------------------------------------------------------------------------------


def _post(client: Any, url: str, body: Any = None) -> Any:
    return client.post(url, data=json.dumps(body if body is not None else {}), content_type="application/json")


def _body(dataset: Any, **overrides: Any) -> dict[str, Any]:
    return json.loads(abtest_spec(dataset, **overrides).model_dump_json())


def test_an_operator_creates_reads_starts_and_stops_through_the_api(
    operator: Any, contains: Any, django_capture_on_commit_callbacks: Any
) -> None:
    client, dataset = login(operator), make_effect_dataset(120)
    resp = _post(client, "/api/evaluation/abtests", _body(dataset))
    assert resp.status_code == 201, resp.content
    created = resp.json()
    assert created["status"] == "draft" and created["sample_size"] == 93
    assert created["plan"]["look_sizes"] == [20, 39, 58, 77, 96]
    assert created["analysis"]["status"] == "collecting" and created["analysis"]["verdict"].startswith("Not enough")
    url = f"/api/evaluation/abtests/{created['id']}"
    assert client.get("/api/evaluation/abtests").json()["items"][0]["id"] == created["id"]
    assert client.get(url).json()["evaluator"] == "contains"
    with django_capture_on_commit_callbacks(execute=False):
        assert _post(client, f"{url}/start").json()["status"] == "running"
    conflict = _post(client, f"{url}/start")
    assert conflict.status_code == 409 and conflict.json()["error"] == "conflict"
    stopped = _post(client, f"{url}/stop", {"reason": "enough"})
    assert (stopped.status_code, stopped.json()["stop_reason"]) == (200, "enough")
    assert client.post(f"{url}/stop").status_code == 409  # no body at all is fine too
    assert _post(client, f"{url}/stop", {"reason": 5}).status_code == 422
    assert client.get("/api/evaluation/abtests/" + str(uuid.uuid4())).status_code == 404


def test_the_api_answers_bad_input_with_422_naming_the_field(operator: Any, contains: Any) -> None:
    client, dataset = login(operator), make_effect_dataset(120)
    body = _body(dataset)
    body["variants"][1]["template"] = "no placeholder"
    resp = _post(client, "/api/evaluation/abtests", body)
    assert resp.status_code == 422
    assert resp.json()["fields"][0]["field"] == "variants.1.template"
    for bad, field in [({"metric": "nope"}, "metric"), ({"alpha": 2}, "alpha"), ({"weights": [1, -1]}, "weights"),
                       ({"evaluator": "missing"}, "evaluator"), ({"extra": 1}, "extra")]:  # fmt: skip
        resp = _post(client, "/api/evaluation/abtests", {**_body(dataset), **bad})
        assert resp.status_code == 422 and resp.json()["fields"][0]["field"] == field, resp.json()
    assert not ABTest.objects.exists()


def test_a_viewer_reads_tests_but_may_not_create_start_or_stop_them(viewer: Any, operator: Any, contains: Any) -> None:
    test = abtest_create(spec=abtest_spec(make_effect_dataset(120)), user=operator)
    client = login(viewer)
    assert client.get(f"/api/evaluation/abtests/{test.pk}").status_code == 200
    assert _post(client, "/api/evaluation/abtests", _body(test.dataset, name="x")).status_code == 403
    assert _post(client, f"/api/evaluation/abtests/{test.pk}/start").status_code == 403
    assert _post(client, f"/api/evaluation/abtests/{test.pk}/stop").status_code == 403
    assert client.post(reverse("evaluation-abtest-start", args=[test.pk])).status_code == 403
    assert client.post(reverse("evaluation-abtest-stop", args=[test.pk])).status_code == 403
    assert client.get(reverse("evaluation-abtest-create")).status_code == 403
    page = client.get(reverse("evaluation-abtest-detail", args=[test.pk]))
    assert page.status_code == 200 and b'id="abtest-start"' not in page.content
    assert client.get(reverse("evaluation-abtest-list")).status_code == 200
    test.refresh_from_db()
    assert test.status == "draft"


# --- pages -------------------------------------------------------------------------------------


def _form(dataset: Any, **overrides: Any) -> dict[str, Any]:
    data = {"name": "prefix", "scope": "eval_run", "a_name": "control", "a_model": "echo", "b_name": "prefixed",
            "b_model": "echo", "b_template": "Q: {input}", "weight_a": 50, "weight_b": 50, "metric": "success",
            "evaluator": "contains", "minimum_detectable_effect": 0.2, "baseline_rate": 0.5, "alpha": 0.05,
            "power": 0.8, "design": "group_sequential", "looks": 5, "dataset": dataset.uuid,
            "paired": "on"}  # fmt: skip
    data.update(overrides)
    return data


def test_an_operator_creates_a_test_with_the_form_and_sees_errors_on_the_fields(operator: Any, contains: Any) -> None:
    client, dataset = login(operator), make_effect_dataset(120)
    assert client.get(reverse("evaluation-abtest-create")).status_code == 200
    resp = client.post(reverse("evaluation-abtest-create"), _form(dataset, b_template="no placeholder"))
    assert resp.status_code == 422 and b"must contain {input}" in resp.content
    assert resp.context["form"].errors["b_template"]
    resp = client.post(reverse("evaluation-abtest-create"), _form(dataset, minimum_detectable_effect=0.05))
    assert resp.status_code == 422 and "dataset" in resp.context["form"].errors
    resp = client.post(reverse("evaluation-abtest-create"), _form(dataset))
    test = ABTest.objects.get()
    assert resp.status_code == 302 and resp["Location"] == reverse("evaluation-abtest-detail", args=[test.pk])
    assert test.parsed_variants[1].template == "Q: {input}" and test.paired


def test_the_detail_page_shows_the_plan_the_verdict_and_the_chart_data(operator: Any, contains: Any) -> None:
    test = abtest_create(spec=abtest_spec(make_effect_dataset(120)), user=operator)
    ABTest.objects.filter(pk=test.pk).update(status="running")
    size = test.analysis_plan.look_sizes[0]
    _observe(test, [0.0] * size, [1.0] * size)
    client = login(operator)
    page = client.get(reverse("evaluation-abtest-detail", args=[test.pk]))
    assert page.status_code == 200
    html = page.content.decode()
    assert 'id="abtest-sample-size">93<' in html and "O'Brien–Fleming" in html
    assert "Ship B." in html and 'id="abtest-stop"' in html and "plotly.min" in html
    chart = page.context["chart"]
    assert [len(s["y"]) for s in chart["series"]] == [size, size] and chart["series"][1]["y"][-1] == 1.0
    partial = client.get(reverse("evaluation-abtest-detail", args=[test.pk]) + "?partial=1")
    assert b'id="abtest-verdict"' in partial.content and b"<html" not in partial.content
    listing = client.get(reverse("evaluation-abtest-list"))
    assert test.name.encode() in listing.content and b'id="new-abtest"' in listing.content


def test_the_evaluation_home_links_to_the_ab_tests(viewer: Any) -> None:
    make_dataset([("a", "a")])
    page = login(viewer).get(reverse("evaluation-home"))
    assert reverse("evaluation-abtest-list").encode() in page.content


def test_the_form_previews_the_sample_size_without_creating_anything(operator: Any, contains: Any) -> None:
    client, dataset = login(operator), make_effect_dataset(120)
    resp = client.post(reverse("evaluation-abtest-create"), _form(dataset, preview="1"))
    assert resp.status_code == 200 and not ABTest.objects.exists()
    preview = resp.context["preview"]
    assert preview.sample_size == 93 and preview.plan.look_sizes == (20, 39, 58, 77, 96)
    assert b'id="abtest-preview"' in resp.content and b"20, 39, 58, 77, 96" in resp.content
    skewed = client.post(reverse("evaluation-abtest-create"), _form(dataset, preview="1", weight_a=20, weight_b=80))
    assert skewed.context["preview"].total_units == 96 * 5  # the 20% arm sets the pace
    bad = client.post(reverse("evaluation-abtest-create"), _form(dataset, preview="1", baseline_rate=""))
    assert bad.status_code == 422 and bad.context["form"].errors["baseline_rate"]
