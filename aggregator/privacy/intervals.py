"""Normal-approximation intervals, in one place: every 95% interval the project prints comes from here.

`interval` is the plain centre +/- z * se. `bounded_interval` is the one printed for a count of people:
- it rounds outward (lower bound down, upper bound up to whole people), so rounding never narrows it;
- its lower bound is never below `floor` (the people already known individually in the cell: a count of distinct
  people cannot be smaller) and never below 0;
- when the noise put the centre below that floor, the upper bound is taken from the floor (as if the centre had
  been observed at the floor): the cut never leaves an interval narrower than z standard errors, and an
  interval is never zero-width while the standard error is positive.
"""

from __future__ import annotations

import math

Z_95 = 1.96  # two-sided 95% quantile of the standard normal


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
