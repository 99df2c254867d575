"""Normal-approximation intervals, in one place: every 95% interval the project prints comes from here.

`interval` is the plain centre +/- z * se. `bounded_interval` is the one printed for a count of people:
- it rounds outward (lower bound down, upper bound up to whole people), so rounding never narrows it;
- its lower bound is never below `floor` (the people already known individually in the cell: a count of distinct
  people cannot be smaller) and never below 0;
- when the noise put the centre below that floor, the upper bound is taken from the floor (as if the centre had
  been observed at the floor): the cut never leaves an interval narrower than z standard errors, and an
  interval is never zero-width while the standard error is positive.
`bound_z` is the multiplier for an interval around a range of values rather than one value (Imbens and Manski 2004,
Econometrica 72(6): "Confidence intervals for partially identified parameters"): when the truth is only known to lie
between two estimated bounds, the interval runs from the lower bound minus z se to the upper bound plus z se, and z
falls from 1.96 (bounds that coincide) to 1.645 (bounds far apart: the truth can be near only one of them).
"""

from __future__ import annotations

import math

Z_95 = 1.96  # two-sided 95% quantile of the standard normal


def _normal_cdf(x: float) -> float:
    return 0.5 * (1.0 + math.erf(x / math.sqrt(2.0)))


def bound_z(width: float, se: float, coverage: float = 0.95) -> float:
    """Imbens-Manski z for a truth between two bounds `width` apart, each estimated with standard error at most `se`:
    the c with Phi(c + width / se) - Phi(-c) = coverage (module docstring). Between the one-sided and the two-sided
    normal quantile; the two-sided one when `se` is 0 or the width is not known to be positive. Callers pass a
    width that errs small (its lower confidence bound), which errs towards the wider two-sided interval."""
    lo, hi = 0.0, 10.0
    if not (se > 0 and width > 0):
        ratio = 0.0
    else:
        ratio = width / se
    for _ in range(100):  # bisection: the left side grows with c
        mid = (lo + hi) / 2
        if _normal_cdf(mid + ratio) - _normal_cdf(-mid) < coverage:
            lo = mid
        else:
            hi = mid
    return hi


def interval(centre: float, variance: float, z: float = Z_95) -> tuple[float, float, float]:
    """(standard error, lower, upper) of centre +/- z * sqrt(variance)."""
    se = math.sqrt(variance)
    return se, centre - z * se, centre + z * se


def bounded_interval(centre: float, variance: float, floor: float = 0, z: float = Z_95) -> tuple[float, float, float]:
    """(standard error, lower, upper) of a count of people: outward-rounded, cut at `floor` (and 0), never zero-width
    while the standard error is positive. See the module docstring."""
    se = math.sqrt(max(float(variance), 0.0))
    known = max(float(math.ceil(floor)), 0.0)
    lower = max(known, float(math.floor(centre - z * se)))
    upper = float(math.ceil(max(float(centre), known) + z * se))
    return se, lower, max(upper, lower)
