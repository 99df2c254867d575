"""Workloads (which marginals a release holds) and the split of one epsilon over them."""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

from ..contract.codelists import MINOR_BANDS
from ..errors import UsageError
from .intervals import interval
from .mechanism import discrete_laplace_variance

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


PUBLISHED_QUERIES: tuple[Query, ...] = (
    Query("total", ()),
    Query("form", ("form",)),
    Query("age_band", ("age_band",)),
    Query("minors_by_form", ("form",), (("age_band", MINOR_BANDS),)),
    Query("nationality_group", ("nationality_group",)),
    # Gender and province are kept available but matter less to the monitor (a plausible choice, not a figure).
    Query("gender", ("gender",), weight=0.1),
    Query("province", ("province",), weight=0.1),
)


def query_cost(query: Query, marginal: tuple[str, ...]) -> tuple[int, int] | None:
    """(output cells, marginal cells summed into each) when `marginal` can answer `query`, else None."""
    from ..contract.codelists import codes

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
            out.append({"query": q.name, "from": list(best[0]), "variance": best[1], "error_95": interval(0.0, best[1])[2]})
    return out


def workload_named(name: str) -> tuple[tuple[str, ...], ...]:
    try:
        return WORKLOADS[name]
    except KeyError:
        raise UsageError(f"workload must be one of: {', '.join(WORKLOADS)}", "workload") from None
