"""Noise of the joint engine: shares drawn by the computing parties with OpenDP's exact sampler, and budget helpers.

No single party may know the noise of a released value, and every party's view must still carry a full discrete
Laplace DL(b) (P(x) ~ exp(-|x|/b)), which alone gives epsilon = sensitivity / b. Two models, fixed by the plan:

  * "laplace-pair" (plans of versions 1 and 2): parties 0 and 1 each draw an independent DL(b) and input it. To
    each party at least one whole DL(b) stays unknown, but the release carries two: variance 2 var DL(b), and a
    mean absolute error 1.5 times that of one draw.
  * "polya-three" (plans from version 3): each of the three parties draws S_i = G_i - H_i, G_i and H_i independent
    negative binomials NB(1/2, p), p = exp(-1/b) (Polya's divisibility of the geometric: NB(1/2) + NB(1/2) =
    NB(1) = geometric, and the difference of two geometrics is DL(b)). Any two parties' shares add up to exactly
    DL(b), so each party, knowing its own share, still faces a whole DL(b); the release carries
    S_0 + S_1 + S_2: variance 1.5 var DL(b), no more than the honest-majority model needs.

NB(1/2, p) is sampled exactly by rejection: propose k from the geometric (1 - p) p^k and accept with probability
C(2k, k) / 4^k, an exact rational decided with the system's secure randomness (k = 0 always; else 2k secret random
bits read as an integer below C(2k, k)). The geometric comes from an OpenDP discrete Laplace draw x, folded: k = x
for x >= 0 and -x - 1 below (P(k) = c p^k + c p^(k+1), proportional to p^k). The accepted k have probability
proportional to p^k C(2k, k) / 4^k, which is NB(1/2, p). No floating-point sampler is involved.

Two colluding parties already break the secret sharing, so the noise does not need to resist them. A party that
deviates and inputs no noise is outside the semi-honest model (SECURITY.md).

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
import secrets
from functools import lru_cache

from .layout import MULTIPLICITY_SUFFIX, PATTERNS_SUFFIX, Layout

PAIR = "laplace-pair"
POLYA = "polya-three"
MODELS = {PAIR: ((0, 1), 2.0), POLYA: ((0, 1, 2), 1.5)}  # model -> (parties that draw, variance / var DL(b))

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


def _by_scale(scales_per_value: list[float]) -> dict[float, list[int]]:
    by_scale: dict[float, list[int]] = {}
    for i, b in enumerate(scales_per_value):
        if not (b > 0 and math.isfinite(b)):
            raise ValueError("noise scales must be positive and finite")
        by_scale.setdefault(float(b), []).append(i)
    return by_scale


def draw(scales_per_value: list[float]) -> list[int]:
    """One independent discrete Laplace draw per value (OpenDP's exact sampler)."""
    out = [0] * len(scales_per_value)
    for b, idx in _by_scale(scales_per_value).items():
        for i, x in zip(idx, _sampler(b)([0] * len(idx))):
            out[i] = int(x)
    return out


def _half_negative_binomials(scale: float, n: int) -> list[int]:
    """n independent NB(1/2, exp(-1/scale)) draws, by exact rejection (module docstring)."""
    per_draw = 1 / math.sqrt(1 - math.exp(-1.0 / scale))  # expected proposals per accepted draw
    out: list[int] = []
    while len(out) < n:
        for x in _sampler(scale)([0] * (int((n - len(out)) * per_draw * 1.2) + 16)):
            k = x if x >= 0 else -x - 1
            if k == 0 or secrets.randbits(2 * k) < _central_binomial(k):
                out.append(int(k))
                if len(out) == n:
                    break
    return out


@lru_cache(maxsize=4096)
def _central_binomial(k: int) -> int:
    return math.comb(2 * k, k)


def polya_share(scales_per_value: list[float]) -> list[int]:
    """One party's share of the "polya-three" noise per value: NB(1/2) - NB(1/2); any two shares add up to DL(b)."""
    out = [0] * len(scales_per_value)
    for b, idx in _by_scale(scales_per_value).items():
        g = _half_negative_binomials(b, 2 * len(idx))
        for j, i in enumerate(idx):
            out[i] = g[2 * j] - g[2 * j + 1]
    return out


def share(model: str, scales_per_value: list[float]) -> list[int]:
    """What one drawing party inputs under `model`."""
    if model not in MODELS:
        raise ValueError(f"unknown noise model {model!r}; known: {', '.join(MODELS)}")
    return polya_share(scales_per_value) if model == POLYA else draw(scales_per_value)


def model_of(plan_version: int) -> str:
    """The noise model a plan fixes (module docstring)."""
    return POLYA if plan_version >= 3 else PAIR


def drawing_parties(model: str) -> tuple[int, ...]:
    return MODELS[model][0]


def released_variance(model: str, scale: float) -> float:
    """Variance of the noise a released value carries under `model` (every drawing party's share added)."""
    from ..privacy.mechanism import discrete_laplace_variance

    return MODELS[model][1] * discrete_laplace_variance(scale)


def released(model: str, scales_per_value: list[float]) -> list[int]:
    """The noise a released value carries, drawn as the parties draw it (for simulations: benchmarks, bootstrap)."""
    shares = [share(model, scales_per_value) for _ in drawing_parties(model)]
    return [sum(values) for values in zip(*shares)]


def value_scales(layout: Layout, group_scales: dict[str, float]) -> list[float]:
    """Scale of every released value, in release order."""
    missing = [g for g in layout.groups() if g not in group_scales]
    if missing:
        raise ValueError(f"no noise scale for groups: {', '.join(missing)}")
    return [float(group_scales[g]) for _, g in layout.released()]
