from __future__ import annotations

import numpy as np
import pytest

from routing.router_metrics import (
    apgr,
    cost_saving,
    cpt,
    outcome_at_threshold,
    pgr_curve,
    router_metrics,
    saving_at_quality,
    threshold_for_quality,
)

# Ten prompts: 3 only the strong model gets right, 5 both, 1 neither, 1 only the weak model.
# Weak accuracy 0.6, strong 0.8: the gap is worth 2 prompts.
WEAK = np.array([0, 0, 0, 1, 1, 1, 1, 1, 0, 1], dtype=bool)
STRONG = np.array([1, 1, 1, 1, 1, 1, 1, 1, 0, 0], dtype=bool)
ORACLE = (STRONG.astype(float) - WEAK.astype(float)) + np.linspace(0, 0.01, 10)


def test_the_oracle_ordering_gains_first_and_loses_last() -> None:
    curve = pgr_curve(ORACLE, WEAK, STRONG)
    # PGR climbs 0.5 per gained prompt to 1.5, stays until the last prompt, which drops it to 1.0.
    expected = [0, 0.5, 1.0, 1.5, 1.5, 1.5, 1.5, 1.5, 1.5, 1.5, 1.0]
    np.testing.assert_allclose(curve.pgr, expected)
    assert apgr(curve) == pytest.approx(1.25)


def test_the_oracle_reaches_half_and_most_of_the_gap_with_few_strong_calls() -> None:
    curve = pgr_curve(ORACLE, WEAK, STRONG)
    assert cpt(curve, 0.5) == pytest.approx(0.1)
    assert cpt(curve, 0.8) == pytest.approx(0.16)


def test_the_oracle_saving_at_95_percent_quality_uses_interpolated_strong_share() -> None:
    # 95% of 0.8 is 0.76: 1.6 gained prompts, i.e. 16% strong calls; cost 0.16 + 0.84 * 0.06.
    curve = pgr_curve(ORACLE, WEAK, STRONG)
    assert saving_at_quality(curve) == pytest.approx(1 - (0.16 + 0.84 * 0.06))


def test_a_constant_score_is_exactly_the_expected_random_router() -> None:
    metrics = router_metrics(np.zeros(10), WEAK, STRONG)
    assert metrics.apgr == pytest.approx(0.5)
    assert metrics.cpt50 == pytest.approx(0.5)
    assert metrics.cpt80 == pytest.approx(0.8)


def test_random_orderings_average_to_an_apgr_of_one_half() -> None:
    rng = np.random.default_rng(0)
    weak = rng.random(2000) < 0.65
    strong = rng.random(2000) < 0.8
    values = [router_metrics(rng.random(2000), weak, strong).apgr for _ in range(20)]
    assert np.mean(values) == pytest.approx(0.5, abs=0.03)


def test_the_reversed_oracle_is_worse_than_random() -> None:
    metrics = router_metrics(-ORACLE, WEAK, STRONG)
    assert metrics.apgr < 0.5
    assert metrics.cpt50 > 0.5


def test_ties_are_routed_in_expectation_not_in_input_order() -> None:
    # Same scores for the first three prompts in two input orders must give the same curve.
    scores = np.array([1, 1, 1, 0, 0, 0, 0, 0, 0, 0], dtype=float)
    order = np.array([2, 0, 1, 3, 4, 5, 6, 7, 8, 9])
    first = pgr_curve(scores, WEAK, STRONG)
    second = pgr_curve(scores[order], WEAK[order], STRONG[order])
    np.testing.assert_allclose(first.accuracies, second.accuracies)


def test_all_weak_costs_six_percent_of_all_strong() -> None:
    assert cost_saving(0.0) == pytest.approx(0.94)
    assert cost_saving(1.0) == pytest.approx(0.0)


def test_a_threshold_picked_on_one_set_reproduces_its_quality_there() -> None:
    threshold = threshold_for_quality(ORACLE, WEAK, STRONG, quality=0.95)
    outcome = outcome_at_threshold(ORACLE, WEAK, STRONG, threshold)
    assert outcome["quality"] >= 0.95
    assert outcome["strong_share"] == pytest.approx(0.2)


def test_metrics_refuse_models_of_equal_accuracy() -> None:
    with pytest.raises(ValueError):
        pgr_curve(np.zeros(3), [True, False, True], [True, False, True])
