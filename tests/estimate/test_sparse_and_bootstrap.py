import json
import math

import numpy as np
import pytest

from aggregator.estimate import EstimationError, PatternTable, estimate_strata, estimate_stratum
from aggregator.estimate.synthetic import simulate_table

LISTS4 = ("police", "labour_inspectorate", "care_coordination", "shelters")


def four_list_table(seed=0, n=3000):
    return simulate_table(np.random.default_rng(seed), n, LISTS4, [0.2, 0.1, 0.3, 0.15], [(0, 2, 1.0)])


def test_zero_overlap_pair_gives_finite_estimate_with_warning():
    lists = ("police", "shelters", "others")
    n = {("police",): 200, ("shelters",): 150, ("others",): 120,
         ("police", "shelters"): 30, ("police", "others"): 25, ("shelters", "others"): 0}
    est = estimate_stratum(PatternTable.from_patterns(lists, n), 0.0, n_bootstrap=50, seed=1)
    assert math.isfinite(est.estimate) and est.estimate > est.observed
    assert ("shelters", "others") in est.excluded_pairs
    assert ("shelters", "others") not in est.chosen_terms
    assert any("not estimable" in w for w in est.warnings)
    assert est.lower is not None and est.lower <= est.estimate <= est.upper


def test_all_zero_stratum_is_refused():
    with pytest.raises(EstimationError, match="nobody is counted"):
        estimate_stratum(PatternTable(("a", "b", "c"), (0,) * 7), 0.0)


def test_only_negative_noise_is_refused_as_all_zero():
    with pytest.raises(EstimationError, match="nobody is counted"):
        estimate_stratum(PatternTable(("a", "b"), (-2, 0, -1)), 3.0)


def test_disjoint_lists_are_refused_not_infinite():
    with pytest.raises(EstimationError, match="finite estimate"):
        estimate_stratum(PatternTable(("a", "b", "c"), (10, 12, 0, 9, 0, 0, 0)), 0.0, n_bootstrap=0)


def test_negative_noisy_counts_are_fitted_as_released_not_clamped():
    counts = list(four_list_table().counts)
    counts[-1], counts[-2] = -3.0, -1.5
    est = estimate_stratum(PatternTable(LISTS4, tuple(counts)), 1.0, n_bootstrap=0)
    assert est.clamped_cells == 2
    assert any("fitted as released" in w for w in est.warnings)
    assert math.isfinite(est.estimate)
    assert est.observed == pytest.approx(sum(counts))  # the negative counts are in the total as released
    clamped = [max(c, 0.0) for c in counts]
    # clamping adds 4.5 people to the three- and four-list overlaps, and more overlap means fewer unseen
    assert est.unseen != pytest.approx(estimate_stratum(PatternTable(LISTS4, tuple(clamped)), 1.0, n_bootstrap=0).unseen)


def test_empty_list_is_dropped_with_warning():
    n = {("a",): 100, ("b",): 80, ("a", "b"): 20}
    est = estimate_stratum(PatternTable.from_patterns(("a", "b", "c"), n), 0.0, n_bootstrap=0)
    assert est.dropped_lists == ("c",)
    assert est.estimate == pytest.approx(120 * 100 / 20)


def test_small_and_sparse_stratum_warns():
    n = {("a",): 9, ("b",): 7, ("c",): 5, ("a", "b"): 2, ("b", "c"): 1}
    est = estimate_stratum(PatternTable.from_patterns(("a", "b", "c"), n), 0.0, n_bootstrap=0)
    assert any("people observed" in w for w in est.warnings)


def test_noise_widens_the_interval():
    """Noise of scale 8 on every cell: by the Cramer-Rao bound of the chosen model no estimator's standard error
    can grow by less than 1.36x on this table (benchmarks/mse.py prints the bound); an interval that ignored the
    noise would not widen at all."""
    table = four_list_table(seed=3)
    exact = estimate_stratum(table, 0.0, n_bootstrap=120, seed=5)
    noisy = estimate_stratum(table, 8.0, n_bootstrap=120, seed=5)
    assert (noisy.upper - noisy.lower) > 1.15 * (exact.upper - exact.lower)


def test_noise_in_the_sparse_cells_does_not_drive_the_estimate():
    """The same noise draw on the sparse overlap cells (three and four lists, a handful of people each) moves the
    estimate that knows the noise variance far less than a plain Poisson fit, which takes every residual at face
    value (estimate/glm.py: the shifted Poisson likelihood)."""
    table = four_list_table(seed=3)
    counts = np.asarray(table.counts, dtype=float)
    sparse = np.asarray([bin(mask).count("1") >= 3 for mask in range(1, 16)])
    noisy = counts + np.where(sparse, np.resize([9.0, -7.0, 11.0, -6.0, 8.0], 15), 0.0)
    exact = estimate_stratum(table, 0.0, n_bootstrap=0).estimate
    aware = estimate_stratum(PatternTable(LISTS4, tuple(noisy)), 8.0, n_bootstrap=0)
    plain = estimate_stratum(PatternTable(LISTS4, tuple(noisy)), 0.0, n_bootstrap=0)
    assert aware.chosen_terms == (("police", "care_coordination"),)
    assert abs(aware.estimate - exact) < 0.5 * abs(plain.estimate - exact)


def test_noisy_replicates_are_drawn_from_the_model_aic_chooses():
    """On noisy counts BIC often leaves out an interaction the noise blurs, and replicates drawn from that smaller
    model cannot show the bias (estimate/mse.py: Intervals); they come from AIC's model, exact tables keep the
    chosen one."""
    table = four_list_table(seed=3)
    exact = estimate_stratum(table, 0.0, n_bootstrap=20, seed=1)
    noisy = estimate_stratum(table, 4.0, n_bootstrap=20, seed=1)
    own = estimate_stratum(table, 4.0, n_bootstrap=20, seed=1, criterion="aic")
    assert "redraw from the chosen model" in exact.search
    assert "redraw from the model AIC chooses (police:care_coordination" in noisy.search
    assert "redraw from the chosen model" in own.search


def test_a_list_the_noise_hides_is_left_out():
    """A list whose released people (alone or with one other list) are within one noise sd of zero carries no
    information on its main effect; it is left out and the table collapsed onto the other lists (its overlaps added
    to their patterns)."""
    n = {("a",): 300, ("b",): 250, ("c",): 200, ("a", "b"): 60, ("a", "c"): 40, ("b", "c"): 35, ("a", "b", "c"): 8}
    base = PatternTable.from_patterns(("a", "b", "c"), n)
    lists = ("a", "b", "c", "d")
    counts = [0.0] * 15
    for mask, value in enumerate(base.counts, start=1):
        counts[mask - 1] = value
    counts[8 - 1], counts[9 - 1], counts[12 - 1] = 3.0, 2.0, -3.0  # d alone, a+d, c+d: noise about nobody (sd 5.6)
    est = estimate_stratum(PatternTable(lists, tuple(counts)), 2.0, n_bootstrap=0)
    assert est.dropped_lists == ("d",)
    assert est.lists == ("a", "b", "c")
    assert est.observed == pytest.approx(sum(base.counts) + 2.0 - 3.0)  # a+d and c+d join a and c; d alone is unseen
    assert any("too few to tell from the noise" in w for w in est.warnings)


def test_collision_variance_widens_the_interval():
    table = four_list_table(seed=4)
    wider = PatternTable(table.lists, table.counts, (40.0,) * 15)
    a = estimate_stratum(table, 0.0, n_bootstrap=120, seed=5)
    b = estimate_stratum(wider, 0.0, n_bootstrap=120, seed=5)
    assert (b.upper - b.lower) > (a.upper - a.lower)


def test_coverage_on_synthetic_data():
    """20 seeds of a known log-linear model (4 lists, capture 0.1-0.3, police-care dependence), truth 3000.
    A fast version (60 replicates); benchmarks/mse.py runs the nation-like population."""
    covered, errors = 0, []
    for seed in range(20):
        est = estimate_stratum(four_list_table(seed), 0.0, n_bootstrap=60, seed=seed)
        covered += est.lower <= 3000 <= est.upper
        errors.append(abs(est.estimate / 3000 - 1))
    assert covered >= 15
    assert np.median(errors) < 0.1
    assert max(errors) < 0.35


def test_aic_option_and_search_descriptions():
    table = four_list_table(seed=1)
    bic = estimate_stratum(table, 0.0, n_bootstrap=0)
    aic = estimate_stratum(table, 0.0, criterion="aic", n_bootstrap=0)
    assert "all subsets" in bic.search
    assert bic.criterion == "bic" and aic.criterion == "aic"
    assert len(aic.chosen_terms) >= len(bic.chosen_terms)
    assert ("police", "care_coordination") in bic.chosen_terms
    with pytest.raises(ValueError):
        estimate_stratum(table, 0.0, criterion="cp")


def test_estimate_strata_and_to_dict():
    tables = {"minor/dutch": four_list_table(1, 800), "adult/non-dutch": four_list_table(2, 2000)}
    out = estimate_strata(tables, {"minor/dutch": 2.0, "adult/non-dutch": 2.0}, n_bootstrap=30, seed=7)
    assert [e.stratum for e in out] == list(tables)
    d = json.loads(json.dumps([e.to_dict() for e in out]))
    assert set(d[0]) >= {"observed", "unseen", "estimate", "lower", "upper", "chosen_terms", "models", "fit", "warnings"}
    assert d[0]["models"][0]["terms"] is not None
    with pytest.raises(EstimationError, match="no noise scale"):
        estimate_strata(tables, {"minor/dutch": 2.0}, n_bootstrap=0)


def test_pattern_table_validation():
    with pytest.raises(EstimationError):
        PatternTable(("a",), (1,))
    with pytest.raises(EstimationError):
        PatternTable(("a", "b"), (1, 2))
    with pytest.raises(EstimationError):
        PatternTable.from_patterns(("a", "b"), {("c",): 1})


def test_overlaps_the_noise_hides_are_refused():
    """When the people on two of the lists are within two noise sds of zero, the unseen count is the noise's
    (n1 n2 / n12 with n12 about its sd); the stratum is refused, not shown with an interval the noise decides."""
    n = {("a",): 300, ("b",): 250, ("c",): 200, ("a", "b"): 8, ("a", "c"): 6, ("b", "c"): 5, ("a", "b", "c"): 1}
    table = PatternTable.from_patterns(("a", "b", "c"), n)
    assert math.isfinite(estimate_stratum(table, 0.0, n_bootstrap=0).estimate)
    # the three two-list cells carry noise of scale 4 (sd 5.6 each, 9.8 together): 19 < 2 x 9.8
    with pytest.raises(EstimationError, match="cannot be told from the noise"):
        estimate_stratum(table, 4.0, n_bootstrap=0)
