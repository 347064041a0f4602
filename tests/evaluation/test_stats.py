"""A/B statistics checked against scipy, published boundaries and simulation."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as scipy_stats

from evaluation.stats import (
    Status,
    bootstrap_ci,
    decide,
    fixed_horizon_decision,
    fixed_horizon_plan,
    obrien_fleming_spending,
    sample_size_two_means,
    sample_size_two_proportions,
    sequential_decision,
    sequential_plan,
    stopping_probabilities,
    two_proportion_ztest,
    verdict,
    welch_ttest,
)

# ---------------------------------------------------------------------------------------------------------
# Tests against scipy


def test_the_welch_test_matches_scipy_ttest_ind_with_unequal_variances() -> None:
    rng = np.random.default_rng(1)
    a, b = rng.normal(10, 2, 40), rng.normal(11, 5, 65)
    result = welch_ttest(a, b)
    reference = scipy_stats.ttest_ind(b, a, equal_var=False)
    assert result.statistic == pytest.approx(reference.statistic, rel=1e-10)
    assert result.p_value == pytest.approx(reference.pvalue, rel=1e-10)
    assert result.df == pytest.approx(reference.df, rel=1e-10)
    interval = reference.confidence_interval(0.95)
    assert result.difference_ci == pytest.approx((interval.low, interval.high), rel=1e-10)
    assert result.difference == pytest.approx(b.mean() - a.mean())


def test_the_two_proportion_z_test_matches_a_pooled_z_computed_with_scipy_norm() -> None:
    result = two_proportion_ztest(120, 1000, 150, 1050)
    p_a, p_b = 120 / 1000, 150 / 1050
    pooled = 270 / 2050
    z = (p_b - p_a) / math.sqrt(pooled * (1 - pooled) * (1 / 1000 + 1 / 1050))
    unpooled = math.sqrt(p_a * (1 - p_a) / 1000 + p_b * (1 - p_b) / 1050)
    critical = scipy_stats.norm.ppf(0.975)
    assert result.statistic == pytest.approx(z, rel=1e-12)
    assert result.p_value == pytest.approx(2 * scipy_stats.norm.sf(abs(z)), rel=1e-10)
    assert result.difference_ci == pytest.approx((p_b - p_a - critical * unpooled, p_b - p_a + critical * unpooled))
    assert result.relative_lift == pytest.approx(p_b / p_a - 1)


def test_the_squared_z_statistic_equals_scipys_uncorrected_chi_square() -> None:
    result = two_proportion_ztest(30, 400, 52, 410)
    chi2, p_value, _, _ = scipy_stats.chi2_contingency([[30, 370], [52, 358]], correction=False)
    assert result.statistic**2 == pytest.approx(chi2, rel=1e-10)
    assert result.p_value == pytest.approx(p_value, rel=1e-10)


def test_the_lift_interval_is_centred_on_the_lift_and_wider_at_a_stricter_alpha() -> None:
    loose, strict = two_proportion_ztest(100, 1000, 130, 1000), two_proportion_ztest(100, 1000, 130, 1000, alpha=0.01)
    assert loose.lift_ci is not None and strict.lift_ci is not None
    assert sum(loose.lift_ci) / 2 == pytest.approx(0.3)
    assert strict.lift_ci[0] < loose.lift_ci[0] < 0.3 < loose.lift_ci[1] < strict.lift_ci[1]


# ---------------------------------------------------------------------------------------------------------
# Sample size


def test_the_sample_size_for_two_proportions_is_the_closed_form_formula() -> None:
    p1, p2, alpha, power = 0.10, 0.12, 0.05, 0.8
    mean = (p1 + p2) / 2
    z_alpha, z_beta = scipy_stats.norm.ppf(1 - alpha / 2), scipy_stats.norm.ppf(power)
    spread = z_alpha * math.sqrt(2 * mean * (1 - mean)) + z_beta * math.sqrt(p1 * (1 - p1) + p2 * (1 - p2))
    assert sample_size_two_proportions(p1, 0.02) == math.ceil((spread / (p2 - p1)) ** 2)


def test_a_relative_effect_is_a_fraction_of_the_baseline() -> None:
    assert sample_size_two_proportions(0.2, 0.1, relative=True) == sample_size_two_proportions(0.2, 0.02)


def test_the_sample_size_for_two_means_is_the_smallest_that_reaches_the_power_with_the_t_test() -> None:
    sd, delta = 1.0, 0.5
    closed_form = 2 * ((scipy_stats.norm.ppf(0.975) + scipy_stats.norm.ppf(0.8)) * sd / delta) ** 2
    n = sample_size_two_means(sd, delta)

    def t_power(per_arm: int) -> float:
        df, noncentrality = 2 * per_arm - 2, delta / (sd * math.sqrt(2 / per_arm))
        critical = scipy_stats.t.ppf(0.975, df)
        return scipy_stats.nct.sf(critical, df, noncentrality) + scipy_stats.nct.cdf(-critical, df, noncentrality)

    assert math.ceil(closed_form) <= n <= math.ceil(closed_form) + 2
    assert t_power(n) >= 0.8 > t_power(n - 1)


def test_sample_size_rejects_effects_that_leave_the_unit_interval() -> None:
    with pytest.raises(ValueError):
        sample_size_two_proportions(0.95, 0.1)
    with pytest.raises(ValueError):
        sample_size_two_means(1.0, 0.0)


# ---------------------------------------------------------------------------------------------------------
# Bootstrap


def test_the_bootstrap_interval_covers_the_true_difference_on_simulated_data() -> None:
    rng = np.random.default_rng(7)
    covered = 0
    for seed in range(100):
        a, b = rng.exponential(1.0, 80), rng.exponential(1.3, 90)
        low, high = bootstrap_ci(a, b, n_resamples=1000, seed=seed)
        covered += low <= 0.3 <= high
    assert covered >= 88  # nominal 95; the binomial 1st percentile is about 90


def test_the_bootstrap_interval_agrees_with_scipy_bootstrap() -> None:
    rng = np.random.default_rng(3)
    a, b = rng.lognormal(0, 0.8, 150), rng.lognormal(0.2, 0.8, 150)
    for method in ("percentile", "bca"):
        ours = bootstrap_ci(a, b, statistic="relative_lift", n_resamples=4000, method=method)
        reference = scipy_stats.bootstrap(
            (a, b),
            lambda x, y, axis: y.mean(axis=axis) / x.mean(axis=axis) - 1,
            n_resamples=4000,
            method="BCa" if method == "bca" else "percentile",
            rng=np.random.default_rng(0),
        ).confidence_interval
        width = reference.high - reference.low
        assert ours == pytest.approx((reference.low, reference.high), abs=0.06 * width)


def test_the_bootstrap_interval_of_identical_constant_arms_is_a_point() -> None:
    assert bootstrap_ci([2.0, 2.0, 2.0], [2.0, 2.0, 2.0]) == (0.0, 0.0)


def test_a_tiny_sample_lift_interval_is_open_ended_instead_of_nan() -> None:
    for method in ("bca", "percentile"):
        low, high = bootstrap_ci([0, 0, 0, 0, 1], [0, 1, 1, 0, 1], statistic="relative_lift", method=method)
        assert not math.isnan(low) and high == math.inf


def test_the_bootstrap_refuses_a_relative_lift_over_a_zero_baseline() -> None:
    with pytest.raises(ValueError, match="undefined"):
        bootstrap_ci([0, 0, 0], [0, 1, 1], statistic="relative_lift")


# ---------------------------------------------------------------------------------------------------------
# Sequential boundaries


def test_the_boundaries_match_the_published_obrien_fleming_spending_values() -> None:
    plan = sequential_plan(10_000, looks=5)
    # gsDesign sfLDOF / ldbounds, 5 equally spaced looks, two-sided alpha = 0.05.
    assert plan.boundaries == pytest.approx((4.8769, 3.3570, 2.6803, 2.2898, 2.0310), abs=2e-3)


def test_the_alpha_spent_over_all_looks_sums_to_alpha() -> None:
    plan = sequential_plan(2000, looks=4, alpha=0.05)
    fractions = np.asarray(plan.look_sizes) / plan.planned_per_arm
    assert plan.alpha_spent[-1] == pytest.approx(0.05, abs=1e-12)
    assert all(np.diff(plan.alpha_spent) > 0)
    assert stopping_probabilities(fractions, plan.boundaries, 0.0).sum() == pytest.approx(0.05, abs=1e-6)
    assert obrien_fleming_spending(1.0, 0.05) == pytest.approx(0.05)


def test_simulated_brownian_paths_cross_the_boundaries_at_rate_alpha() -> None:
    plan = sequential_plan(1000, looks=5)
    fractions = np.asarray(plan.look_sizes) / plan.planned_per_arm
    steps = np.random.default_rng(11).normal(size=(200_000, 5)) * np.sqrt(np.diff(fractions, prepend=0.0))
    z = np.cumsum(steps, axis=1) / np.sqrt(fractions)
    rate = np.mean(np.any(np.abs(z) >= np.asarray(plan.boundaries), axis=1))
    assert rate == pytest.approx(0.05, abs=0.002)


def test_the_sequential_plan_keeps_the_designed_power_with_a_small_inflation() -> None:
    plan = sequential_plan(10_000, looks=5, power=0.8)
    fractions = np.asarray(plan.look_sizes) / plan.planned_per_arm
    drift = (scipy_stats.norm.ppf(0.975) + scipy_stats.norm.ppf(0.8)) * math.sqrt(plan.planned_per_arm / 10_000)
    assert 1.02 < plan.planned_per_arm / 10_000 < 1.03
    assert stopping_probabilities(fractions, plan.boundaries, drift).sum() == pytest.approx(0.8, abs=1e-3)


# ---------------------------------------------------------------------------------------------------------
# Decisions under peeking


def test_a_fixed_horizon_test_keeps_collecting_until_the_planned_size() -> None:
    plan = fixed_horizon_plan(1200)
    decision = fixed_horizon_decision(plan, two_proportion_ztest(0, 312, 90, 312))
    assert decision.status == Status.COLLECTING
    assert verdict(None, decision) == "Not enough data yet: 312 of 1,200 planned observations per arm."


def test_data_after_the_horizon_does_not_change_the_verdict() -> None:
    rng = np.random.default_rng(5)
    a, b = rng.random(3000) < 0.1, rng.random(3000) < 0.1
    plan = fixed_horizon_plan(1000)
    at_horizon, later = decide(plan, a[:1000], b[:1000], kind="proportion"), decide(plan, a, b, kind="proportion")
    assert at_horizon[0] == later[0]
    assert at_horizon[1].status == later[1].status != Status.COLLECTING
    assert later[1].collected_per_arm == 3000


def test_peeking_between_looks_repeats_the_last_looks_verdict() -> None:
    rng = np.random.default_rng(6)
    a, b = rng.normal(0, 1, 1000), rng.normal(0.05, 1, 1000)
    plan = sequential_plan(900, looks=5)
    second_look = plan.look_sizes[1]
    results = {decide(plan, a[:n], b[:n], kind="mean")[0] for n in range(second_look, plan.look_sizes[2])}
    assert len(results) == 1
    (result,) = results
    assert result is not None and result.n_a == second_look


def test_a_sequential_look_refuses_a_result_that_is_not_on_the_planned_count() -> None:
    plan = sequential_plan(1000, looks=5)
    with pytest.raises(ValueError, match="exactly"):
        sequential_decision(plan, 0, two_proportion_ztest(10, 250, 12, 250))


def test_an_early_look_needs_far_stronger_evidence_than_p_below_alpha() -> None:
    plan = sequential_plan(1000, looks=5)
    n = plan.look_sizes[0]
    result = two_proportion_ztest(20, n, 40, n)  # p about 0.007: significant on its own, not at look 1
    decision = sequential_decision(plan, 0, result)
    assert result.p_value < 0.05
    assert decision.status == Status.COLLECTING
    assert decision.difference_ci is not None and decision.difference_ci[0] < 0 < decision.difference_ci[1]


# ---------------------------------------------------------------------------------------------------------
# Verdicts


def test_a_significant_improvement_says_ship_b() -> None:
    plan = fixed_horizon_plan(1000)
    result = two_proportion_ztest(80, 1000, 121, 1000)
    text = verdict(result, fixed_horizon_decision(plan, result))
    assert text.startswith("B's success rate is 4.1 points higher, +51.2% relative (95% CI 1.5 to 6.7 points)")
    assert "statistically significant (p = 0.0023)" in text
    assert text.endswith("Ship B.")


def test_a_significant_latency_increase_says_keep_a() -> None:
    rng = np.random.default_rng(8)
    a, b = rng.normal(800, 100, 200), rng.normal(900, 100, 200)
    result, decision = decide(fixed_horizon_plan(200), a, b, kind="mean")
    text = verdict(result, decision, metric="mean latency", higher_is_better=False, unit=" ms")
    assert text.startswith("B's mean latency is ")
    assert " ms higher" in text
    assert text.endswith("Keep A: B is worse.")


def test_a_test_that_ends_without_significance_says_keep_a() -> None:
    plan = fixed_horizon_plan(1000)
    result = two_proportion_ztest(100, 1000, 104, 1000)
    text = verdict(result, fixed_horizon_decision(plan, result))
    assert text.startswith("No significant difference: B's success rate is 0.4 points higher")
    assert "p = 0.77" in text
    assert "planned 1,000 observations per arm, so keep A" in text


def test_an_interim_look_says_keep_collecting_with_the_next_look() -> None:
    plan = sequential_plan(1000, looks=5)
    n = plan.look_sizes[0]
    result = two_proportion_ztest(20, n, 30, n)
    text = verdict(result, sequential_decision(plan, 0, result))
    assert text.startswith("Keep collecting: at look 1 of 5")
    assert "adjusted for interim looks" in text
    assert f"Next look at {plan.look_sizes[1]:,} of {plan.planned_per_arm:,} per arm; {n:,} collected so far." in text


def test_a_sequential_stop_names_the_look_and_its_threshold() -> None:
    plan = sequential_plan(1000, looks=5)
    n = plan.look_sizes[2]
    result = two_proportion_ztest(60, n, 120, n)
    text = verdict(result, sequential_decision(plan, 2, result))
    assert "statistically significant at look 3 of 5" in text
    assert "below this look's threshold of 0.0074" in text
    assert text.endswith("Ship B.")


def test_before_the_first_sequential_look_it_names_when_the_first_look_comes() -> None:
    plan = sequential_plan(1000, looks=5)
    result, decision = decide(plan, [1, 0, 0], [0, 1, 1], kind="proportion")
    assert result is None
    assert verdict(result, decision) == (
        f"Not enough data yet: 3 of {plan.planned_per_arm:,} planned observations per arm. "
        f"First look at {plan.look_sizes[0]:,} per arm."
    )


# ---------------------------------------------------------------------------------------------------------
# Edge cases


def _assert_clean(text: str) -> None:
    assert "nan" not in text.lower() and "inf" not in text.lower()


def test_zero_successes_in_both_arms_gives_p_one_and_no_lift() -> None:
    result = two_proportion_ztest(0, 50, 0, 50)
    assert (result.statistic, result.p_value, result.relative_lift, result.lift_ci) == (0.0, 1.0, None, None)
    _assert_clean(verdict(result, fixed_horizon_decision(fixed_horizon_plan(50), result)))


def test_zero_successes_in_a_gives_no_lift_but_a_clean_verdict() -> None:
    result = two_proportion_ztest(0, 50, 5, 50)
    assert result.relative_lift is None and math.isfinite(result.p_value)
    _assert_clean(verdict(result, fixed_horizon_decision(fixed_horizon_plan(50), result)))


def test_all_successes_in_both_arms_is_no_difference() -> None:
    result = two_proportion_ztest(20, 20, 20, 20)
    assert (result.difference, result.p_value, result.relative_lift) == (0.0, 1.0, 0.0)


def test_identical_constant_arms_in_welch_give_p_one() -> None:
    result = welch_ttest([3.0, 3.0, 3.0], [3.0, 3.0, 3.0])
    assert (result.statistic, result.p_value, result.df) == (0.0, 1.0, 4.0)
    text = verdict(result, fixed_horizon_decision(fixed_horizon_plan(3), result), metric="mean score")
    assert "the same as A's" in text
    _assert_clean(text)


def test_different_constant_arms_in_welch_are_significant_without_dividing_by_zero() -> None:
    result = welch_ttest([1.0, 1.0], [2.0, 2.0])
    assert result.p_value == 0.0
    text = verdict(result, fixed_horizon_decision(fixed_horizon_plan(2), result), metric="mean score")
    _assert_clean(text)
    assert text.endswith("Ship B.")


def test_two_observations_per_arm_give_a_finite_verdict() -> None:
    result = welch_ttest([1.0, 2.0], [2.0, 4.0])
    assert math.isfinite(result.p_value) and result.df is not None and result.df > 0
    _assert_clean(verdict(result, fixed_horizon_decision(fixed_horizon_plan(2), result), metric="mean score"))


def test_too_few_observations_are_refused_rather_than_divided_by_zero() -> None:
    with pytest.raises(ValueError):
        welch_ttest([1.0], [2.0, 3.0])
    with pytest.raises(ValueError):
        two_proportion_ztest(0, 0, 1, 10)
    with pytest.raises(ValueError):
        welch_ttest([1.0, math.nan], [2.0, 3.0])
