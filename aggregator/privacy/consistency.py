"""One consistent, non-negative set of national noisy estimates from all released marginals.

Releases that share a workload (the same set of marginals) are summed per marginal (noise variances add). Within
each group, weighted least squares over the full five-dimensional contingency table (weights 1 / cell variance)
combines every marginal into one estimate, so overlapping tables agree (form from form x age band and from
form x nationality group, the total from every table). Groups add up. Only tables the releases determine are
estimated (a table is estimable when its cells lie in the row space of the measurements).

Non-negativity is post-processing, done top-down through a fixed hierarchy so that every published margin adds up
exactly: total -> form -> form x age band and form x nationality group; total -> gender; total -> province.
Each step projects onto {x >= 0, sum x = parent} and rounds with largest remainders. Intervals come from the WLS
variance (unbiased before the projection) and are cut at zero people without a lawful basis, never narrowed
otherwise; the raw sums stay available next to these figures.
"""

from __future__ import annotations

import math
from functools import lru_cache
from dataclasses import dataclass, field
from itertools import product

from ..contract.codelists import codes, DIMENSIONS

DIMS = tuple(DIMENSIONS)  # axis order of the joint table
SHAPE = tuple(len(codes(d)) for d in DIMS)
# Parent of each table in the non-negativity hierarchy; () is the total.
HIERARCHY: dict[tuple[str, ...], tuple[str, ...] | None] = {
    (): None,
    ("form",): (),
    ("form", "age_band"): ("form",),
    ("form", "nationality_group"): ("form",),
    ("gender",): (),
    ("province",): (),
}
# One-way tables read off a finer table of the hierarchy.
DERIVED: dict[tuple[str, ...], tuple[str, ...]] = {
    ("age_band",): ("form", "age_band"),
    ("nationality_group",): ("form", "nationality_group"),
}


@dataclass
class ConsistentTable:
    """Noisy part of one national table: WLS estimate, its variance, and the non-negative integer figure."""

    dims: tuple[str, ...]
    keys: list[tuple[str, ...]]
    wls: list[float]
    variance: list[float]
    post: list[int] = field(default_factory=list)

    def by_key(self) -> dict[tuple[str, ...], tuple[float, float, int]]:
        return {k: (w, v, p) for k, w, v, p in zip(self.keys, self.wls, self.variance, self.post)}


def _axes(dims: tuple[str, ...]) -> tuple[int, ...]:
    return tuple(i for i, d in enumerate(DIMS) if d not in dims)


def _measurement_matrix(marginals: list[tuple[tuple[str, ...], float]]):
    """Rows: every cell of every marginal (codelist order); columns: joint cells; each row weighted by 1/sd."""
    import numpy as np

    blocks = [_indicator(dims) / math.sqrt(variance) for dims, variance in marginals]
    return np.vstack(blocks)


def _group_estimates(marginals: list[tuple[tuple[str, ...], float, list[float]]]) -> dict[tuple[str, ...], tuple]:
    """WLS estimates and variances of every estimable hierarchy table for one group of same-workload releases."""
    import numpy as np

    aw = _measurement_matrix([(d, v) for d, v, _ in marginals])
    y = np.concatenate([np.asarray(cells, dtype=float) / math.sqrt(v) for _, v, cells in marginals])
    # pinv(A) = A^T pinv(A A^T): a small measurements x measurements problem instead of an SVD over every joint cell.
    pinv = aw.T @ np.linalg.pinv(aw @ aw.T, rcond=1e-10, hermitian=True)  # joint cells x measurements
    x = pinv @ y
    out = {}
    for dims in list(HIERARCHY) + list(DERIVED):
        indicator = _indicator(dims)
        gain = indicator @ pinv  # table cells x measurements: the estimate is gain @ y
        # Estimable iff projecting the table's aggregation rows onto the measurements' row space changes nothing.
        if not np.allclose(gain @ aw, indicator, atol=1e-6):
            continue
        out[dims] = (indicator @ x, (gain**2).sum(axis=1))
    return out


@lru_cache(maxsize=None)
def _indicator(dims: tuple[str, ...]):
    """Aggregation matrix of a table: one row per table cell, one column per joint cell."""
    import numpy as np

    idx = [DIMS.index(d) for d in dims]
    cells = list(product(*(range(SHAPE[i]) for i in idx)))
    grid = np.indices(SHAPE).reshape(len(SHAPE), -1)
    out = np.zeros((len(cells), grid.shape[1]))
    for r, key in enumerate(cells):
        hit = np.ones(grid.shape[1], dtype=bool)
        for axis, value in zip(idx, key):
            hit &= grid[axis] == value
        out[r, hit] = 1.0
    return out


def project_to_simplex(values: list[float], total: int) -> list[int]:
    """Closest non-negative vector summing to `total` (Euclidean), rounded to integers by largest remainder."""
    n = len(values)
    if total <= 0 or n == 0:
        return [0] * n
    ordered = sorted(values, reverse=True)
    running, theta = 0.0, 0.0
    for i, v in enumerate(ordered, start=1):
        running += v
        t = (running - total) / i
        if v - t > 0:
            theta = t
    projected = [max(v - theta, 0.0) for v in values]
    floors = [math.floor(v) for v in projected]
    short = total - sum(floors)
    order = sorted(range(n), key=lambda i: projected[i] - floors[i], reverse=True)
    for i in order[:short]:
        floors[i] += 1
    return floors


def consistent_tables(con, period: int) -> dict[tuple[str, ...], ConsistentTable]:
    """Consistent, non-negative national noisy tables for one period from the store's current releases."""
    import numpy as np

    from ..coordinator.store import CURRENT_BUNDLES_SQL

    params = {"period": period}
    workloads = "WITH " + CURRENT_BUNDLES_SQL + """,
        signature AS (
            SELECT digest, list(array_to_string(dimensions, '*') ORDER BY array_to_string(dimensions, '*')) AS workload
            FROM marginals JOIN live USING (digest) GROUP BY digest
        )
    """
    variances = con.execute(
        workloads + """
        SELECT s.workload, m.dimensions, sum(m.variance)
        FROM marginals AS m JOIN signature AS s USING (digest)
        GROUP BY ALL
        """,
        params,
    ).fetchall()
    cells = con.execute(
        workloads + """
        SELECT s.workload, m.dimensions, c.form, c.age_band, c.gender, c.nationality_group, c.province, sum(c.count)
        FROM noisy_cells AS c
        JOIN marginals AS m USING (digest, marginal_index)
        JOIN signature AS s USING (digest)
        GROUP BY ALL
        """,
        params,
    ).fetchall()
    # Per workload group and marginal: summed cell variance and summed noisy counts in codelist order.
    sums: dict[tuple[str, tuple[str, ...]], dict[tuple[str, ...], float]] = {}
    for workload, dims, *key, count in cells:
        dims = tuple(dims)
        sums.setdefault((str(workload), dims), {})[tuple(key[DIMS.index(d)] for d in dims)] = float(count)
    groups: dict[str, dict[tuple[str, ...], list]] = {}
    for workload, dims, variance in variances:
        dims = tuple(dims)
        found = sums.get((str(workload), dims), {})
        ordered = [found.get(k, 0.0) for k in product(*(codes(d) for d in dims))]
        groups.setdefault(str(workload), {})[dims] = [float(variance), ordered]

    totals: dict[tuple[str, ...], list] = {}
    missing: set[tuple[str, ...]] = set()
    wanted = list(HIERARCHY) + list(DERIVED)
    for marginals in groups.values():
        ests = _group_estimates([(d, v, cells) for d, (v, cells) in marginals.items()])
        for dims in wanted:
            if dims not in ests:
                missing.add(dims)
                continue
            est, var = ests[dims]
            if dims in totals:
                totals[dims][0] = totals[dims][0] + est
                totals[dims][1] = totals[dims][1] + var
            else:
                totals[dims] = [np.array(est), np.array(var)]

    tables: dict[tuple[str, ...], ConsistentTable] = {}
    for dims in wanted:
        if dims in missing or dims not in totals:
            continue
        keys = list(product(*(codes(d) for d in dims))) if dims else [()]
        tables[dims] = ConsistentTable(dims, keys, [float(v) for v in totals[dims][0]], [float(v) for v in totals[dims][1]])
    _post_process(tables)
    return tables


def _post_process(tables: dict[tuple[str, ...], ConsistentTable]) -> None:
    """Top-down non-negative integer figures whose margins add up exactly."""
    if () not in tables:
        tables.clear()
        return
    total = tables[()]
    total.post = [max(0, round(total.wls[0]))]
    for dims, parent in HIERARCHY.items():
        if parent is None or dims not in tables:
            continue
        if parent not in tables or not tables[parent].post:
            del tables[dims]
            continue
        table, up = tables[dims], tables[parent]
        post = [0] * len(table.keys)
        for pkey, pvalue in zip(up.keys, up.post):
            members = [i for i, k in enumerate(table.keys) if k[: len(parent)] == pkey]
            for i, v in zip(members, project_to_simplex([table.wls[i] for i in members], pvalue)):
                post[i] = v
        table.post = post
    for dims, source in DERIVED.items():
        if dims not in tables:
            continue
        if source not in tables or not tables[source].post:
            del tables[dims]
            continue
        table, src = tables[dims], tables[source]
        axis = source.index(dims[0])
        sums: dict[tuple[str, ...], int] = {}
        for key, value in zip(src.keys, src.post):
            sums[(key[axis],)] = sums.get((key[axis],), 0) + value
        table.post = [sums.get(k, 0) for k in table.keys]
