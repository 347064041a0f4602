"""The analysis of an A/B test: the stored plan's looks in order, each through `evaluation.stats.decide`.

Why every look is replayed from the first: a group-sequential test stops at the *first* look whose boundary
is crossed. `decide` analyses the latest look reached; when two looks pass between analyses (a big batch, a
slow collector) the earlier one must still get its turn, or a crossing would be missed and the error
rates would no longer be the plan's. Each look reads exactly the first `look_sizes[k]` observations per
arm in assignment order, and observations are only ever appended in that order, so replaying gives the
same answer every time: opening the page never changes the verdict (no peeking).
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from typing import Any

import numpy as np
from django.core.cache import cache
from numpy.typing import NDArray

from evaluation import stats
from evaluation.abtests.specs import METRICS
from evaluation.models import ABTest

log = logging.getLogger(__name__)

BOOTSTRAP_RESAMPLES = 2000


@dataclass(frozen=True)
class ArmSummary:
    index: int
    letter: str  # A or B: what the verdict calls it
    name: str
    description: str
    collected: int  # observations with a value
    missing: int  # units without a value (an error, an unscored answer)
    analysed: int  # observations the current look reads
    mean: float | None  # over the analysed observations
    mean_text: str


@dataclass(frozen=True)
class LookRow:
    number: int  # 1-based
    size: int  # per arm
    threshold: float  # the p-value this look must beat
    reached: bool
    p_value: float | None  # None: not analysed (not reached, or the test stopped before it)
    status: str | None


@dataclass(frozen=True)
class Analysis:
    plan: stats.AnalysisPlan
    arms: list[ArmSummary]
    result: stats.TestResult | None
    decision: stats.Decision
    looks: list[LookRow]
    verdict: str
    bootstrap_difference: stats.Interval | None  # at the plan's alpha, for the analysed look, unadjusted
    bootstrap_lift: stats.Interval | None

    @property
    def final(self) -> bool:
        """The plan allows a conclusion: a boundary was crossed, or the last look was analysed."""
        return self.decision.status != stats.Status.COLLECTING

    @property
    def collected_per_arm(self) -> int:
        return min(arm.collected for arm in self.arms)

    @property
    def progress_percent(self) -> int:
        return min(100, int(100 * self.collected_per_arm / self.plan.planned_per_arm))


def arm_values(test: ABTest) -> tuple[NDArray[np.float64], NDArray[np.float64], list[int]]:
    """Each arm's values in assignment order (units without a value left out), and the missing counts."""
    arms: list[list[float]] = [[], []]
    missing = [0, 0]
    rows = test.observations.order_by("variant", "seq").values_list("variant", "value")
    for variant, value in rows.iterator(chunk_size=5000):
        if value is None:
            missing[variant] += 1
        else:
            arms[variant].append(value)
    return np.asarray(arms[0], dtype=np.float64), np.asarray(arms[1], dtype=np.float64), missing


def replay_looks(
    plan: stats.AnalysisPlan, a: NDArray[np.float64], b: NDArray[np.float64], kind: stats.MetricKind
) -> tuple[stats.TestResult | None, stats.Decision, list[stats.TestResult]]:
    """Each reached look in order, stopping at the first the plan concludes on."""
    collected = int(min(a.size, b.size))
    result, decision = None, stats.collecting_decision(plan, collected)
    results: list[stats.TestResult] = []
    for size in plan.look_sizes:
        if collected < size:
            break
        result, decision = stats.decide(plan, a[:size], b[:size], kind=kind)
        assert result is not None  # the look was reached
        results.append(result)
        if decision.status != stats.Status.COLLECTING:
            break
    return result, dataclasses.replace(decision, collected_per_arm=collected), results


def _bootstrap(test: ABTest, a: NDArray[np.float64], b: NDArray[np.float64], look: int) -> tuple[Any, Any]:
    """Bootstrap intervals for the analysed look. A look's data never changes, so they are cached for good."""
    key = f"abtest:{test.pk}:look:{look}:bootstrap"
    cached = cache.get(key)
    if cached is not None:
        return cached
    seed = test.pk.int % 2**32
    intervals: list[Any] = []
    for statistic in ("mean_diff", "relative_lift"):
        try:
            intervals.append(stats.bootstrap_ci(a, b, statistic=statistic, n_resamples=BOOTSTRAP_RESAMPLES,
                                                alpha=test.alpha, seed=seed))  # fmt: skip
        except ValueError:  # the lift is undefined when A's mean is zero
            intervals.append(None)
    cache.set(key, tuple(intervals), timeout=7 * 86400)
    return tuple(intervals)


def describe(variant: Any) -> str:
    parts = [variant.model]
    if variant.router_policy:
        parts.append(", ".join(f"{k} {v}" for k, v in variant.router_policy.items()))
    if variant.system_prompt:
        parts.append(f"system prompt “{variant.system_prompt[:60]}”")
    if variant.template:
        parts.append(f"template “{variant.template[:60]}”")
    return " · ".join(parts)


def metric_label(test: ABTest) -> str:
    info = METRICS[test.metric]
    if test.metric == "judge" and test.evaluator_id:
        return f"mean {test.evaluator.name} score"
    if test.metric == "human" and test.score_name:
        return f"mean {test.score_name} score"
    return info.label


def _arm(
    test: ABTest, index: int, variant: Any, values: NDArray[np.float64], missing: int, analysed: int
) -> ArmSummary:
    mean = float(values[:analysed].mean()) if analysed else None
    return ArmSummary(index=index, letter="AB"[index], name=variant.name, description=describe(variant),
                      collected=int(values.size), missing=missing, analysed=analysed, mean=mean,
                      mean_text=mean_text(test, mean))  # fmt: skip


def _look(plan: stats.AnalysisPlan, k: int, results: list[stats.TestResult], collected: int) -> LookRow:
    threshold, analysed = plan.nominal_alphas[k], k < len(results)
    status = None
    if analysed:
        crossed = results[k].p_value <= threshold
        status = "significant" if crossed else "not significant" if k == plan.looks - 1 else "boundary not crossed"
    return LookRow(number=k + 1, size=plan.look_sizes[k], threshold=threshold, reached=collected >= plan.look_sizes[k],
                   p_value=results[k].p_value if analysed else None, status=status)  # fmt: skip


def analyse(test: ABTest) -> Analysis:
    plan = test.analysis_plan
    a, b, missing = arm_values(test)
    result, decision, results = replay_looks(plan, a, b, test.metric_kind)  # type: ignore[arg-type]
    analysed = decision.analysed_per_arm
    boot = _bootstrap(test, a[:analysed], b[:analysed], decision.look) if decision.look is not None else (None, None)
    variants = test.parsed_variants
    arms = [_arm(test, i, variants[i], x, missing[i], analysed) for i, x in enumerate((a, b))]
    looks = [_look(plan, k, results, decision.collected_per_arm) for k in range(plan.looks)]
    text = stats.verdict(result, decision, metric=metric_label(test), higher_is_better=test.higher_is_better,
                         unit=METRICS[test.metric].unit)  # fmt: skip
    return Analysis(plan, arms, result, decision, looks, text, boot[0], boot[1])


def chart_series(test: ABTest, max_points: int = 400) -> dict[str, Any]:
    """Per variant: the running mean of the metric against the time each unit was assigned (thinned)."""
    series = []
    for index, variant in enumerate(test.parsed_variants):
        rows = list(
            test.observations.filter(variant=index, value__isnull=False)
            .order_by("seq")
            .values_list("observed_at", "value")
        )
        values = np.asarray([v for _, v in rows], dtype=np.float64)
        running = np.cumsum(values) / np.arange(1, values.size + 1) if values.size else values
        step = max(1, values.size // max_points)
        keep = list(range(0, values.size, step))
        if values.size and keep[-1] != values.size - 1:
            keep.append(values.size - 1)
        series.append({"name": f"{'AB'[index]} · {variant.name}", "t": [rows[i][0].isoformat() for i in keep],
                       "y": [float(running[i]) for i in keep], "n": [i + 1 for i in keep]})  # fmt: skip
    return {"series": series, "metric": metric_label(test), "unit": METRICS[test.metric].unit.strip()}


def _number(test: ABTest, value: float, *, signed: bool = False) -> str:
    """Proportions as percentage points, other metrics in their unit with four significant digits."""
    if test.metric_kind == "proportion":
        return f"{value * 100:{'+' if signed else ''}.1f} pts"
    return f"{value:{'+' if signed else ''}.4g}{METRICS[test.metric].unit}"


def _interval(test: ABTest, interval: stats.Interval | None, *, lift: bool = False) -> str:
    if interval is None:
        return "—"
    low, high = interval
    if lift:
        return f"{low:+.1%} to {high:+.1%}"
    return f"{_number(test, low, signed=True)} to {_number(test, high, signed=True)}"


def formatted(test: ABTest, analysis: Analysis) -> dict[str, str]:
    """The figures the page shows, as text (the template does no arithmetic)."""
    r, d = analysis.result, analysis.decision
    if r is None:
        return {}
    return {
        "confidence": f"{d.confidence:.0%}",
        "difference": _number(test, r.difference, signed=True),
        "lift": "—" if r.relative_lift is None else f"{r.relative_lift:+.1%}",
        "difference_ci": _interval(test, d.difference_ci),
        "lift_ci": _interval(test, d.lift_ci, lift=True),
        "bootstrap_difference_ci": _interval(test, analysis.bootstrap_difference),
        "bootstrap_lift_ci": _interval(test, analysis.bootstrap_lift, lift=True),
        "p_value": f"{r.p_value:.3g}" if r.p_value >= 1e-4 else f"{r.p_value:.1e}",
        "threshold": f"{d.threshold:.3g}" if d.threshold and d.threshold >= 1e-4 else f"{d.threshold or 0:.1e}",
    }


def mean_text(test: ABTest, value: float | None) -> str:
    if value is None:
        return "—"
    return f"{value:.1%}" if test.metric_kind == "proportion" else f"{value:.4g}{METRICS[test.metric].unit}"
