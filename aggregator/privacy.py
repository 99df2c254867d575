"""Privacy arithmetic: exact epsilon, the OpenDP discrete Laplace measurement, its error, and the local ledger.

Privacy unit: one person at one organisation in one period. Each person adds one to exactly one cell of every
marginal, so a marginal has L1 sensitivity 1; k marginals with epsilons e_i compose to sum(e_i) (pure DP).
"""

from __future__ import annotations

import datetime as dt
import json
import math
from dataclasses import asdict, dataclass
from decimal import Decimal, InvalidOperation, localcontext
from fractions import Fraction
from pathlib import Path

from .errors import BudgetExceeded, ConfigError, UsageError

DEFAULT_CAP = Fraction(1)
MAX_EPSILON = Fraction(100)
MIN_EPSILON = Fraction(1, 10**6)
PRIVACY_UNIT = "one person at one organisation in one reporting period (calendar year)"

# The naive workload: every one-way marginal plus form x age band and form x nationality group, equal split.
EQUAL_WORKLOAD: tuple[tuple[str, ...], ...] = (
    ("form",),
    ("age_band",),
    ("gender",),
    ("nationality_group",),
    ("province",),
    ("form", "age_band"),
    ("form", "nationality_group"),
)
# The workload-aware release: the two tables that answer what the national monitor publishes, plus cheap one-way
# gender and province tables so those breakdowns stay available.
MONITOR_WORKLOAD: tuple[tuple[str, ...], ...] = (
    ("form", "age_band"),
    ("form", "nationality_group"),
    ("gender",),
    ("province",),
)
# Only what the monitor publishes: the most accurate release for those figures, but no gender or province breakdown
# of the people without a lawful basis.
PUBLISHED_WORKLOAD: tuple[tuple[str, ...], ...] = MONITOR_WORKLOAD[:2]
WORKLOADS = {"monitor": MONITOR_WORKLOAD, "published": PUBLISHED_WORKLOAD, "equal": EQUAL_WORKLOAD}
DEFAULT_WORKLOAD_NAME = "monitor"
DEFAULT_WORKLOAD = MONITOR_WORKLOAD


@dataclass(frozen=True)
class Query:
    """A table the national monitor publishes: counts grouped by `by`, optionally restricted to some codes."""

    name: str
    by: tuple[str, ...]
    where: tuple[tuple[str, tuple[str, ...]], ...] = ()
    weight: float = 1.0


MINORS = ("under_15", "15_17")
PUBLISHED_QUERIES: tuple[Query, ...] = (
    Query("total", ()),
    Query("form", ("form",)),
    Query("age_band", ("age_band",)),
    Query("minors_by_form", ("form",), (("age_band", MINORS),)),
    Query("nationality_group", ("nationality_group",)),
    # Gender and province are kept available but matter less to the monitor (a plausible choice, not a figure).
    Query("gender", ("gender",), weight=0.1),
    Query("province", ("province",), weight=0.1),
)


def query_cost(query: Query, marginal: tuple[str, ...]) -> tuple[int, int] | None:
    """(output cells, marginal cells summed into each) when `marginal` can answer `query`, else None."""
    from .codelists import codes

    needed = set(query.by) | {d for d, _ in query.where}
    if not needed <= set(marginal):
        return None
    out_cells = 1
    for d in query.by:
        out_cells *= len(codes(d))
    summed = 1
    restricted = dict(query.where)
    for d in marginal:
        if d in query.by:
            continue
        summed *= len(restricted[d]) if d in restricted else len(codes(d))
    return out_cells, summed


def split_epsilon(
    epsilon: Fraction,
    workload: tuple[tuple[str, ...], ...] = DEFAULT_WORKLOAD,
    queries: tuple[Query, ...] = PUBLISHED_QUERIES,
) -> list[Fraction]:
    """Exact epsilon per marginal, minimising the summed noise variance of the published queries.

    Each query is answered by the covering marginal where it is cheapest; a marginal that answers queries of total
    weighted cost A_m gets epsilon proportional to A_m^(1/3) (Lagrange optimum of sum A_m / e_m^2 with sum e_m = eps).
    The total is left out of that assignment: every marginal answers it, and the national WLS pools them all.
    The equal workload keeps its equal split. Parts are exact fractions that add up to epsilon exactly.
    """
    if workload == EQUAL_WORKLOAD or len(workload) == 1:
        return [epsilon / len(workload)] * len(workload)
    shares = [1.0] * len(workload)
    for _ in range(20):
        cost = [0.0] * len(workload)
        for q in queries:
            if not q.by and not q.where:
                continue
            options = [(i, query_cost(q, m)) for i, m in enumerate(workload)]
            options = [(i, c) for i, c in options if c is not None]
            if not options:
                continue
            i, (cells, summed) = min(options, key=lambda o: o[1][1] / shares[o[0]] ** 2)
            cost[i] += q.weight * cells * summed
        cost = [c if c > 0 else 1e-3 for c in cost]  # a marginal nobody asks for still gets a sliver
        roots = [c ** (1 / 3) for c in cost]
        new = [r / sum(roots) for r in roots]
        if max(abs(a - b) for a, b in zip(new, shares)) < 1e-9:
            break
        shares = new
    # Whole thousandths of epsilon (largest remainder), so the parts read well and add up exactly.
    raw = [sh * 1000 for sh in shares]
    units = [max(1, int(r)) for r in raw]
    by_remainder = sorted(range(len(raw)), key=lambda i: raw[i] - int(raw[i]), reverse=True)
    for i in by_remainder[: 1000 - sum(units)]:
        units[i] += 1
    while sum(units) > 1000:
        units[units.index(max(units))] -= 1
    return [epsilon * Fraction(u, 1000) for u in units]


def expected_query_errors(
    epsilon: Fraction, workload: tuple[tuple[str, ...], ...] = DEFAULT_WORKLOAD, queries: tuple[Query, ...] = PUBLISHED_QUERIES
) -> list[dict]:
    """Expected 95% error that one organisation's noise adds to each published national figure."""
    parts = split_epsilon(epsilon, workload, queries)
    variances = [discrete_laplace_variance(1 / float(e)) for e in parts]
    out = []
    for q in queries:
        best = None
        for m, v in zip(workload, variances):
            c = query_cost(q, m)
            if c is not None and (best is None or c[1] * v < best[1]):
                best = (m, c[1] * v)
        if best is not None:
            out.append({"query": q.name, "from": list(best[0]), "variance": best[1], "error_95": 1.96 * math.sqrt(best[1])})
    return out


def parse_epsilon(value: str | int | Fraction | Decimal) -> Fraction:
    """Exact epsilon from text ("1", "0.5", "1/7"); NaN, infinity, zero, negatives and absurd values are refused."""
    if isinstance(value, float):
        raise UsageError("epsilon must be given as text or an exact number, not a float")
    text = str(value).strip()
    try:
        if "/" in text:
            number = Fraction(text)
        else:
            dec = Decimal(text)
            if not dec.is_finite():
                raise UsageError(f"epsilon must be a finite number, not {text!r}")
            number = Fraction(dec)
    except (InvalidOperation, ValueError, ZeroDivisionError):
        raise UsageError(f"epsilon must be a positive number such as 1.0 or 1/2, not {text[:40]!r}") from None
    if number <= 0:
        raise UsageError("epsilon must be greater than zero")
    if number < MIN_EPSILON:
        raise UsageError(f"epsilon below {MIN_EPSILON} adds so much noise that the release is useless; refused")
    if number > MAX_EPSILON:
        raise UsageError(f"epsilon above {MAX_EPSILON} gives no meaningful protection; refused")
    return number


def exact_text(value: Fraction) -> str:
    """Fraction as the bundle's exact text: "1", "1/7", "3/10"."""
    return str(value)


def decimal_text(value: Fraction, places: int = 6) -> str:
    """Decimal rendering of an exact fraction for people (rounded half-even at `places`), never through a float."""
    with localcontext() as ctx:
        ctx.prec = 50
        number = Decimal(value.numerator) / Decimal(value.denominator)
        return format(number.quantize(Decimal(1).scaleb(-places)).normalize(), "f")


# ------------------------------------------------------------ the mechanism


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


# ------------------------------------------------------------ the local ledger


@dataclass(frozen=True)
class LedgerEntry:
    period: int
    sequence: int
    epsilon: str
    digest: str
    created_at: str
    records: int
    marginals: int

    def as_dict(self) -> dict:
        return asdict(self)


class Ledger:
    """The organisation's own record of what it released: a JSON-lines file rewritten atomically."""

    def __init__(self, path: Path, cap: Fraction = DEFAULT_CAP) -> None:
        self.path = path
        self.cap = cap

    def entries(self) -> list[LedgerEntry]:
        try:
            lines = self.path.read_text(encoding="utf-8").splitlines()
        except FileNotFoundError:
            return []
        try:
            return [LedgerEntry(**json.loads(line)) for line in lines if line.strip()]
        except (ValueError, TypeError):
            raise ConfigError(f"local ledger {self.path} is damaged; restore it from backup before releasing") from None

    def spent(self, period: int) -> Fraction:
        return sum((Fraction(e.epsilon) for e in self.entries() if e.period == period), Fraction(0))

    def remaining(self, period: int) -> Fraction:
        return self.cap - self.spent(period)

    def next_sequence(self, period: int) -> int:
        return max((e.sequence for e in self.entries() if e.period == period), default=0) + 1

    def check(self, period: int, epsilon: Fraction) -> None:
        """Refuse a release that would take the period past the cap."""
        spent = self.spent(period)
        if spent + epsilon > self.cap:
            raise BudgetExceeded(
                f"releasing epsilon {decimal_text(epsilon)} for {period} would exceed the cap of "
                f"{decimal_text(self.cap)}: already spent {decimal_text(spent)}, remaining "
                f"{decimal_text(self.cap - spent)}"
            )

    def append(self, entry: LedgerEntry) -> None:
        from .bundle import atomic_write

        self.check(entry.period, Fraction(entry.epsilon))
        lines = [json.dumps(e.as_dict(), sort_keys=True) for e in self.entries()]
        lines.append(json.dumps(entry.as_dict(), sort_keys=True))
        atomic_write(self.path, ("\n".join(lines) + "\n").encode("utf-8"), mode=0o600)


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
