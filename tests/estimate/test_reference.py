"""The fixed-model point estimate against an established implementation and independent computations of the MLE.

The reference: the R package MultipleSystemsEstimation (Silverman), whose own tests state its fixed-model totals on a
published three-list study (Ball, Shin and Yang 2018, the Palembang "comfort women" lists; tests/estimate/data.py)
to seven significant digits. Silverman 2020, JRSS A, Table 5, gives the UK main-effects estimate only in thousands,
so for the UK tables the statsmodels fit is checked against (a) an independent maximisation of the Poisson likelihood with scipy (BFGS on the negative
log-likelihood with its analytic gradient, its own design matrix), (b) the closed forms: Lincoln-Petersen
for two lists, and for three lists with all pairwise interactions m000 = n100 n010 n001 n111 / (n110 n101 n011)
(no three-way interaction), and (c) the internal Newton solver used in bootstrap replicates.
"""

import itertools
import math

import numpy as np
import pytest
from scipy.optimize import minimize

from aggregator.estimate import PatternTable, estimate_stratum, fit_model
from aggregator.estimate import mse

from .data import KOREA, KOREA_FIXED_MODEL_TOTALS, KOREA_LISTS, UK5_LISTS, UK_LISTS, UKDAT, UKDAT_5


def scipy_mle_unseen(lists, patterns, pairs):
    """Independent MLE: rows = every non-empty 0/1 pattern, columns 1, x_i, x_i x_j."""
    rows = [p for p in itertools.product((0, 1), repeat=len(lists)) if any(p)]
    y = np.array([patterns.get(p, 0) for p in rows], float)
    idx = [(lists.index(a), lists.index(b)) for a, b in pairs]
    X = np.array([[1, *p, *(p[i] * p[j] for i, j in idx)] for p in rows], float)

    def nll(beta):
        eta = X @ beta
        return float(np.sum(np.exp(eta) - y * eta)), X.T @ (np.exp(eta) - y)

    def hess(beta):
        return (X.T * np.exp(X @ beta)) @ X

    beta0 = np.zeros(X.shape[1])
    beta0[0] = math.log(y.mean())
    res = minimize(nll, beta0, jac=True, hess=hess, method="trust-exact", options={"gtol": 1e-9})
    assert np.max(np.abs(nll(res.x)[1])) < 1e-6, res.message  # the score is zero: the MLE
    return math.exp(res.x[0])


@pytest.mark.parametrize("terms", list(KOREA_FIXED_MODEL_TOTALS))
def test_fixed_model_total_equals_the_established_implementation_on_a_published_table(terms):
    table = PatternTable.from_patterns(KOREA_LISTS, KOREA)
    assert sum(table.counts) == 123
    fit = fit_model(table, terms)
    reference = KOREA_FIXED_MODEL_TOTALS[terms]
    assert sum(table.counts) + fit.unseen == pytest.approx(reference, rel=1e-6)  # the must-show asks 0.1%


def test_uk_main_effects_matches_independent_mle():
    table = PatternTable.from_patterns(UK_LISTS, UKDAT)
    assert sum(table.counts) == 2744  # the published observed total (Bales et al. 2015)
    fit = fit_model(table)
    reference = scipy_mle_unseen(UK_LISTS, UKDAT, [])
    assert fit.unseen == pytest.approx(reference, rel=1e-3)
    assert fit.df == 63 - 7


@pytest.mark.parametrize(
    "pairs",
    [
        [("LA", "NG"), ("NG", "PFNCA"), ("PFNCA", "GO")],
        [("LA", "NG"), ("LA", "PFNCA"), ("NG", "GP"), ("PFNCA", "GP"), ("GO", "GP")],
    ],
)
def test_uk5_fixed_interaction_model_matches_independent_mle(pairs):
    table = PatternTable.from_patterns(UK5_LISTS, UKDAT_5)
    assert sum(table.counts) == 2744
    fit = fit_model(table, pairs)
    assert fit.unseen == pytest.approx(scipy_mle_unseen(UK5_LISTS, UKDAT_5, pairs), rel=1e-3)
    assert set(fit.terms) == set(pairs)


def test_two_lists_is_lincoln_petersen():
    n10, n01, n11 = 300.0, 200.0, 40.0
    table = PatternTable(("police", "shelters"), (n10, n01, n11))
    fit = fit_model(table)
    n1, n2 = n10 + n11, n01 + n11
    assert fit.unseen + n10 + n01 + n11 == pytest.approx(n1 * n2 / n11, rel=1e-9)
    assert fit.unseen == pytest.approx(n10 * n01 / n11, rel=1e-9)
    est = estimate_stratum(table, 0.0, n_bootstrap=0)
    assert est.estimate == pytest.approx(n1 * n2 / n11, rel=1e-9)
    assert est.chosen_terms == ()  # with two lists only independence is identified


def test_three_lists_all_pairs_closed_form():
    lists = ("A", "B", "C")
    n = {(1, 0, 0): 120, (0, 1, 0): 90, (0, 0, 1): 150, (1, 1, 0): 30, (1, 0, 1): 25, (0, 1, 1): 18, (1, 1, 1): 6}
    fit = fit_model(PatternTable.from_patterns(lists, n), [("A", "B"), ("A", "C"), ("B", "C")])
    closed = n[(1, 0, 0)] * n[(0, 1, 0)] * n[(0, 0, 1)] * n[(1, 1, 1)] / (n[(1, 1, 0)] * n[(1, 0, 1)] * n[(0, 1, 1)])
    assert fit.unseen == pytest.approx(closed, rel=1e-6)
    assert fit.df == 0


def test_bootstrap_solver_agrees_with_statsmodels():
    table = PatternTable.from_patterns(UK5_LISTS, UKDAT_5)
    prep = mse._prepare(table, 0.0)
    eligible, _, _ = mse._eligible_pairs(prep, 1.0, 2.0)
    exact = mse._Searcher(prep, eligible, "bic", True, 100.0, 8, 400)
    fast = mse._Searcher(prep, eligible, "bic", False, 100.0, 8, 400)
    for pairs in [frozenset(), frozenset(eligible[:3]), frozenset(eligible[2:6])]:
        a, b = exact.fit(pairs), fast.fit(pairs)
        assert a is not None and b is not None
        assert b[3] == pytest.approx(a[3], rel=1e-6)
        assert b[4] == pytest.approx(a[4], rel=1e-9, abs=1e-6)


def test_noisy_counts_fit_maximises_the_shifted_poisson_likelihood():
    """On released counts with noise variance v the solver maximises the Poisson likelihood of y + v at mu + v
    (estimate/glm.py); checked against an independent maximisation of that likelihood with scipy."""
    table = PatternTable.from_patterns(UK5_LISTS, UKDAT_5)
    y = np.asarray(table.counts, dtype=float) + np.resize([3.5, -4.0, 1.0, -2.5, 6.0], len(table.counts))
    v = np.resize([30.0, 45.0, 60.0], len(y))
    prep = mse._collapse(table.lists, y, v)
    assert prep.lists == UK5_LISTS
    pairs = ((0, 2),)
    X = mse._design(prep.bits, pairs)
    start = np.zeros(X.shape[1])
    start[0] = math.log(y.mean())
    beta, mu = mse._newton_poisson(X, y, start, noise_var=v)

    def negative(b):
        m = np.exp(X @ b)
        return -float(np.sum((y + v) * np.log(m + v) - m))

    ref = minimize(negative, start, method="BFGS", options={"gtol": 1e-8, "maxiter": 5000})
    assert math.exp(beta[0]) == pytest.approx(math.exp(ref.x[0]), rel=1e-4)
    assert -negative(beta) >= -ref.fun - 1e-6
    # and a searcher on these counts uses it, not the plain Poisson fit, for the model and its criterion
    fit = mse._Searcher(prep, [(0, 2)], "bic", True, 100.0, 8, 400).fit(frozenset(pairs))
    assert fit[3] == pytest.approx(math.exp(beta[0]), rel=1e-6)
    assert fit[3] != pytest.approx(math.exp(mse._newton_poisson(X, y, start)[0][0]), rel=1e-3)


def test_model_search_on_uk_data_is_finite_and_documented():
    est = estimate_stratum(PatternTable.from_patterns(UK_LISTS, UKDAT), 0.0, n_bootstrap=0)
    assert est.observed == 2744
    assert math.isfinite(est.estimate) and est.estimate > est.observed
    # LA:GP and LA:NCA have no one in common: not estimable, excluded (Chan, Silverman & Vincent 2021)
    assert {("LA", "GP"), ("LA", "NCA")} <= set(est.excluded_pairs)
    assert "stepwise" in est.search
    best = min(m.bic for m in est.models)
    assert min(est.models, key=lambda m: m.bic).terms == est.chosen_terms
    assert best == pytest.approx(next(m.bic for m in est.models if m.terms == est.chosen_terms))
