"""Normal-approximation intervals, in one place: every 95% interval the project prints comes from `interval`."""

from __future__ import annotations

import math

Z_95 = 1.96  # two-sided 95% quantile of the standard normal


def interval(centre: float, variance: float, z: float = Z_95) -> tuple[float, float, float]:
    """(standard error, lower, upper) of centre +/- z * sqrt(variance)."""
    se = math.sqrt(variance)
    return se, centre - z * se, centre + z * se
