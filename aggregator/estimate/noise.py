"""Noise helpers for the estimator: the discrete Laplace variance and OpenDP's exact sampler.

The bootstrap re-adds privacy noise
with exact samplers only, never numpy's floating-point Laplace: OpenDP's discrete Laplace (P(k) proportional to
exp(-|k|/b) on the integers), or a joint release's noise as its computing parties draw it (joint/noise.py), so the
simulated noise has exactly the distribution of the released noise.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["discrete_laplace_variance", "discrete_laplace_noise", "noise_variance", "noise_draws"]


def discrete_laplace_variance(scale: float) -> float:
    """Variance of the discrete Laplace with scale b (privacy/mechanism.py); 0 when b = 0 (no noise)."""
    from ..privacy.mechanism import discrete_laplace_variance as variance

    return 0.0 if scale <= 0 else variance(scale)


def discrete_laplace_noise(scale: float, size: int) -> np.ndarray:
    """``size`` independent discrete Laplace draws of scale ``scale``, from one OpenDP measurement applied to
    a zero vector (OpenDP's exact sampler; it draws from the system's secure randomness, so it cannot be seeded).
    Returns zeros when ``scale`` is 0 (exact counts)."""
    if scale < 0 or not math.isfinite(scale):
        raise ValueError(f"noise scale must be a finite number >= 0, got {scale!r}")
    if scale == 0 or size == 0:
        return np.zeros(size, dtype=float)
    from ..joint.noise import draw  # the one OpenDP sampler of the project

    return np.asarray(draw([float(scale)] * int(size)), dtype=float)


def noise_variance(scale: float, model: str | None = None) -> float:
    """Variance of the noise of one released count: one discrete Laplace of `scale`, or, with a joint release's noise
    `model` (joint/noise.py), every computing party's share of it added."""
    if model is None or scale <= 0:
        return discrete_laplace_variance(scale)
    from ..joint.noise import released_variance

    return released_variance(model, scale)


def noise_draws(scale: float, size: int, model: str | None = None) -> np.ndarray:
    """``size`` draws of that noise, by exact samplers only: OpenDP's discrete Laplace, or the parties' Polya shares
    as the joint computation draws them (joint/noise.py: released)."""
    if model is None or scale == 0 or size == 0:
        return discrete_laplace_noise(scale, size)
    from ..joint.noise import released

    return np.asarray(released(model, [float(scale)] * int(size)), dtype=float)
