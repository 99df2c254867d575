"""estimate/buckets.py: bucket-pattern counts -> people per list pattern, and the variance that goes with it."""

from __future__ import annotations

import numpy as np
import pytest

from aggregator.estimate.buckets import _moebius_matrix, _people_by_pattern, _subset_matrix, pattern_table_from_buckets
from aggregator.estimate.tables import EstimationError
from aggregator.privacy.mechanism import discrete_laplace_variance
from aggregator.joint.noise import draw

LISTS = ("a", "b", "c")
M = 2_000


def _people(rng) -> np.ndarray:
    true = np.zeros(8)
    true[1:] = [500, 300, 60, 250, 40, 30, 10]
    return true


def _hash(rng, true: np.ndarray, m: int = M) -> np.ndarray:
    patterns = np.repeat(np.arange(len(true)), true.astype(int))
    buckets = np.zeros(m, dtype=np.int64)
    np.bitwise_or.at(buckets, rng.integers(0, m, size=len(patterns)), patterns)
    return np.bincount(buckets, minlength=len(true))


def test_the_correction_is_unbiased_where_the_raw_bucket_counts_are_not():
    rng = np.random.default_rng(3)
    true = _people(rng)
    raw, fixed = [], []
    for _ in range(300):
        counts = _hash(rng, true)
        raw.append(counts[1:])
        fixed.append(pattern_table_from_buckets(LISTS, counts, M, 0.0).counts)
    raw, fixed = np.mean(raw, axis=0), np.mean(fixed, axis=0)
    # ~1,190 people in 2,000 buckets: many share a bucket, so raw counts lose singles and invent overlaps
    assert raw[0] < true[1] - 40 and raw[6] > true[7] + 5
    assert np.all(np.abs(fixed - true[1:]) < 4 + 0.02 * true[1:])


def test_the_stated_variance_matches_the_spread_with_noise_within_a_quarter():
    rng = np.random.default_rng(4)
    true = _people(rng)
    scale = 8.0  # noise variance 2 x 128 per count: the larger part of every cell's variance
    noise_variance = 2 * discrete_laplace_variance(scale)  # two parties' draws, as in a joint release
    replicates, stated = [], []
    for _ in range(400):
        counts = _hash(rng, true) + np.asarray(draw([scale] * 8)) + np.asarray(draw([scale] * 8))
        table = pattern_table_from_buckets(LISTS, counts, M, noise_variance)
        replicates.append(table.counts)
        stated.append(table.extra_variance)  # each table states its own variance, at its own estimate
    observed = np.var(replicates, axis=0, ddof=1)
    ratio = observed / np.mean(stated, axis=0)
    # 400 replicates: the sampling error of a variance is ~7%; a noise scale wrong by 30% (variance x 0.59 or x 1.69)
    # moves the ratios out of the band (checked)
    assert np.all((ratio > 0.75) & (ratio < 1.33)), ratio


def test_with_one_list_it_is_linear_counting():
    m, x = 500, 180
    people, _ = _people_by_pattern(np.array([m - x, x], dtype=float), m, _subset_matrix(1), _moebius_matrix(1))
    assert people[1] == pytest.approx(np.log1p(-x / m) / np.log1p(-1 / m))


def test_a_table_of_the_wrong_size_is_refused():
    with pytest.raises(EstimationError):
        pattern_table_from_buckets(LISTS, [1, 2, 3], M, 0.0)


def test_noise_the_estimator_readds_itself_leaves_the_table_once():
    """The dark number's bootstrap re-adds the release's noise with the release's own exact sampler, so the table
    carries only the variance beyond it; the two together are the whole variance, and nothing goes below 0."""
    from aggregator.estimate import PatternTable, estimate_stratum
    from aggregator.estimate.noise import noise_draws, noise_variance
    from aggregator.joint.noise import POLYA

    counts = _hash(np.random.default_rng(4), _people(None))
    scale = 4.0
    noise = noise_variance(scale, POLYA)
    assert noise == 1.5 * discrete_laplace_variance(scale)
    whole = pattern_table_from_buckets(LISTS, counts, M, noise)
    rest = pattern_table_from_buckets(LISTS, counts, M, noise, readded=noise)
    assert rest.counts == whole.counts
    assert np.allclose(np.asarray(rest.extra_variance), np.maximum(np.asarray(whole.extra_variance) - noise, 0))
    assert min(rest.extra_variance) >= 0 and max(rest.extra_variance) > 0  # the correction amplifies the noise
    fit = estimate_stratum(PatternTable(LISTS, rest.counts, rest.extra_variance), scale, noise_model=POLYA,
                           n_bootstrap=20, seed=1)
    assert "polya-three noise (exact shares)" in fit.search
    draws = noise_draws(scale, 20_000, POLYA)
    assert abs(draws.var() / noise - 1) < 0.1 and np.all(draws == np.round(draws))
