"""A/B tests in the JSON API (mounted at /api/evaluation/abtests): list, create, read, start, stop.

The body of a create is `ABTestSpec` itself, so the API and the page validate the same shape; a bad field is a
422 naming it (`variants.0.template`), a start or stop in the wrong state a 409."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

import pydantic
from django.core.exceptions import ValidationError
from django.http import HttpRequest
from ninja import Router, Schema, Status

from aios_core.access import OPERATOR, VIEWER
from aios_core.api import Page, paginate, require_role
from evaluation.abtests import selectors, services
from evaluation.abtests.analysis import Analysis, analyse
from evaluation.abtests.specs import ABTestSpec
from evaluation.models import ABTest

router = Router(tags=["evaluation"])


class ABTestOut(Schema):
    id: UUID
    name: str
    hypothesis: str
    scope: str
    status: str
    variants: list[dict[str, Any]]
    weights: list[float]
    metric: str
    metric_kind: str
    higher_is_better: bool
    evaluator: str | None
    score_name: str
    alpha: float
    power: float
    minimum_detectable_effect: float
    baseline_rate: float | None
    standard_deviation: float | None
    sample_size: int  # per arm, for one fixed-horizon analysis
    plan: dict[str, Any]
    dataset: UUID | None
    paired: bool
    settle_seconds: int
    decided_look: int | None
    verdict: str
    stop_reason: str
    created_at: datetime
    started_at: datetime | None
    ended_at: datetime | None

    @staticmethod
    def resolve_evaluator(obj: ABTest) -> str | None:
        return obj.evaluator.name if obj.evaluator_id else None

    @staticmethod
    def resolve_dataset(obj: ABTest) -> UUID | None:
        return obj.dataset.uuid if obj.dataset_id else None


class ArmOut(Schema):
    name: str
    collected: int
    missing: int
    analysed: int
    mean: float | None


class AnalysisOut(Schema):
    look: int | None  # 1-based; None before the first look
    looks: int
    status: str  # collecting | significant | not_significant
    collected_per_arm: int
    planned_per_arm: int
    next_look_per_arm: int | None
    arms: list[ArmOut]
    difference: float | None
    difference_ci: tuple[float, float] | None  # repeated CI: its coverage holds over all looks
    relative_lift: float | None
    lift_ci: tuple[float, float] | None
    p_value: float | None
    threshold: float | None  # the p-value this look had to beat
    bootstrap_difference_ci: tuple[float, float] | None  # for the analysed look, not adjusted for looks
    bootstrap_lift_ci: tuple[float, float] | None
    verdict: str


class ABTestDetailOut(ABTestOut):
    analysis: AnalysisOut


def analysis_payload(a: Analysis) -> dict[str, Any]:
    d, r = a.decision, a.result
    return {
        "look": None if d.look is None else d.look + 1, "looks": d.looks, "status": str(d.status),
        "collected_per_arm": d.collected_per_arm, "planned_per_arm": d.planned_per_arm,
        "next_look_per_arm": d.next_look_per_arm,
        "arms": [{"name": arm.name, "collected": arm.collected, "missing": arm.missing, "analysed": arm.analysed,
                  "mean": arm.mean} for arm in a.arms],
        "difference": r.difference if r else None, "difference_ci": d.difference_ci,
        "relative_lift": r.relative_lift if r else None, "lift_ci": d.lift_ci,
        "p_value": r.p_value if r else None, "threshold": d.threshold,
        "bootstrap_difference_ci": a.bootstrap_difference, "bootstrap_lift_ci": a.bootstrap_lift,
        "verdict": a.verdict,
    }  # fmt: skip


def _detail(test: ABTest) -> ABTest:
    test.analysis = analysis_payload(analyse(test))  # type: ignore[attr-defined]
    return test


@router.get("", response=Page[ABTestOut])
def evaluation_abtests_list(request: HttpRequest, cursor: str | None = None, limit: int | None = None) -> Any:
    require_role(request, VIEWER)
    rows, nxt = paginate(ABTest.objects.select_related("evaluator"), cursor=cursor, limit=limit)
    return {"items": rows, "next": nxt}


@router.post("", response={201: ABTestDetailOut})
def evaluation_abtests_create(request: HttpRequest, payload: ABTestSpec) -> Status:
    require_role(request, OPERATOR)
    return Status(201, _detail(services.abtest_create(spec=payload, user=request.user)))


@router.get("/{test_id}", response=ABTestDetailOut)
def evaluation_abtests_detail(request: HttpRequest, test_id: UUID) -> ABTest:
    return _detail(selectors.get_abtest_for_user(request.user, test_id))


@router.post("/{test_id}/start", response=ABTestDetailOut)
def evaluation_abtests_start(request: HttpRequest, test_id: UUID) -> ABTest:
    require_role(request, OPERATOR)
    test = services.abtest_start(test=selectors.get_abtest_for_user(request.user, test_id), user=request.user)
    return _detail(test)


class StopIn(Schema):
    reason: str = pydantic.Field(default="", max_length=2000)


@router.post("/{test_id}/stop", response=ABTestDetailOut, openapi_extra={"requestBody": {"required": False}})
def evaluation_abtests_stop(request: HttpRequest, test_id: UUID) -> ABTest:
    """Body optional: {"reason": "..."}."""
    require_role(request, OPERATOR)
    test = selectors.get_abtest_for_user(request.user, test_id)
    return _detail(services.abtest_stop(test=test, user=request.user, reason=_stop_reason(request)))


def _stop_reason(request: HttpRequest) -> str:
    if request.content_type != "application/json" or not request.body.strip():
        return ""
    try:
        return StopIn.model_validate_json(request.body).reason
    except pydantic.ValidationError as exc:
        raise ValidationError({"reason": exc.errors()[0]["msg"]}) from None
