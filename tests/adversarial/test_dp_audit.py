"""Statistical audit of the privacy guarantee, in the manner of Google's DP statistical tester.

For neighbouring inputs D and D' (one person more in one cell) the release mechanism is run many times and the
outputs of the affected cell are counted per event (each single output value, each tail {out >= t} and {out <= t},
and "the cell is absent"). Pure epsilon-DP means P(E|D) <= e^eps P(E|D') for EVERY event E, so

    loss_lower = max over events of ln(lower bound of P(E|D) / upper bound of P(E|D'))   (and the other way round)

is a lower confidence bound on the true privacy loss. The audit passes when loss_lower <= epsilon. The bounds are
Chernoff (binomial KL) bounds, valid for any n and slightly wider than Clopper-Pearson, with a Bonferroni split of
ALPHA over every interval, so a correct mechanism fails the audit with probability at most ALPHA.

Runs: OpenDP cannot be seeded, so instead of calling release_counts once per run the test releases the
R-fold concatenation of the input vector in one call. The mechanism adds independent noise to each coordinate, so
the R blocks are exactly R independent runs of the mechanism on D.

The same audit must FAIL (detect) deliberately broken mechanisms: half the noise scale, and a cell set chosen from
the data (only non-empty cells released). benchmarks/dp_audit_long.py runs this with many more samples.
"""

from __future__ import annotations

import datetime as dt
import math
from collections import Counter
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from fractions import Fraction
from itertools import product
from pathlib import Path

import pytest

from aggregator.privacy.mechanism import calibrated_measurement, discrete_laplace_variance, release_counts

ALPHA = 1e-4  # chance that a correct mechanism is flagged, for the whole audit
MIN_MASS = 30  # an event is used only when at least this many runs hit it under D or D'
POINT_MASS = 0.1  # the point estimate uses only events with at least this probability under both (less noisy)

Outcome = Hashable  # an int (the noisy count) or None (the cell was not released)


# ---------------------------------------------------------------- confidence bounds


def _kl(p: float, q: float) -> float:
    """Binary Kullback-Leibler divergence KL(p || q)."""
    def term(a: float, b: float) -> float:
        return 0.0 if a == 0 else a * math.log(a / b)

    if q <= 0.0 or q >= 1.0:
        return math.inf if (q <= 0.0 < p or q >= 1.0 > p) else 0.0
    return term(p, q) + term(1 - p, 1 - q)


def chernoff_bounds(k: int, n: int, alpha: float) -> tuple[float, float]:
    """(lower, upper) bounds on a binomial proportion with one-sided error alpha each: {p : n KL(k/n || p) <= ln 1/alpha}."""
    phat = k / n
    level = math.log(1 / alpha) / n

    def solve(lo: float, hi: float, inside_at_lo: bool) -> float:
        for _ in range(100):
            mid = (lo + hi) / 2
            inside = _kl(phat, mid) <= level
            if inside == inside_at_lo:
                lo = mid
            else:
                hi = mid
        return lo if inside_at_lo else hi

    lower = 0.0 if k == 0 else solve(phat, 0.0, True)  # walk down from phat until outside
    upper = 1.0 if k == n else solve(phat, 1.0, True)
    return lower, upper


@dataclass(frozen=True)
class AuditResult:
    epsilon: float  # the stated epsilon
    empirical: float  # point estimate: max |ln(P(E|D)/P(E|D'))| over events with >= POINT_MASS under both
    lower_bound: float  # lower confidence bound on the privacy loss (1 - ALPHA)
    worst_event: str
    events: int
    runs: int

    @property
    def passed(self) -> bool:
        return self.lower_bound <= self.epsilon


def _events(values: set[Outcome]) -> list[tuple[str, Callable[[Outcome], bool]]]:
    ints = sorted(v for v in values if isinstance(v, int))
    events: list[tuple[str, Callable[[Outcome], bool]]] = [("absent", lambda o: o is None)]
    for v in ints:
        events.append((f"= {v}", lambda o, v=v: o == v))
        events.append((f">= {v}", lambda o, v=v: o is not None and o >= v))
        events.append((f"<= {v}", lambda o, v=v: o is not None and o <= v))
    return events


def audit(samples_d: Sequence[Outcome], samples_d2: Sequence[Outcome], epsilon: float, alpha: float = ALPHA) -> AuditResult:
    """Privacy-loss estimate and lower confidence bound from outputs of the affected cell under D and D'."""
    n1, n2 = len(samples_d), len(samples_d2)
    c1, c2 = Counter(samples_d), Counter(samples_d2)
    candidates = []
    for name, hit in _events(set(c1) | set(c2)):
        k1 = sum(c for o, c in c1.items() if hit(o))
        k2 = sum(c for o, c in c2.items() if hit(o))
        if max(k1, k2) >= MIN_MASS:
            candidates.append((name, k1, k2))
    intervals = 4 * max(len(candidates), 1)  # two bounds for each of two ratios per event
    a = alpha / intervals
    empirical, lower, worst = 0.0, -math.inf, ""
    for name, k1, k2 in candidates:
        lo1, hi1 = chernoff_bounds(k1, n1, a)
        lo2, hi2 = chernoff_bounds(k2, n2, a)
        for lo, hi in ((lo1, hi2), (lo2, hi1)):
            bound = math.inf if hi == 0 and lo > 0 else (math.log(lo / hi) if lo > 0 else -math.inf)
            if bound > lower:
                lower, worst = bound, name
        if min(k1 / n1, k2 / n2) >= POINT_MASS:
            empirical = max(empirical, abs(math.log((k1 / n1) / (k2 / n2))))
        elif (k1 == 0) != (k2 == 0):
            empirical = math.inf
    return AuditResult(epsilon, empirical, lower, worst, len(candidates), min(n1, n2))


# ---------------------------------------------------------------- mechanisms under audit


def cell_samples(mechanism: Callable[[list[int]], list[Outcome]], counts: list[int], cell: int, runs: int) -> list[Outcome]:
    """The affected cell's output over `runs` independent runs (one call on the runs-fold concatenation)."""
    out = mechanism(counts * runs)
    width = len(counts)
    return [out[r * width + cell] for r in range(runs)]


def real_mechanism(epsilon: Fraction) -> Callable[[list[int]], list[Outcome]]:
    """aggregator.privacy.release_counts, as the release uses it (full cell set, calibrated scale)."""
    return lambda counts: release_counts(counts, epsilon)[0]


def opendp_laplace(scale: float) -> Callable[[list[int]], list[Outcome]]:
    import opendp.prelude as dp

    dp.enable_features("contrib")
    m = dp.m.make_laplace(dp.vector_domain(dp.atom_domain(T=int)), dp.l1_distance(T=int), scale=scale)
    return lambda counts: list(m(list(counts)))


def half_scale_mechanism(epsilon: Fraction) -> Callable[[list[int]], list[Outcome]]:
    """BROKEN: OpenDP discrete Laplace at half the calibrated scale (true loss 2 epsilon)."""
    _, scale = calibrated_measurement(epsilon)
    return opendp_laplace(scale / 2)


def nonempty_cells_mechanism(epsilon: Fraction) -> Callable[[list[int]], list[Outcome]]:
    """BROKEN: correct noise, but only cells that are non-empty in the data are released (None = not released)."""
    real = real_mechanism(epsilon)

    def release(counts: list[int]) -> list[Outcome]:
        noisy = real(counts)
        return [v if c > 0 else None for v, c in zip(noisy, counts)]

    return release


# ---------------------------------------------------------------- the audit, fast version

RUNS = 30_000  # per neighbour; ~0.7 s of OpenDP sampling each
# Neighbours: the audited cell holds 0 people in D and 1 in D' (the other cells of a marginal get independent noise
# and do not change between D and D', so a one-cell vector is the affected cell's whole story).
D, D2 = [0], [1]


@pytest.mark.parametrize("epsilon", [Fraction(1), Fraction(1, 4)])
def test_release_counts_passes_the_audit(epsilon: Fraction) -> None:
    mech = real_mechanism(epsilon)
    result = audit(cell_samples(mech, D, 0, RUNS), cell_samples(mech, D2, 0, RUNS), float(epsilon))
    assert result.events > 5
    assert result.passed, result
    # The point estimate sits near epsilon (the discrete Laplace is tight on every tail event), not far below:
    # a mechanism adding far more noise than claimed would be wasteful and would show here.
    assert result.empirical > 0.7 * float(epsilon), result


@pytest.mark.parametrize("epsilon", [Fraction(1), Fraction(1, 4)])
def test_audit_detects_half_the_noise_scale(epsilon: Fraction) -> None:
    mech = half_scale_mechanism(epsilon)
    result = audit(cell_samples(mech, D, 0, RUNS), cell_samples(mech, D2, 0, RUNS), float(epsilon))
    assert not result.passed, result
    assert result.lower_bound > 1.5 * float(epsilon), result


def test_audit_detects_a_cell_set_chosen_from_the_data() -> None:
    epsilon = Fraction(1)
    d, d2 = [4, 0, 7], [4, 1, 7]  # the person moves cell 1 from empty to non-empty
    mech = nonempty_cells_mechanism(epsilon)
    runs = 2_000
    result = audit(cell_samples(mech, d, 1, runs), cell_samples(mech, d2, 1, runs), float(epsilon))
    assert not result.passed, result
    assert result.worst_event == "absent"
    assert result.empirical == math.inf
    # The real mechanism on the very same neighbours releases the empty cell too and passes.
    real = real_mechanism(epsilon)
    ok = audit(cell_samples(real, D, 0, RUNS), cell_samples(real, D2, 0, RUNS), float(epsilon))
    assert ok.passed, ok


def test_chernoff_bounds_cover_the_estimate() -> None:
    lo, hi = chernoff_bounds(500, 1000, 1e-3)
    assert lo < 0.5 < hi and hi - lo < 0.15
    assert chernoff_bounds(0, 100, 1e-3)[0] == 0.0 and chernoff_bounds(100, 100, 1e-3)[1] == 1.0


# ---------------------------------------------------------------- the noise has the stated distribution

# n = 60,000 draws at epsilon 1/2 (scale 2, variance ~7.84). The sample variance's standard error is
# sqrt((mu4 - sigma^4) / n), about 0.92% of the variance here. The acceptance band is +-6 standard errors
# (+-5.5%), so a correct mechanism is refused with probability < 1e-8 (normal approximation). A scale 30% off
# (x0.7 -> variance -53%, x1.3 -> +66%) lies more than 30 of its own standard errors outside the band: the check
# refuses it with probability > 1 - 1e-9. test_variance_check_has_power states these numbers as asserts.
VAR_N = 60_000
VAR_EPSILON = Fraction(1, 2)
BAND_SE = 6.0


def _moments(scale: float) -> tuple[float, float]:
    """(variance, fourth central moment) of OpenDP's discrete Laplace, P(k) ~ exp(-|k|/scale)."""
    a = math.exp(-1.0 / scale)
    norm = (1 - a) / (1 + a)
    kmax = int(60 * scale) + 50
    var = sum(2 * norm * a**k * k**2 for k in range(1, kmax))
    mu4 = sum(2 * norm * a**k * k**4 for k in range(1, kmax))
    return var, mu4


def variance_band(scale: float, n: int) -> tuple[float, float, float]:
    """(expected variance, lower, upper) acceptance band for the sample variance of n draws."""
    expected = discrete_laplace_variance(scale)
    var, mu4 = _moments(scale)
    se = math.sqrt((mu4 - var**2) / n)
    return expected, expected - BAND_SE * se, expected + BAND_SE * se


def noise_accepted(samples: list[int], scale: float) -> tuple[bool, str]:
    n = len(samples)
    mean = sum(samples) / n
    var = sum((x - mean) ** 2 for x in samples) / (n - 1)
    expected, low, high = variance_band(scale, n)
    mean_ok = abs(mean) <= BAND_SE * math.sqrt(expected / n)
    return mean_ok and low <= var <= high, f"mean {mean:.4f}, variance {var:.3f}, band [{low:.3f}, {high:.3f}]"


def test_variance_formula_matches_the_sum() -> None:
    for scale in (0.5, 1.0, 2.0, 7.0):
        assert discrete_laplace_variance(scale) == pytest.approx(_moments(scale)[0], rel=1e-9)


def test_variance_check_has_power() -> None:
    _, scale = calibrated_measurement(VAR_EPSILON)
    expected, low, high = variance_band(scale, VAR_N)
    assert (high - low) / 2 / expected < 0.06
    for factor in (0.7, 1.3):
        wrong = discrete_laplace_variance(scale * factor)
        var, mu4 = _moments(scale * factor)
        se_wrong = math.sqrt((mu4 - var**2) / VAR_N)
        distance = (low - wrong) if wrong < low else (wrong - high)
        assert distance / se_wrong > 30, (factor, distance / se_wrong)


def test_released_noise_has_the_stated_distribution() -> None:
    noisy, scale = release_counts([0] * VAR_N, VAR_EPSILON)
    ok, detail = noise_accepted(noisy, scale)
    assert ok, detail


@pytest.mark.parametrize("factor", [0.7, 1.3])
def test_noise_check_refuses_a_scale_30_percent_off(factor: float) -> None:
    _, scale = calibrated_measurement(VAR_EPSILON)
    noisy = opendp_laplace(scale * factor)([0] * VAR_N)
    ok, detail = noise_accepted(noisy, scale)
    assert not ok, detail


# ---------------------------------------------------------------- release.noisy_marginals end to end


def _people_connection(tmp_path: Path, rows: list[dict[str, str]]):
    from aggregator.organisation.home import OrgConfig
    from aggregator.organisation.release import build_people
    from aggregator.organisation.validate import validate_export

    from tests.orgfactory import write_export

    export, mapping = write_export(tmp_path, rows)
    day = dt.date(2026, 1, 15)
    report, con = validate_export(export, mapping, export_date=day)
    assert report.valid
    org = OrgConfig(id="shelter-audit", kind="non_investigative", reporter_type="shelter", cap="1", home=str(tmp_path))
    build_people(con, org, 2025, day, b"k" * 32)
    return con


def test_noisy_marginals_cell_set_is_the_codelist_product(tmp_path: Path) -> None:
    from aggregator.contract.codelists import codes
    from aggregator.privacy.workload import EQUAL_WORKLOAD
    from aggregator.organisation.release import noisy_marginals

    from tests.orgfactory import row

    rows = [row(i, form="seksuele uitbuiting", consent="nee", consent_date="") for i in range(12)]
    con = _people_connection(tmp_path, rows)
    marginals = noisy_marginals(con, Fraction(1), EQUAL_WORKLOAD)
    assert [tuple(m["dimensions"]) for m in marginals] == list(EQUAL_WORKLOAD)
    for m in marginals:
        expected = [list(k) for k in product(*(codes(d) for d in m["dimensions"]))]
        assert [c["key"] for c in m["cells"]] == expected
    form = marginals[0]
    assert [c["key"][0] for c in form["cells"]] == codes("form")  # every form, though the data has only 'sexual'
    con.close()


def test_noisy_marginals_never_exact_and_unbiased(tmp_path: Path) -> None:
    from aggregator.organisation.release import noisy_marginals

    from tests.orgfactory import row

    rows = [row(i, form="seksuele uitbuiting", consent="nee", consent_date="") for i in range(12)]
    rows += [row(100 + i, form="arbeidsuitbuiting", consent="nee", consent_date="") for i in range(5)]
    con = _people_connection(tmp_path, rows)
    workload = (("form",), ("form", "age_band"))
    exact = {}
    for dims in workload:
        cols = ", ".join(dims)
        for *key, n in con.execute(f"SELECT {cols}, count(*) FROM people WHERE basis IS NULL GROUP BY ALL").fetchall():
            exact[(dims, tuple(key))] = n
    assert exact[(("form",), ("sexual",))] == 12
    releases = 100
    sums: dict = {}
    hits: Counter = Counter()
    cells_per_release = 0
    all_exact = 0
    scales = {}
    for _ in range(releases):
        ms = noisy_marginals(con, Fraction(1), workload)
        cells_per_release = 0
        every = True
        for m in ms:
            dims = tuple(m["dimensions"])
            scales[dims] = m["scale"]
            for c in m["cells"]:
                key = (dims, tuple(c["key"]))
                truth = exact.get(key, 0)
                sums[key] = sums.get(key, 0) + c["count"]
                hits[dims] += c["count"] == truth
                every &= c["count"] == truth
                cells_per_release += 1
        all_exact += every
    con.close()
    assert all_exact == 0  # no release ever carried the exact table
    for key, total in sums.items():
        dims = key[0]
        se = math.sqrt(discrete_laplace_variance(scales[dims]) / releases)
        assert abs(total / releases - exact.get(key, 0)) <= 5.5 * se, key
    for dims, hit in hits.items():
        a = math.exp(-1 / scales[dims])
        p_zero = (1 - a) / (1 + a)  # P(noise == 0)
        n_cells = releases * sum(1 for k in sums if k[0] == dims)
        assert hit / n_cells <= p_zero + 6 * math.sqrt(p_zero * (1 - p_zero) / n_cells), dims
