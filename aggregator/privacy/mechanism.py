"""The OpenDP discrete Laplace measurement, its error, .

Privacy unit: one person at one organisation in one period. Each person adds one to exactly one cell of every
marginal, so a marginal has L1 sensitivity 1; k marginals with epsilons e_i compose to sum(e_i) (pure DP).
"""


from __future__ import annotations

import math
from fractions import Fraction


def calibrated_measurement(epsilon: Fraction):
    """OpenDP's discrete Laplace on a vector of integer counts (L1 distance), with the smallest float scale whose
    privacy loss, by OpenDP's own (conservatively rounded) map, is at most epsilon. Returns (measurement, scale)."""
    # The submodules, not opendp.prelude, which also imports the scikit-learn extras (slow, unused here).
    from opendp.domains import atom_domain, vector_domain
    from opendp.measurements import make_laplace
    from opendp.metrics import l1_distance
    from opendp.mod import enable_features

    enable_features("contrib")
    space = (vector_domain(atom_domain(T=int)), l1_distance(T=int))
    scale = float(1 / epsilon)
    for _ in range(64):
        measurement = make_laplace(*space, scale=scale)
        if Fraction(measurement.map(1)) <= epsilon:
            return measurement, scale
        scale = math.nextafter(scale, math.inf) * (1 + 1e-15)
    raise RuntimeError("could not calibrate the noise scale")  # a bug, never user input


def release_counts(counts: list[int], epsilon: Fraction) -> tuple[list[int], float]:
    """Noisy counts for one marginal at this epsilon."""
    measurement, scale = calibrated_measurement(epsilon)
    return list(measurement(list(counts))), scale


def discrete_laplace_variance(scale: float) -> float:
    """Variance of OpenDP's discrete Laplace, P(k) ~ exp(-|k|/scale): 2a/(1-a)^2 with a = exp(-1/scale)."""
    a = math.exp(-1.0 / scale)
    return 2.0 * a / (1.0 - a) ** 2


def discrete_laplace_quantile(scale: float, coverage: float = 0.95) -> int:
    """Smallest k with P(|X| <= k) >= coverage; P(|X| > k) = 2 a^(k+1) / (1 + a)."""
    a = math.exp(-1.0 / scale)
    tail = 1.0 - coverage
    k = math.ceil(math.log(tail * (1 + a) / 2.0) / math.log(a) - 1.0)
    return max(k, 0)
