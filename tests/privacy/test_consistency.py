"""consistency.py: WLS combination of overlapping marginals, exact margins, non-negativity, honest variances."""

from __future__ import annotations

import math
import random
from itertools import product

import numpy as np
import pytest

from aggregator.contract.codelists import codes
from aggregator.privacy.consistency import _group_estimates, _post_process, ConsistentTable, DIMS, project_to_simplex, SHAPE

MONITOR = [("form", "age_band"), ("form", "nationality_group"), ("gender",), ("province",)]


def truth_table(seed: int = 3):
    rng = np.random.default_rng(seed)
    return rng.poisson(0.4, size=SHAPE).astype(float)


def marginal(x, dims):
    axes = tuple(i for i, d in enumerate(DIMS) if d not in dims)
    return x.sum(axis=axes).ravel()


def measure(x, rng, variances):
    return [(d, v, list(marginal(x, d) + rng.normal(0, math.sqrt(v), size=marginal(x, d).size))) for d, v in zip(MONITOR, variances)]


def test_exact_measurements_are_reproduced():
    x = truth_table()
    est = _group_estimates([(d, 1.0, list(marginal(x, d))) for d in MONITOR])
    for dims in [("form",), ("form", "age_band"), ("age_band",), ("nationality_group",), ("gender",), ("province",), ()]:
        assert np.allclose(est[dims][0], marginal(x, dims) if dims else [x.sum()])


def test_unmeasured_tables_are_not_estimated():
    x = truth_table()
    est = _group_estimates([(("form",), 1.0, list(marginal(x, ("form",))))])
    assert ("form",) in est and () in est
    assert ("form", "age_band") not in est and ("gender",) not in est


def test_form_combines_both_tables_by_inverse_variance():
    x = truth_table()
    v1, v2 = 4.0, 9.0
    est = _group_estimates([(MONITOR[0], v1, list(marginal(x, MONITOR[0]))), (MONITOR[1], v2, list(marginal(x, MONITOR[1])))])
    var_a, var_b = 5 * v1, 4 * v2  # the form total from 5 age bands, or from 4 nationality groups
    assert est[("form",)][1] == pytest.approx([1 / (1 / var_a + 1 / var_b)] * 5, rel=1e-6)


def test_wls_intervals_cover_at_the_stated_rate_and_the_variance_is_right():
    """120 simulated releases: the stated variance matches the spread, and 95% intervals cover ~95%."""
    x = truth_table()
    rng = np.random.default_rng(11)
    variances = [16.0, 15.0, 66.0, 148.0]
    errors, covered, stated = [], 0, None
    for _ in range(120):
        est = _group_estimates(measure(x, rng, variances))
        value, var = est[("form",)]
        errors.append(value[0] - x.sum(axis=(1, 2, 3, 4))[0])
        stated = var[0]
        covered += all(abs(e - t) <= 1.96 * math.sqrt(v) for e, t, v in zip(value, x.sum(axis=(1, 2, 3, 4)), var))
    empirical = float(np.var(errors))
    assert abs(empirical / stated - 1) < 0.35  # sd of a 120-sample variance ~13%; 30% off in scale is > 69% in variance
    assert 0.65 <= covered / 120  # all 5 forms at once: 0.95^5 ~ 0.77


@pytest.mark.parametrize("values, total", [([3.2, -1.0, 0.4], 3), ([-5.0, -2.0], 0), ([10.0, 10.0], 7), ([0.5] * 7, 4)])
def test_simplex_projection_is_non_negative_and_exact(values, total):
    out = project_to_simplex(values, total)
    assert all(isinstance(v, int) and v >= 0 for v in out) and sum(out) == total


def test_post_processing_margins_add_up_exactly_and_nothing_is_negative():
    x = truth_table()
    rng = np.random.default_rng(5)
    for _ in range(6):
        est = _group_estimates(measure(x, rng, [400.0, 400.0, 400.0, 400.0]))  # heavy noise: many negatives
        tables = {
            d: ConsistentTable(d, list(product(*(codes(k) for k in d))) if d else [()], list(e), list(v))
            for d, (e, v) in est.items()
        }
        _post_process(tables)
        total = tables[()].post[0]
        for dims, table in tables.items():
            assert all(v >= 0 for v in table.post), dims
            assert sum(table.post) == total, dims
        form = dict(zip(tables[("form",)].keys, tables[("form",)].post))
        for child in (("form", "age_band"), ("form", "nationality_group")):
            for f in codes("form"):
                assert sum(p for k, p in zip(tables[child].keys, tables[child].post) if k[0] == f) == form[(f,)]
