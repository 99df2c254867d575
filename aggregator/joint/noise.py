"""Noise of the joint engine: discrete Laplace from OpenDP, and budget helpers.

Each released value gets N0 + N1, where N0 is drawn by party 0 and N1 by
party 1, each an independent discrete Laplace DL(b) (P(x) ~ exp(-|x|/b)),
input secret-shared into the computation. Party 0 never learns N1 and party 1
never learns N0, party 2 learns neither, so no single party can subtract the
noise from an opened value: to each of them at least one full DL(b) term
remains unknown, which alone gives epsilon = sensitivity / b. (Two colluding
parties already break the secret sharing, so the noise does not need to
resist them.) The released value carries the sum of two DL(b), slightly more
noise than needed; the privacy claim is stated for the one unknown term.

Sensitivities, for the unit "one person at one organisation" (the person adds
or removes a 1 in exactly one bucket of one cell per marginal, of that org's
vector):
  * marginal cell counts (a group of cells partitioning people, e.g. age
    bands): one bucket of one cell can switch between 'no org' and 'some org',
    so the L1 sensitivity of the whole group's counts is 1;
  * a stratum's pattern table: the bucket moves from one pattern to another,
    one count -1 and one +1: L1 sensitivity 2;
  * a stratum's multiplicity table (exactly 1, exactly 2, 3+): the bucket's
    org-sum changes by one, moving between two classes (or into/out of the
    unreleased class 0): L1 sensitivity 2.
A person at k organisations counts k times.
"""

from __future__ import annotations

import math
from functools import lru_cache

from .layout import MULTIPLICITY_SUFFIX, PATTERNS_SUFFIX, Layout

SENSITIVITY_COUNT = 1
SENSITIVITY_PATTERNS = 2
SENSITIVITY_MULTIPLICITY = 2


def sensitivities(layout: Layout) -> dict[str, int]:
    """Noise group -> L1 sensitivity, per the module docstring."""
    out = {}
    for g in layout.groups():
        if g.endswith(PATTERNS_SUFFIX):
            out[g] = SENSITIVITY_PATTERNS
        elif g.endswith(MULTIPLICITY_SUFFIX):
            out[g] = SENSITIVITY_MULTIPLICITY
        else:
            out[g] = SENSITIVITY_COUNT
    return out


def scales(epsilon_per_group: dict[str, float], sensitivity_per_group: dict[str, float]
           ) -> dict[str, float]:
    """Discrete Laplace scale b = sensitivity / epsilon per noise group."""
    missing = set(sensitivity_per_group) - set(epsilon_per_group)
    if missing:
        raise ValueError(f"no epsilon for groups: {', '.join(sorted(missing))}")
    out = {}
    for g, s in sensitivity_per_group.items():
        eps = float(epsilon_per_group[g])
        if not (eps > 0 and math.isfinite(eps)):
            raise ValueError(f"epsilon for {g} must be positive and finite")
        out[g] = float(s) / eps
    return out


@lru_cache(maxsize=64)
def _sampler(scale: float):
    # the plain modules, not opendp.prelude, which also imports polars, numpy and sklearn extras (0.27 s per party)
    from opendp.domains import atom_domain, vector_domain
    from opendp.measurements import make_laplace
    from opendp.metrics import l1_distance
    from opendp.mod import enable_features

    enable_features("contrib")
    return make_laplace(vector_domain(atom_domain(T=int)), l1_distance(T=int), scale=scale)


def draw(scales_per_value: list[float]) -> list[int]:
    """One independent discrete Laplace draw per value (OpenDP's exact sampler)."""
    out = [0] * len(scales_per_value)
    by_scale: dict[float, list[int]] = {}
    for i, b in enumerate(scales_per_value):
        if not (b > 0 and math.isfinite(b)):
            raise ValueError("noise scales must be positive and finite")
        by_scale.setdefault(float(b), []).append(i)
    for b, idx in by_scale.items():
        for i, x in zip(idx, _sampler(b)([0] * len(idx))):
            out[i] = int(x)
    return out


def value_scales(layout: Layout, group_scales: dict[str, float]) -> list[float]:
    """Scale of every released value, in release order."""
    missing = [g for g in layout.groups() if g not in group_scales]
    if missing:
        raise ValueError(f"no noise scale for groups: {', '.join(missing)}")
    return [float(group_scales[g]) for _, g in layout.released()]
