"""privacy.py: exact epsilon, calibration against OpenDP's map, error formulas, the local ledger."""

from __future__ import annotations

import math
from fractions import Fraction

import pytest

from aggregator.errors import BudgetExceeded, UsageError
from aggregator.organisation.spending import Spend, SpendingFile
from aggregator.privacy.mechanism import calibrated_measurement, discrete_laplace_quantile, discrete_laplace_variance, release_counts
from aggregator.privacy.epsilon import parse_epsilon
from aggregator.privacy.workload import split_epsilon


@pytest.mark.parametrize("text, value", [("1", Fraction(1)), ("0.1", Fraction(1, 10)), ("1/7", Fraction(1, 7)), (" 2.5 ", Fraction(5, 2))])
def test_parse_epsilon_is_exact(text, value):
    assert parse_epsilon(text) == value


@pytest.mark.parametrize("text", ["nan", "NaN", "inf", "-inf", "Infinity", "0", "0.0", "-1", "abc", "", "1/0", "1e400", "0/5"])
def test_parse_epsilon_refuses_nonsense(text):
    with pytest.raises(UsageError):
        parse_epsilon(text)


def test_parse_epsilon_refuses_floats():
    with pytest.raises(UsageError):
        parse_epsilon(0.5)  # type: ignore[arg-type]


def test_equal_split_adds_up_exactly():
    from aggregator.privacy.workload import EQUAL_WORKLOAD

    parts = split_epsilon(Fraction(1), EQUAL_WORKLOAD)
    assert sum(parts) == 1 and parts == [Fraction(1, 7)] * 7


@pytest.mark.parametrize("eps", [Fraction(1), Fraction(1, 7), Fraction(3, 10), Fraction(1, 21)])
def test_calibration_never_exceeds_epsilon_by_opendps_own_map(eps):
    measurement, scale = calibrated_measurement(eps)
    assert Fraction(measurement.map(1)) <= eps
    assert scale == pytest.approx(float(1 / eps), rel=1e-12)


def test_variance_and_quantile_formulas_match_the_sampled_noise():
    """100k draws at scale 7: sample variance within 3% (a 30% wrong scale moves the variance by > 50%)."""
    eps = Fraction(1, 7)
    noisy, scale = release_counts([0] * 100_000, eps)
    n = len(noisy)
    mean = sum(noisy) / n
    var = sum((x - mean) ** 2 for x in noisy) / (n - 1)
    expected = discrete_laplace_variance(scale)
    # sd of the sample variance ~ sqrt((kurtosis - 1)/n) * var, kurtosis of Laplace ~ 6: ~0.7% here.
    assert abs(mean) < 4 * math.sqrt(expected / n)
    assert abs(var / expected - 1) < 0.03
    assert abs(var / discrete_laplace_variance(scale * 0.7) - 1) > 0.3
    assert abs(var / discrete_laplace_variance(scale * 1.3) - 1) > 0.3
    q = discrete_laplace_quantile(scale)
    inside = sum(abs(x) <= q for x in noisy) / n
    assert 0.95 <= inside < 0.95 + 0.01
    assert sum(abs(x) <= q - 1 for x in noisy) / n < 0.955


def test_ledger_refuses_past_cap_and_sums_exactly(tmp_path):
    ledger = SpendingFile(tmp_path / "ledger.jsonl", Fraction(1))
    for seq in range(1, 11):
        ledger.append(Spend(2025, seq, "1/10", f"{seq:064x}", "t", 0, 7))
    assert ledger.spent(2025) == 1 and ledger.remaining(2025) == 0
    before = (tmp_path / "ledger.jsonl").read_bytes()
    with pytest.raises(BudgetExceeded, match="exceed the cap"):
        ledger.append(Spend(2025, 11, "1/1000000", "f" * 64, "t", 0, 7))
    assert (tmp_path / "ledger.jsonl").read_bytes() == before
    assert ledger.spent(2024) == 0 and ledger.next_sequence(2025) == 11


# ---------------------------------------------------------------- workload-aware split and the preview

from aggregator.privacy.workload import EQUAL_WORKLOAD, expected_query_errors, MONITOR_WORKLOAD  # noqa: E402
from aggregator.organisation.release import epsilon_for_target, preview  # noqa: E402


@pytest.mark.parametrize("eps", ["1", "1/3", "0.1", "2/7"])
def test_monitor_split_adds_up_exactly_and_favours_the_published_tables(eps):
    parts = split_epsilon(parse_epsilon(eps), MONITOR_WORKLOAD)
    assert sum(parts) == parse_epsilon(eps) and all(p > 0 for p in parts)
    by = dict(zip(MONITOR_WORKLOAD, parts))
    assert by[("form", "age_band")] > by[("province",)]


def test_monitor_workload_beats_the_equal_split_on_every_monitor_figure():
    monitor = {q["query"]: q["error_95"] for q in expected_query_errors(Fraction(1), MONITOR_WORKLOAD)}
    equal = {q["query"]: q["error_95"] for q in expected_query_errors(Fraction(1), EQUAL_WORKLOAD)}
    for name in ("total", "form", "age_band", "minors_by_form", "nationality_group"):
        assert monitor[name] < equal[name], name


def test_preview_error_matches_simulated_releases():
    """The preview's per-cell 95% error and per-figure variance match 40k simulated releases; 30% off would not."""
    shown = preview(Fraction(1), "monitor")
    cell = shown.marginals[0]
    eps = Fraction(cell["epsilon"])
    draws, scale = release_counts([0] * 40_000, eps)
    q = cell["expected_error_95"]
    a = math.exp(-1 / scale)
    exact = 1 - 2 * a ** (q + 1) / (1 + a)  # P(|noise| <= q) for the stated scale; >= 0.95 by construction
    inside = sum(abs(x) <= q for x in draws) / len(draws)
    se = math.sqrt(exact * (1 - exact) / len(draws))  # ~0.001
    assert exact >= 0.95 and abs(inside - exact) < 4 * se
    for wrong in (0.7, 1.3):  # a preview computed with a 30% wrong scale states a bound far from 95% coverage
        q_wrong = discrete_laplace_quantile(scale * wrong)
        assert abs(sum(abs(x) <= q_wrong for x in draws) / len(draws) - 0.95) > 10 * se
    # The age-band figure sums 5 cells of form x age band: its variance is 5 cell variances.
    fig = next(q for q in shown.national if q["query"] == "age_band")
    sums = [sum(draws[i : i + 5]) for i in range(0, len(draws), 5)]
    var = sum(x * x for x in sums) / len(sums)
    assert abs(var / fig["variance"] - 1) < 0.1  # sd of this estimate ~ 2.5%; a 30% wrong scale is off by > 40%


def test_target_error_picks_the_smallest_sufficient_epsilon():
    eps = epsilon_for_target(40.0, Fraction(1))
    total = lambda e: next(q["error_95"] for q in expected_query_errors(e, MONITOR_WORKLOAD) if q["query"] == "total")  # noqa: E731
    assert total(eps) <= 40.0 < total(eps - Fraction(1, 100))
    with pytest.raises(BudgetExceeded):
        epsilon_for_target(1.0, Fraction(1))
