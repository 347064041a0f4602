"""Simulated A/A and A/B tests through the product's decision path, with an operator who keeps peeking.

Run from the repository root: `.venv/bin/python bench/ab_stats.py [--quick]`. The last line is JSON.

Each simulated test is watched the way the product is used: the operator opens the page at 21 moments
(every 5% of the planned maximum, then once more after it) and acts on the first "significant" verdict
that `evaluation.stats.decide` returns. A/A tests give the false positive rate, A/B tests at the designed
effect (sample size from our own sample-size functions, power 0.80) give the power. Both the default
group-sequential plan and the fixed-horizon plan are measured, for a proportion metric (success) and a
skewed continuous metric (latency), and the naive "p < 0.05 at every peek" rule is shown for contrast.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray
from scipy import special

# Runnable as a script from anywhere: make the project importable.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from evaluation.stats import (
    AnalysisPlan,
    MetricKind,
    Status,
    current_look,
    decide,
    fixed_horizon_plan,
    sample_size_two_means,
    sample_size_two_proportions,
    sequential_plan,
)

ALPHA, POWER = 0.05, 0.80
TARGETS = {"false_positive_rate": 0.06, "power": 0.78}
PEEK_FRACTIONS = (*np.arange(1, 21) / 20, 1.2)  # every 5% of the maximum, and once after it
CHUNK = 250  # simulations drawn at once: bounds memory at about 20 MB per arm for the success metric

Draw = Callable[[np.random.Generator, int, int, bool], tuple[NDArray[np.generic], NDArray[np.generic]]]


@dataclass(frozen=True)
class Metric:
    name: str
    kind: MetricKind
    n_fixed: int  # per arm, from our sample-size function
    draw: Draw  # (rng, simulations, observations per arm, with_effect) -> arms A and B
    b_better: Callable[[float], bool]  # does a difference in this direction favour B?


def success_metric() -> Metric:
    """Task success: 10% baseline, designed to detect +2 points."""
    baseline, effect = 0.10, 0.02

    def draw(rng: np.random.Generator, sims: int, n: int, with_effect: bool) -> tuple[NDArray, NDArray]:
        p_b = baseline + effect if with_effect else baseline
        return rng.random((sims, n)) < baseline, rng.random((sims, n)) < p_b

    n_fixed = sample_size_two_proportions(baseline, effect, alpha=ALPHA, power=POWER)
    return Metric("success", "proportion", n_fixed, draw, lambda difference: difference > 0)


def latency_metric() -> Metric:
    """Latency in ms: log-normal (skewed), designed to detect B being 10% faster on average."""
    log_mean, log_sd = math.log(800.0), 0.5
    mean = math.exp(log_mean + log_sd**2 / 2)
    sd = mean * math.sqrt(math.expm1(log_sd**2))
    shift = 0.10 * mean

    def draw(rng: np.random.Generator, sims: int, n: int, with_effect: bool) -> tuple[NDArray, NDArray]:
        a = rng.lognormal(log_mean, log_sd, (sims, n))
        b = rng.lognormal(log_mean, log_sd, (sims, n))
        return a, (b - shift if with_effect else b)

    n_fixed = sample_size_two_means(sd, shift, alpha=ALPHA, power=POWER)
    return Metric("latency_ms", "mean", n_fixed, draw, lambda difference: difference < 0)


@dataclass(frozen=True)
class Outcome:
    significant: int  # tests that reached a "significant" verdict at some peek
    favourable: int  # of those, how many in B's favour
    mean_analysed: float  # average observations per arm behind the verdict the operator acted on


def watch(plan: AnalysisPlan, metric: Metric, a: NDArray, b: NDArray, peeks: list[int]) -> tuple[bool, bool, int]:
    """One test seen through the product: act on the first significant verdict."""
    shown_look: int | None = None
    analysed = 0
    for peek in peeks:
        look = current_look(plan, peek, peek)
        if look is None or look == shown_look:
            continue  # `decide` returns the same verdict until a new look completes: skip recomputing it
        shown_look = look
        result, decision = decide(plan, a[:peek], b[:peek], kind=metric.kind)
        analysed = decision.analysed_per_arm
        if decision.status == Status.SIGNIFICANT and result is not None:
            return True, metric.b_better(result.difference), analysed
    return False, False, analysed


def simulate(plan: AnalysisPlan, metric: Metric, sims: int, with_effect: bool, seed: int) -> Outcome:
    rng = np.random.default_rng(seed)
    peeks = sorted({math.ceil(fraction * plan.planned_per_arm) for fraction in PEEK_FRACTIONS})
    significant = favourable = analysed_total = 0
    for start in range(0, sims, CHUNK):
        arms_a, arms_b = metric.draw(rng, min(CHUNK, sims - start), peeks[-1], with_effect)
        for a, b in zip(arms_a, arms_b, strict=True):
            hit, good, analysed = watch(plan, metric, a, b, peeks)
            significant += hit
            favourable += good
            analysed_total += analysed
    return Outcome(significant, favourable, analysed_total / sims)


def naive_peeking_rate(metric: Metric, n_max: int, sims: int, seed: int) -> float:
    """A/A false positive rate of re-testing at p < 0.05 on all data at every peek (vectorized)."""
    rng = np.random.default_rng(seed)
    peeks = np.array(sorted({math.ceil(fraction * n_max) for fraction in PEEK_FRACTIONS}))
    rejected = 0
    for start in range(0, sims, CHUNK):
        a, b = metric.draw(rng, min(CHUNK, sims - start), int(peeks[-1]), False)
        z = _running_z(a.astype(np.float64), b.astype(np.float64), peeks, metric.kind)
        rejected += int(np.any(2 * special.ndtr(-np.abs(z)) < ALPHA, axis=1).sum())
    return rejected / sims


def _running_z(a: NDArray[np.float64], b: NDArray[np.float64], peeks: NDArray, kind: MetricKind) -> NDArray:
    """Test statistics on the first `peek` observations for every simulation and peek at once."""
    n = peeks.astype(np.float64)
    sum_a, sum_b = np.cumsum(a, axis=1)[:, peeks - 1], np.cumsum(b, axis=1)[:, peeks - 1]
    mean_a, mean_b = sum_a / n, sum_b / n
    if kind == "proportion":
        pooled = (sum_a + sum_b) / (2 * n)
        se = np.sqrt(pooled * (1 - pooled) * 2 / n)
    else:
        sq_a, sq_b = np.cumsum(a**2, axis=1)[:, peeks - 1], np.cumsum(b**2, axis=1)[:, peeks - 1]
        var_a, var_b = (sq_a - n * mean_a**2) / (n - 1), (sq_b - n * mean_b**2) / (n - 1)
        se = np.sqrt(var_a / n + var_b / n)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(se > 0, (mean_b - mean_a) / se, 0.0)


def _rate_line(label: str, value: float, sims: int) -> str:
    standard_error = math.sqrt(max(value * (1 - value), 1e-12) / sims)
    return f"  {label:<34} {value:6.4f}  (± {2 * standard_error:.4f} at 2 SE)"


def run_metric(metric: Metric, sims: int, seed: int) -> dict[str, dict[str, float]]:
    plans = {
        "group_sequential": sequential_plan(metric.n_fixed, looks=5, alpha=ALPHA, power=POWER),
        "fixed_horizon": fixed_horizon_plan(metric.n_fixed, alpha=ALPHA, power=POWER),
    }
    print(f"{metric.name} ({metric.kind}): fixed n = {metric.n_fixed:,} per arm")
    report: dict[str, dict[str, float]] = {}
    for offset, (design, plan) in enumerate(plans.items()):
        null = simulate(plan, metric, sims, False, seed + 10 * offset)
        alternative = simulate(plan, metric, sims, True, seed + 10 * offset + 1)
        report[design] = {
            "false_positive_rate": null.significant / sims,
            "power": alternative.favourable / sims,
            "max_per_arm": plan.planned_per_arm,
            "mean_per_arm_under_effect": round(alternative.mean_analysed, 1),
        }
        print(f" {design}: looks at {', '.join(f'{size:,}' for size in plan.look_sizes)} per arm")
        print(_rate_line("false positive rate (A/A, peeking)", report[design]["false_positive_rate"], sims))
        print(_rate_line("power (A/B at designed effect)", report[design]["power"], sims))
        print(f"  {'mean observations/arm at decision':<34} {alternative.mean_analysed:,.0f}")
    naive = naive_peeking_rate(metric, metric.n_fixed, sims, seed + 99)
    report["naive_peeking"] = {"false_positive_rate": naive}
    print(_rate_line("naive p < 0.05 at each of 21 peeks", naive, sims))
    return report


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1,000 simulations per case instead of 4,000")
    parser.add_argument("--seed", type=int, default=20240501)
    args = parser.parse_args()
    sims = 1000 if args.quick else 4000
    started = time.perf_counter()
    print(f"A/B statistics benchmark: {sims:,} simulated tests per metric, design and hypothesis; alpha = {ALPHA}")
    metrics = {
        metric.name: run_metric(metric, sims, args.seed + 1000 * i)
        for i, metric in enumerate((success_metric(), latency_metric()))
    }
    # Headline numbers are the product's default design, worst case over the two metrics.
    false_positive_rate = max(report["group_sequential"]["false_positive_rate"] for report in metrics.values())
    power = min(report["group_sequential"]["power"] for report in metrics.values())
    passed = false_positive_rate <= TARGETS["false_positive_rate"] and power >= TARGETS["power"]
    elapsed = time.perf_counter() - started
    print(
        f"default design (group sequential, 5 looks): false positive rate {false_positive_rate:.4f}, power {power:.4f}"
    )
    print(
        json.dumps(
            {
                "bench": "ab_stats",
                "false_positive_rate": false_positive_rate,
                "power": power,
                "n_simulations": sims,
                "targets": TARGETS,
                "passed": passed,
                "design": "group_sequential_obrien_fleming_5_looks",
                "peeks_per_test": len(PEEK_FRACTIONS),
                "metrics": metrics,
                "quick": args.quick,
                "seconds": round(elapsed, 1),
            }
        )
    )
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
