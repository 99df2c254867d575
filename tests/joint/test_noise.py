"""The noise: OpenDP's discrete Laplace, and the budget helpers."""

import math

import numpy as np
import pytest

from aggregator.joint import noise
from aggregator.joint.layout import Cell, Layout

from .util import chi2_gof

SCALE = 2.0
N = 5000


def dl_pmf(b: float, k: int) -> dict[int, float]:
    q = math.exp(-1 / b)
    return {x: (1 - q) / (1 + q) * q ** abs(x) for x in range(-k, k + 1)}


def sum_of_two_pmf(b: float) -> dict[int, float]:
    k = int(60 * b)
    one = dl_pmf(b, k)
    xs = np.arange(-k, k + 1)
    conv = np.convolve([one[x] for x in xs], [one[x] for x in xs])
    return {int(x): float(pr) for x, pr in zip(range(-2 * k, 2 * k + 1), conv)}


def test_released_noise_is_the_sum_of_two_discrete_laplaces():
    n0 = np.array(noise.draw([SCALE] * N))  # party 0's draws
    n1 = np.array(noise.draw([SCALE] * N))  # party 1's draws
    total = n0 + n1
    assert chi2_gof(total, sum_of_two_pmf(SCALE)) > 1e-4
    # the same test rejects a scale that is 30% off either way
    assert chi2_gof(total, sum_of_two_pmf(SCALE * 1.3)) < 1e-6
    assert chi2_gof(total, sum_of_two_pmf(SCALE * 0.7)) < 1e-6
    # and each party's single term is DL(SCALE)
    assert chi2_gof(n0, dl_pmf(SCALE, 200)) > 1e-4


def test_draw_groups_scales_and_refuses_bad_ones():
    out = noise.draw([1.0, 50.0, 1.0, 50.0] * 500)
    a = np.array(out).reshape(-1, 4)
    assert a[:, 1].std() > 10 * a[:, 0].std()
    with pytest.raises(ValueError):
        noise.draw([0.0])


def test_scales_from_budget_and_sensitivities():
    lay = Layout(cells=(Cell("a", 5, "age"), Cell("s", 5, "s", stratum=True)), max_orgs=4,
                 n_lists=2, org_lists={})
    sens = noise.sensitivities(lay)
    assert sens == {"age": 1, "s": 1, "s#patterns": 2, "s#multiplicity": 2}
    sc = noise.scales({"age": 0.5, "s": 1.0, "s#patterns": 1.0, "s#multiplicity": 0.25}, sens)
    assert sc == {"age": 2.0, "s": 1.0, "s#patterns": 2.0, "s#multiplicity": 8.0}
    with pytest.raises(ValueError):
        noise.scales({"age": 1.0}, sens)
    assert len(noise.value_scales(lay, sc)) == len(lay.released()) == 2 + 4 + 3
