"""A/B test writes: create (the plan is fixed here), start, stop, and the decision when the plan allows one.

Every transition is audited. A live test's traffic split is a routing policy, set and cleared through
routing's service (routing never imports evaluation)."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from aios_core.errors import ConflictError
from evaluation import stats
from evaluation.abtests.analysis import Analysis, analyse
from evaluation.abtests.specs import ECHO, ABTestSpec
from evaluation.models import ABTest, ContinuousEvaluation, Dataset, Evaluator
from observability.audit import audit_append


def sample_size_for(spec: ABTestSpec) -> int:
    """Observations per arm for one fixed-horizon analysis at the spec's alpha, power and effect."""
    effect = spec.minimum_detectable_effect
    try:
        if spec.info.kind == "proportion":
            assert spec.baseline_rate is not None
            # The rarer direction needs more units; two-sided, so size for the effect that fits in (0, 1).
            delta = effect if spec.baseline_rate + effect < 1 else -effect
            return stats.sample_size_two_proportions(spec.baseline_rate, delta, alpha=spec.alpha, power=spec.power)
        assert spec.standard_deviation is not None
        return stats.sample_size_two_means(spec.standard_deviation, effect, alpha=spec.alpha, power=spec.power)
    except ValueError as exc:
        raise ValidationError({"minimum_detectable_effect": f"Cannot size the test: {exc}."}) from None


def plan_for(spec: ABTestSpec, sample_size: int) -> stats.AnalysisPlan:
    if spec.design == "fixed_horizon":
        return stats.fixed_horizon_plan(max(2, sample_size), alpha=spec.alpha, power=spec.power)
    return stats.sequential_plan(sample_size, looks=spec.looks, alpha=spec.alpha, power=spec.power)


def per_arm_from_dataset(items: int, *, paired: bool, weights: list[float]) -> int:
    """Observations the smaller arm gets from a dataset of `items` (a split gives each arm its share)."""
    return items if paired else math.floor(items * min(weights) / sum(weights))


def _check_dataset(dataset: Dataset, *, paired: bool, weights: list[float], planned: int) -> None:
    items = dataset.items.count()
    per_arm = per_arm_from_dataset(items, paired=paired, weights=weights)
    if per_arm < planned:
        raise ValidationError({"dataset": (
            f"The dataset has {items:,} items, about {per_arm:,} per arm; the plan needs {planned:,} per arm. "
            "Use a larger dataset, the paired design, or a larger minimum detectable effect."
        )})  # fmt: skip


def _check_models(spec: ABTestSpec) -> None:
    from routing import catalog

    for index, variant in enumerate(spec.variants):
        allowed = variant.model in ("auto", ECHO) if spec.scope == "eval_run" else variant.model == "auto"
        if not allowed and catalog.find(variant.model) is None:
            raise ValidationError({f"variants.{index}.model": f"Unknown model {variant.model!r}."})


def _evaluator_for(spec: ABTestSpec) -> Evaluator | None:
    if spec.metric not in ("success", "judge"):
        return None
    evaluator = Evaluator.objects.filter(name=spec.evaluator).first()
    if evaluator is None:
        raise ValidationError({"evaluator": f"Unknown evaluator {spec.evaluator!r}."})
    if spec.metric == "judge" and evaluator.kind != Evaluator.Kind.LLM_JUDGE:
        raise ValidationError({"evaluator": "The judge metric needs an LLM-judge evaluator."})
    return evaluator


@dataclass(frozen=True)
class Preview:
    sample_size: int  # per arm, one fixed-horizon analysis
    plan: stats.AnalysisPlan
    weights: list[float]

    @property
    def total_units(self) -> int:
        """Units (requests, or split items) for the smaller arm to reach the plan's maximum."""
        return math.ceil(self.plan.planned_per_arm * sum(self.weights) / min(self.weights))


def abtest_preview(*, spec: ABTestSpec) -> Preview:
    """What creating `spec` would fix: the sample size and the plan (ValidationError as abtest_create)."""
    problems = spec.problems()
    if problems:
        raise ValidationError(problems)
    sample_size = sample_size_for(spec)
    return Preview(sample_size, plan_for(spec, sample_size), list(spec.weights))


def abtest_create(*, spec: ABTestSpec, user: Any) -> ABTest:
    """Validate against the database, size the test and fix its analysis plan. The test starts as a draft."""
    problems = spec.problems()
    if problems:
        raise ValidationError(problems)
    _check_models(spec)
    evaluator = _evaluator_for(spec)
    dataset = Dataset.objects.filter(uuid=spec.dataset).first() if spec.scope == "eval_run" else None
    if spec.scope == "eval_run" and dataset is None:
        raise ValidationError({"dataset": "Unknown dataset."})
    sample_size = sample_size_for(spec)
    plan = plan_for(spec, sample_size)
    if dataset is not None:
        _check_dataset(dataset, paired=spec.paired, weights=spec.weights, planned=plan.planned_per_arm)
    with transaction.atomic():
        if ABTest.objects.filter(name=spec.name).exists():
            raise ValidationError({"name": "An A/B test with this name exists."})
        test = ABTest.objects.create(
            name=spec.name, hypothesis=spec.hypothesis, scope=spec.scope,
            variants=[v.model_dump() for v in spec.variants], weights=list(spec.weights),
            metric=spec.metric, metric_kind=spec.info.kind, higher_is_better=spec.info.higher_is_better,
            evaluator=evaluator, score_name=spec.score_name if spec.metric == "human" else "",
            alpha=spec.alpha, power=spec.power, minimum_detectable_effect=spec.minimum_detectable_effect,
            baseline_rate=spec.baseline_rate if spec.info.kind == "proportion" else None,
            standard_deviation=spec.standard_deviation if spec.info.kind == "mean" else None,
            sample_size=sample_size, plan=dataclasses.asdict(plan), dataset=dataset, paired=spec.paired,
            settle_seconds=spec.info.default_settle_seconds if spec.settle_seconds is None else spec.settle_seconds,
            created_by=user if getattr(user, "pk", None) else None,
        )  # fmt: skip
        data = {"name": test.name, "scope": test.scope, "metric": test.metric, "variants": test.variants,
                "weights": test.weights, "sample_size": sample_size, "plan": test.plan}  # fmt: skip
        audit_append(action="evaluation.abtest_create", object_type="abtest", object_id=test.pk, data=data, actor=user)
    return test


def _locked(test: ABTest) -> ABTest:
    return ABTest.objects.select_for_update(of=("self",)).select_related("evaluator", "dataset").get(pk=test.pk)


def _check_live_metric(test: ABTest) -> None:
    """Judge scores reach live spans only through continuous evaluation: refuse a test nobody would score."""
    if test.metric != "judge":
        return
    scoring = ContinuousEvaluation.objects.filter(enabled=True, span_kind="llm", evaluators=test.evaluator_id)
    if not scoring.exists():
        raise ValidationError({"evaluator": (
            f"No enabled continuous evaluation scores llm spans with {test.evaluator.name}: add one (sample rate 1 "
            "is fastest; sampling is by span id, so a lower rate only slows the test down)."
        )})  # fmt: skip


def abtest_start(*, test: ABTest, user: Any) -> ABTest:
    """Draft → running. An eval-run test enqueues its first batch; a live test activates its routing policy
    (ConflictError while another live test holds the gateway's split)."""
    from routing.services import routing_policy_set

    with transaction.atomic():
        test = _locked(test)
        if test.status != ABTest.Status.DRAFT:
            raise ConflictError(f"Only a draft test can start; this one is {test.status}.", status=test.status)
        now = timezone.now()
        if test.scope == ABTest.Scope.EVAL_RUN:
            assert test.dataset is not None
            _check_dataset(test.dataset, paired=test.paired, weights=test.weights,
                           planned=test.analysis_plan.planned_per_arm)  # fmt: skip
            from evaluation.tasks import abtest_run_batch

            transaction.on_commit(lambda: abtest_run_batch.delay(str(test.pk)))
        else:
            _check_live_metric(test)
            routing_policy_set(name=test.policy_name, variants=test.variants, weights=test.weights,
                               label=str(test.pk), actor=user)  # fmt: skip
        test.status, test.started_at, test.collected_until = ABTest.Status.RUNNING, now, now
        test.save(update_fields=["status", "started_at", "collected_until"])
        audit_append(action="evaluation.abtest_start", object_type="abtest", object_id=test.pk,
                     data={"name": test.name, "scope": test.scope}, actor=user)  # fmt: skip
    return test


def _end(test: ABTest, status: str, *, actor: Any = None) -> None:
    """Caller holds the row lock."""
    from routing.services import routing_policy_clear

    test.status, test.ended_at = status, timezone.now()
    if test.scope == ABTest.Scope.LIVE:
        routing_policy_clear(name=test.policy_name, actor=actor)


def abtest_stop(*, test: ABTest, user: Any, reason: str = "") -> ABTest:
    """Running → stopped, before the plan concludes. The page keeps showing the last look's analysis."""
    with transaction.atomic():
        test = _locked(test)
        if test.status != ABTest.Status.RUNNING:
            raise ConflictError(f"Only a running test can stop; this one is {test.status}.", status=test.status)
        analysis = analyse(test)
        _end(test, ABTest.Status.STOPPED, actor=user)
        test.stop_reason = reason.strip() or "Stopped by an operator before the plan concluded."
        test.verdict = analysis.verdict
        test.save(update_fields=["status", "ended_at", "stop_reason", "verdict"])
        audit_append(action="evaluation.abtest_stop", object_type="abtest", object_id=test.pk,
                     data={"reason": test.stop_reason, "look": analysis.decision.look,
                           "collected_per_arm": analysis.collected_per_arm}, actor=user)  # fmt: skip
    return test


def abtest_conclude(test: ABTest) -> Analysis:
    """Analyse a running test; when the plan concludes, record the decision and end the test.
    Caller holds the row lock (the eval-run batch and the live collector both do)."""
    analysis = analyse(test)
    if test.status != ABTest.Status.RUNNING or not analysis.final:
        return analysis
    _end(test, ABTest.Status.DECIDED)
    test.decided_look, test.verdict = analysis.decision.look, analysis.verdict
    test.save(update_fields=["status", "ended_at", "decided_look", "verdict"])
    result = analysis.result
    audit_append(action="evaluation.abtest_decide", object_type="abtest", object_id=test.pk,
                 data={"look": analysis.decision.look, "status": str(analysis.decision.status),
                       "p_value": result.p_value if result else None,
                       "difference": result.difference if result else None, "verdict": analysis.verdict})  # fmt: skip
    return analysis


def abtest_exhausted(test: ABTest, reason: str) -> None:
    """The units ran out before the plan concluded (an eval run's dataset). Caller holds the row lock."""
    analysis = analyse(test)
    _end(test, ABTest.Status.STOPPED)
    test.stop_reason, test.verdict = reason, analysis.verdict
    test.save(update_fields=["status", "ended_at", "stop_reason", "verdict"])
    audit_append(action="evaluation.abtest_stop", object_type="abtest", object_id=test.pk,
                 data={"reason": reason, "look": analysis.decision.look})  # fmt: skip
