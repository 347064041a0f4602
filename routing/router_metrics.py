"""Routing quality metrics as defined by RouteLLM: PGR curve, APGR, CPT(x%) and cost saving.

A router orders prompts by its score ("need for the strong model"); sending the top share `c`
of prompts to the strong model gives an accuracy. We sweep `c` over every integer number of
strong calls (0..n) instead of RouteLLM's ten quantile bins, so the curve is exact.

Ties in the score are resolved in expectation: a group of tied prompts is routed in random
order, so each prompt of the group contributes the group's mean gain. A constant score is
therefore exactly the expected random router (PGR(c) = c, APGR = 0.5), whatever the data order.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

WEAK_COST_RATIO = 0.06  # one weak call costs 6% of one strong call


@dataclass(frozen=True)
class Curve:
    """Accuracy after sending the top `shares[k]` of prompts (k = 0..n) to the strong model."""

    shares: np.ndarray
    accuracies: np.ndarray
    weak_accuracy: float
    strong_accuracy: float

    @property
    def pgr(self) -> np.ndarray:
        return (self.accuracies - self.weak_accuracy) / (self.strong_accuracy - self.weak_accuracy)


@dataclass(frozen=True)
class RouterMetrics:
    apgr: float
    cpt50: float
    cpt80: float
    saving_at_95: float

    def as_dict(self) -> dict[str, float]:
        return {"apgr": self.apgr, "cpt50": self.cpt50, "cpt80": self.cpt80, "saving_at_95": self.saving_at_95}


def _tie_averaged_gains(scores: np.ndarray, gains: np.ndarray) -> np.ndarray:
    """Gains in descending score order, each tie group replaced by its mean (random order within ties)."""
    order = np.argsort(-scores, kind="stable")
    sorted_scores, sorted_gains = scores[order], gains[order]
    starts = np.flatnonzero(np.r_[True, sorted_scores[1:] != sorted_scores[:-1]])
    sums = np.add.reduceat(sorted_gains, starts)
    sizes = np.diff(np.r_[starts, len(sorted_gains)])
    return np.repeat(sums / sizes, sizes)


def pgr_curve(scores: ArrayLike, weak_correct: ArrayLike, strong_correct: ArrayLike) -> Curve:
    scores_arr = np.asarray(scores, dtype=np.float64)
    weak = np.asarray(weak_correct, dtype=np.float64)
    strong = np.asarray(strong_correct, dtype=np.float64)
    n = len(scores_arr)
    if n == 0 or not (len(weak) == len(strong) == n):
        raise ValueError("scores, weak_correct and strong_correct must be non-empty and of equal length")
    weak_accuracy, strong_accuracy = float(weak.mean()), float(strong.mean())
    if strong_accuracy == weak_accuracy:
        raise ValueError("PGR is undefined when both models have the same accuracy")
    gains = _tie_averaged_gains(scores_arr, strong - weak)
    accuracies = (weak.sum() + np.r_[0.0, np.cumsum(gains)]) / n
    return Curve(np.arange(n + 1) / n, accuracies, weak_accuracy, strong_accuracy)


def apgr(curve: Curve) -> float:
    """Area under PGR over the share of strong calls (trapezoids between consecutive counts)."""
    pgr = curve.pgr
    return float(np.sum((pgr[1:] + pgr[:-1]) / 2 * np.diff(curve.shares)))


def _first_crossing(shares: np.ndarray, values: np.ndarray, target: float) -> float:
    """Smallest share where `values` reaches `target`, linearly interpolated; NaN if never reached."""
    reached = np.flatnonzero(values >= target - 1e-12)
    if len(reached) == 0:
        return float("nan")
    k = int(reached[0])
    if k == 0:
        return 0.0
    low, high = values[k - 1], values[k]
    fraction = (target - low) / (high - low)
    return float(shares[k - 1] + fraction * (shares[k] - shares[k - 1]))


def cpt(curve: Curve, pgr_target: float) -> float:
    """CPT(x): the share of strong calls needed to first reach PGR = x (0.5 for CPT(50%))."""
    return _first_crossing(curve.shares, curve.pgr, pgr_target)


def cost_saving(strong_share: float, weak_cost: float = WEAK_COST_RATIO) -> float:
    """Saving against sending everything to the strong model, at a given share of strong calls."""
    return 1.0 - (strong_share + (1.0 - strong_share) * weak_cost)


def saving_at_quality(curve: Curve, quality: float = 0.95, weak_cost: float = WEAK_COST_RATIO) -> float:
    """Cost saving at the fewest strong calls that keep `quality` x the strong model's accuracy."""
    share = _first_crossing(curve.shares, curve.accuracies, quality * curve.strong_accuracy)
    return cost_saving(share, weak_cost)


def router_metrics(scores: ArrayLike, weak_correct: ArrayLike, strong_correct: ArrayLike) -> RouterMetrics:
    curve = pgr_curve(scores, weak_correct, strong_correct)
    return RouterMetrics(apgr(curve), cpt(curve, 0.5), cpt(curve, 0.8), saving_at_quality(curve))


def threshold_for_quality(
    scores: ArrayLike, weak_correct: ArrayLike, strong_correct: ArrayLike, quality: float = 0.95
) -> float:
    """Score threshold (route to strong when score >= it) that first reaches `quality` on this data.

    Meant for training data: applying the threshold to new prompts is what a deployment does.
    """
    scores_arr = np.asarray(scores, dtype=np.float64)
    curve = pgr_curve(scores_arr, weak_correct, strong_correct)
    share = _first_crossing(curve.shares, curve.accuracies, quality * curve.strong_accuracy)
    if share == 0.0:
        return float("inf")
    count = min(len(scores_arr), int(np.ceil(share * len(scores_arr) - 1e-9)))
    return float(np.sort(scores_arr)[::-1][count - 1])


def outcome_at_threshold(
    scores: ArrayLike, weak_correct: ArrayLike, strong_correct: ArrayLike, threshold: float
) -> dict[str, float]:
    """Share of strong calls, accuracy as a fraction of the strong model's, and saving at a fixed threshold."""
    to_strong = np.asarray(scores, dtype=np.float64) >= threshold
    weak = np.asarray(weak_correct, dtype=np.float64)
    strong = np.asarray(strong_correct, dtype=np.float64)
    accuracy = float(np.where(to_strong, strong, weak).mean())
    share = float(to_strong.mean())
    return {"strong_share": share, "quality": accuracy / float(strong.mean()), "saving": cost_saving(share)}
