"""The noise: OpenDP's discrete Laplace, the three parties' Polya shares, and the budget helpers."""

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


def negative_binomial_difference_pmf(b: float, r: float) -> dict[int, float]:
    """G - H for independent G, H ~ NB(r, exp(-1/b)): r = 1 is DL(b), r = 1/2 one Polya share, 3/2 three of them."""
    q = math.exp(-1 / b)
    k = int(80 * b)
    one = np.array([math.exp(math.lgamma(x + r) - math.lgamma(r) - math.lgamma(x + 1) + r * math.log(1 - q)
                         + x * math.log(q)) for x in range(k + 1)])
    conv = np.convolve(one, one[::-1])  # index i: G - H = i - k
    return {i - k: float(pr) for i, pr in enumerate(conv)}


def sum_of_two_pmf(b: float) -> dict[int, float]:
    return negative_binomial_difference_pmf(b, 2.0)


def test_the_negative_binomial_difference_pmf_is_the_discrete_laplace_at_r_1():
    ours, dl = negative_binomial_difference_pmf(SCALE, 1.0), dl_pmf(SCALE, 20)
    assert all(abs(ours[x] - dl[x]) < 1e-12 for x in dl)


def test_the_old_pair_model_releases_the_sum_of_two_discrete_laplaces():
    n0 = np.array(noise.draw([SCALE] * N))  # party 0's draws
    n1 = np.array(noise.draw([SCALE] * N))  # party 1's draws
    total = n0 + n1
    assert chi2_gof(total, sum_of_two_pmf(SCALE)) > 1e-4
    # the same test rejects a scale that is 30% off either way
    assert chi2_gof(total, sum_of_two_pmf(SCALE * 1.3)) < 1e-6
    assert chi2_gof(total, sum_of_two_pmf(SCALE * 0.7)) < 1e-6
    # and each party's single term is DL(SCALE)
    assert chi2_gof(n0, dl_pmf(SCALE, 200)) > 1e-4


def test_polya_shares_any_two_add_up_to_one_discrete_laplace():
    """The privacy claim of the three-party model: what a party does not know (the other two shares) is DL(b)."""
    s = [np.array(noise.polya_share([SCALE] * N)) for _ in range(3)]
    assert chi2_gof(s[0], negative_binomial_difference_pmf(SCALE, 0.5)) > 1e-4  # one share
    for i, j in ((0, 1), (0, 2), (1, 2)):
        assert chi2_gof(s[i] + s[j], dl_pmf(SCALE, 200)) > 1e-4
    # the test has the power to reject a discrete Laplace 30% off either way, and a lone share posing as one
    pair = s[0] + s[1]
    assert chi2_gof(pair, dl_pmf(SCALE * 1.3, 300)) < 1e-6
    assert chi2_gof(pair, dl_pmf(SCALE * 0.7, 300)) < 1e-6
    assert chi2_gof(s[2], dl_pmf(SCALE, 200)) < 1e-6


def test_the_three_party_release_carries_three_shares_and_its_stated_variance():
    total = np.array(noise.released(noise.POLYA, [SCALE] * N))
    assert chi2_gof(total, negative_binomial_difference_pmf(SCALE, 1.5)) > 1e-4
    assert chi2_gof(total, negative_binomial_difference_pmf(SCALE * 1.3, 1.5)) < 1e-6
    assert chi2_gof(total, negative_binomial_difference_pmf(SCALE * 0.7, 1.5)) < 1e-6
    # 1.5 times the variance of one discrete Laplace, against 2 times for the pair model
    from aggregator.privacy.mechanism import discrete_laplace_variance

    assert noise.released_variance(noise.POLYA, SCALE) == 1.5 * discrete_laplace_variance(SCALE)
    assert noise.released_variance(noise.PAIR, SCALE) == 2 * discrete_laplace_variance(SCALE)
    assert abs(total.var() / noise.released_variance(noise.POLYA, SCALE) - 1) < 0.1


def test_plans_fix_their_noise_model():
    assert noise.model_of(1) == noise.model_of(2) == noise.PAIR
    assert noise.model_of(3) == noise.POLYA
    assert noise.drawing_parties(noise.PAIR) == (0, 1)
    assert noise.drawing_parties(noise.POLYA) == (0, 1, 2)
    out = np.array(noise.polya_share([1.0, 50.0] * 500)).reshape(-1, 2)
    assert out[:, 1].std() > 10 * out[:, 0].std()
    with pytest.raises(ValueError):
        noise.polya_share([0.0])
    with pytest.raises(ValueError, match="unknown noise model"):
        noise.share("laplace-one", [1.0])


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
