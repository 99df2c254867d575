"""Synthetic capture-recapture populations with a known total, for tests and benchmarks.

A population of ``n`` people is spread multinomially over all 2^L capture patterns (including the unseen
all-zero pattern) with log-linear pattern probabilities: list i captures with probability about
``probs[i]`` and each ``(i, j, log_odds)`` in ``dependence`` adds ``log_odds`` for people on both lists (a
referral between two services). The true total is ``n``; the true model is in the searched model class.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .mse import PatternTable
from .noise import discrete_laplace_noise

__all__ = ["pattern_probabilities", "simulate_table"]


def pattern_probabilities(probs: Sequence[float], dependence: Sequence[tuple[int, int, float]] = ()) -> np.ndarray:
    """Probabilities of the 2^L patterns, index = mask (bit i = on list i); index 0 is the unseen."""
    n_lists = len(probs)
    masks = np.arange(2**n_lists)
    bits = (masks[:, None] >> np.arange(n_lists)[None, :]) & 1
    logit = np.log(np.asarray(probs) / (1 - np.asarray(probs)))
    log_p = bits @ logit
    for i, j, g in dependence:
        log_p = log_p + g * bits[:, i] * bits[:, j]
    p = np.exp(log_p - log_p.max())
    return p / p.sum()


def simulate_table(
    rng: np.random.Generator,
    n: int,
    lists: Sequence[str],
    probs: Sequence[float],
    dependence: Sequence[tuple[int, int, float]] = (),
    noise_scale: float = 0.0,
) -> PatternTable:
    """One stratum's pattern table for a population of ``n``; with ``noise_scale`` > 0 each released cell
    gets OpenDP discrete Laplace noise of that scale (as a DP release would)."""
    counts = rng.multinomial(n, pattern_probabilities(probs, dependence))[1:].astype(float)
    counts += discrete_laplace_noise(noise_scale, len(counts))
    return PatternTable(tuple(lists), tuple(counts))
