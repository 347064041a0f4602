"""The shape of a new A/B test (API body and create form alike), and what its metric means."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, field_validator

from routing.policies import PolicyVariant

ECHO = "echo"  # eval runs only: the output is the rendered prompt (tests templates and evaluators offline)
Scope = Literal["eval_run", "live"]
MetricName = Literal["success", "judge", "human", "cost", "latency"]


@dataclass(frozen=True)
class MetricInfo:
    kind: Literal["proportion", "mean"]  # which test: two-proportion z-test or Welch's t-test
    higher_is_better: bool
    label: str  # as the verdict says it: "B's <label> is ..."
    unit: str = ""
    default_settle_seconds: int = 300  # live: how long a request may wait for its value


METRICS: dict[str, MetricInfo] = {
    "success": MetricInfo("proportion", True, "success rate"),
    "judge": MetricInfo("mean", True, "mean judge score", default_settle_seconds=900),
    "human": MetricInfo("mean", True, "mean human score", default_settle_seconds=3 * 86400),
    "cost": MetricInfo("mean", False, "mean cost per request", " USD"),
    "latency": MetricInfo("mean", False, "mean latency", " ms"),
}


class ABTestSpec(BaseModel):
    """Validated without the database; services.abtest_create checks names, models and the dataset."""

    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)

    name: str = Field(min_length=1, max_length=200)
    hypothesis: str = Field(default="", max_length=5000)
    scope: Scope
    variants: list[PolicyVariant] = Field(min_length=2, max_length=2, description="A (control), then B")
    weights: list[float] = Field(default=[50.0, 50.0], min_length=2, max_length=2)
    metric: MetricName
    evaluator: str = Field(default="", max_length=200, description="success and judge metrics: an evaluator name")
    score_name: str = Field(default="", max_length=60, description="human metric: the annotation score's name")
    alpha: float = Field(default=0.05, gt=0, le=0.2)
    power: float = Field(default=0.8, ge=0.5, lt=1)
    minimum_detectable_effect: float = Field(gt=0, description="absolute: proportion points or metric units")
    baseline_rate: float | None = Field(default=None, gt=0, lt=1, description="success: A's expected rate")
    standard_deviation: float | None = Field(default=None, gt=0, description="other metrics: SD per unit")
    design: Literal["group_sequential", "fixed_horizon"] = "group_sequential"
    looks: int = Field(default=5, ge=2, le=10, description="group-sequential looks")
    dataset: UUID | None = Field(default=None, description="eval_run scope: the dataset's id (its UUID)")
    paired: bool = Field(default=True, description="eval runs: every item through both variants")
    settle_seconds: int | None = Field(default=None, ge=0, le=30 * 86400, description="live scope")

    @field_validator("weights")
    @classmethod
    def _positive(cls, value: list[float]) -> list[float]:
        if not all(w > 0 for w in value):
            raise ValueError("weights must be positive")
        return value

    def problems(self) -> dict[str, str]:
        """What makes the combination incoherent, by field (the fields themselves are valid)."""
        problems: dict[str, str] = {}
        if self.variants[0].name == self.variants[1].name:
            problems["variants"] = "The two variants need different names."
        if self.metric in ("success", "judge") and not self.evaluator:
            problems["evaluator"] = f"The {self.metric} metric needs an evaluator."
        if self.metric == "human" and not self.score_name:
            problems["score_name"] = "The human metric needs the name of an annotation score."
        if self.metric == "human" and self.scope != "live":
            problems["metric"] = "Human scores come from annotation queues on live traffic: use the live scope."
        if self.info.kind == "proportion" and self.baseline_rate is None:
            problems["baseline_rate"] = "Give the baseline rate (A's expected success rate) to size the test."
        if self.info.kind == "mean" and self.standard_deviation is None:
            problems["standard_deviation"] = "Give the metric's expected standard deviation to size the test."
        if self.scope == "eval_run" and self.dataset is None:
            problems["dataset"] = "An eval-run test needs a dataset."
        if self.scope == "live" and any(v.model == ECHO for v in self.variants):
            problems["variants"] = "'echo' is for eval runs; live variants use 'auto' or a model id."
        return problems

    @property
    def info(self) -> MetricInfo:
        return METRICS[self.metric]
