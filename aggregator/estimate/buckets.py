"""From opened bucket-pattern counts to a pattern table of people, in public (generalised linear counting).

The joint computation hashes every person of a stratum into one of m buckets (the same bucket at every
organisation) and opens, per bucket pattern S (which lists have someone in that bucket; S empty = nobody), the
noisy number of buckets c_S. Several people can share a bucket, and then the bucket shows the union of their
patterns, so c_S is not the number of people with pattern S. The correction: a bucket's pattern lies inside a set
of lists A exactly when none of its people is on a list outside A, which for uniform hashing has probability
(1 - 1/m)^K_A, with K_A the people on some list outside A. So

    K_A = ln(Z_A / Z) / ln(1 - 1/m),   Z_A = sum of c_S over S inside A, Z = the sum of all c_S (m + noise),
    N_A = K_{empty} - K_A                 people whose pattern lies inside A,
    n_T = sum over A inside T of (-1)^|T - A| N_A     people with exactly pattern T (Moebius inversion).

With one list this is plain linear counting. The variance of each n_T has two parts: the privacy noise of the
opened c_S (delta method through the formulas above) and the randomness of which people share a bucket
(simulated: people with the estimated patterns hashed afresh, a fixed number of times with a fixed seed; a
statistical simulation of the hashing, not privacy noise). Both go into the table's `extra_variance`.
"""

from __future__ import annotations

import math

import numpy as np

from .tables import EstimationError, PatternTable

OCCUPANCY_REPLICATES = 1_000
OCCUPANCY_SEED = 20_251


def _subset_matrix(n_lists: int) -> np.ndarray:
    """M[A, S] = 1 when pattern S lies inside A (bit masks)."""
    masks = np.arange(2 ** n_lists)
    return ((masks[None, :] & ~masks[:, None]) == 0).astype(float)


def _moebius_matrix(n_lists: int) -> np.ndarray:
    """Inverse of the subset matrix: n_T = sum_A mu[T, A] N_A."""
    masks = np.arange(2 ** n_lists)
    inside = (masks[None, :] & ~masks[:, None]) == 0  # A inside T
    sign = np.vectorize(lambda x: -1.0 if bin(x).count("1") % 2 else 1.0)(masks[:, None] ^ masks[None, :])
    return np.where(inside, sign, 0.0)


def _people_by_pattern(counts: np.ndarray, m: int, subsets: np.ndarray, moebius: np.ndarray
                       ) -> tuple[np.ndarray, np.ndarray]:
    """People per exact pattern (index 0, nobody, is 0) and the Jacobian d n / d c."""
    z = subsets @ counts
    # The share of buckets inside A is Z_A / Z_all, with Z_all the sum of all opened counts (m plus the noise): taking
    # the known m instead would put the noise of every count into the all-lists pattern.
    total = max(float(z[-1]), 1.0)
    z = np.clip(z, 0.5, total)  # noise can push a subset sum outside (0, total]; the clip keeps the logarithm finite
    log_q = math.log1p(-1.0 / m)
    k = (np.log(z) - math.log(total)) / log_q
    k[-1] = 0.0  # nobody is on a list outside all lists
    n_inside = k[0] - k
    dk = (subsets / z[:, None] - 1.0 / total) / log_q
    dk[-1] = 0.0
    d_inside = dk[0][None, :] - dk
    people = moebius @ n_inside
    people[0] = 0.0
    jacobian = moebius @ d_inside
    jacobian[0] = 0.0
    return people, jacobian


def _occupancy_variance(people: np.ndarray, m: int, subsets: np.ndarray, moebius: np.ndarray) -> np.ndarray:
    """Variance of the corrected counts from the hashing alone, for people with these patterns."""
    rng = np.random.default_rng(OCCUPANCY_SEED)
    per_pattern = np.clip(np.rint(people), 0, None).astype(np.int64)
    patterns = np.repeat(np.arange(len(people)), per_pattern)
    if len(patterns) == 0:
        return np.zeros(len(people))
    replicates = []
    for _ in range(OCCUPANCY_REPLICATES):
        buckets = np.zeros(m, dtype=np.int64)
        np.bitwise_or.at(buckets, rng.integers(0, m, size=len(patterns)), patterns)
        counts = np.bincount(buckets, minlength=len(people)).astype(float)
        replicates.append(_people_by_pattern(counts, m, subsets, moebius)[0])
    return np.var(np.asarray(replicates), axis=0, ddof=1)


def pattern_table_from_buckets(lists: tuple[str, ...], counts, m: int, noise_variance: float,
                               readded: float = 0.0) -> PatternTable:
    """The pattern table of people from the 2^L opened bucket-pattern counts (index bit k = lists[k], index 0 the
    empty buckets) of a stratum with m buckets; `noise_variance` is the privacy-noise variance of each count.
    `readded` is a variance per cell that the estimator adds back itself (the release's noise, which its bootstrap
    then draws with the release's own exact sampler): the table's extra variance is only what lies beyond it (the
    correction's amplification of the noise and the hashing), never below 0."""
    n_lists = len(lists)
    counts = np.asarray(counts, dtype=float)
    if len(counts) != 2 ** n_lists:
        raise EstimationError(f"{n_lists} lists need {2 ** n_lists} bucket-pattern counts, got {len(counts)}")
    if m < 2:
        raise EstimationError("a stratum needs at least two buckets")
    subsets, moebius = _subset_matrix(n_lists), _moebius_matrix(n_lists)
    people, jacobian = _people_by_pattern(counts, m, subsets, moebius)
    noise = noise_variance * np.sum(jacobian ** 2, axis=1)
    occupancy = _occupancy_variance(people, m, subsets, moebius)
    return PatternTable(tuple(lists), tuple(people[1:]), tuple(np.maximum(noise + occupancy - readded, 0.0)[1:]))
