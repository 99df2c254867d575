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

The joint release (`consistent_release`) goes through the same WLS: its total and each planned marginal are the
measurements, each cell with its own variance (noise plus collisions: coordinator/joint.py), so the fitted marginals
add up to the one fitted total; the figures are then integers, top-down from the total, never below the people
known individually in a cell, and each table keeps its fitted covariance (for sums of cells).
"""

from __future__ import annotations

import math
from functools import lru_cache
from dataclasses import dataclass, field
from itertools import product
from typing import Sequence

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
    covariance: list[list[float]] | None = None  # fitted covariance of the cells (consistent_release keeps it)
    known: list[int] | None = None  # people known individually per cell, the floor of `post` (consistent_release)
    # linkage bounds of a joint release (coordinator/joint.py: joint_tables): the estimated people contributed under
    # local pseudonyms per cell, and the same table fitted from the distinct pseudonyms; the cells of this table then
    # hold the point estimate between the bounds
    unlinked: "ConsistentTable | None" = None
    linked: "ConsistentTable | None" = None

    def by_key(self) -> dict[tuple[str, ...], tuple[float, float, int]]:
        return {k: (w, v, p) for k, w, v, p in zip(self.keys, self.wls, self.variance, self.post)}

    def sum_of(self, keys: list[tuple[str, ...]]) -> tuple[float, float, int]:
        """WLS estimate, variance and integer figure of a sum of cells; the variance from the fitted covariance
        when the table has one (else the cells' variances add)."""
        index = [self.keys.index(k) for k in keys]
        if self.covariance is None:
            variance = math.fsum(self.variance[i] for i in index)
        else:
            variance = math.fsum(self.covariance[i][j] for i in index for j in index)
        return math.fsum(self.wls[i] for i in index), max(variance, 0.0), sum(self.post[i] for i in index)


def _axes(dims: tuple[str, ...]) -> tuple[int, ...]:
    return tuple(i for i, d in enumerate(DIMS) if d not in dims)


Variance = float | Sequence[float]  # one variance for every cell of a marginal, or one per cell (codelist order)


def _sd(dims: tuple[str, ...], variance: Variance):
    """Standard deviation per cell of a marginal (codelist order of `dims`)."""
    import numpy as np

    return np.sqrt(np.broadcast_to(np.asarray(variance, dtype=float), (_indicator(dims).shape[0],)))


def _measurement_matrix(marginals: list[tuple[tuple[str, ...], Variance]]):
    """Rows: every cell of every marginal (codelist order); columns: joint cells; each row weighted by 1/sd."""
    import numpy as np

    blocks = [_indicator(dims) / _sd(dims, variance)[:, None] for dims, variance in marginals]
    return np.vstack(blocks)


def _group_estimates(marginals: list[tuple[tuple[str, ...], Variance, list[float]]],
                     tables: Sequence[tuple[str, ...]] | None = None, *,
                     covariance: bool = False) -> dict[tuple[str, ...], tuple]:
    """WLS estimates and variances of every estimable table for one group of measurements (same-workload releases,
    or the joint release): `tables` to estimate (default: the hierarchy's), each as (estimate, variance) or, with
    `covariance`, (estimate, variance, covariance matrix)."""
    import numpy as np

    aw = _measurement_matrix([(d, v) for d, v, _ in marginals])
    y = np.concatenate([np.asarray(cells, dtype=float) / _sd(d, v) for d, v, cells in marginals])
    # pinv(A) = A^T pinv(A A^T): a small measurements x measurements problem instead of an SVD over every joint cell.
    pinv = aw.T @ np.linalg.pinv(aw @ aw.T, rcond=1e-10, hermitian=True)  # joint cells x measurements
    x = pinv @ y
    out = {}
    for dims in (list(HIERARCHY) + list(DERIVED)) if tables is None else tables:
        indicator = _indicator(dims)
        gain = indicator @ pinv  # table cells x measurements: the estimate is gain @ y
        # Estimable iff projecting the table's aggregation rows onto the measurements' row space changes nothing.
        if not np.allclose(gain @ aw, indicator, atol=1e-6):
            continue
        # The weighted measurements have unit variance, so the estimate's covariance is gain @ gain.T.
        out[dims] = (indicator @ x, (gain**2).sum(axis=1)) + ((gain @ gain.T,) if covariance else ())
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
        tables[dims].post = _split_down(tables[dims], tables[parent])
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


def _split_down(table: ConsistentTable, up: ConsistentTable, known: Sequence[int] | None = None) -> list[int]:
    """Integer cells of `table` adding up exactly to each integer cell of its parent table `up` (whose dimensions it
    contains): per parent cell, the WLS cells projected onto the simplex and rounded by largest remainders; with
    `known`, each cell never below its floor (the projection is of the part above it)."""
    floor = list(known) if known is not None else [0] * len(table.keys)
    at = [table.dims.index(d) for d in up.dims]
    post = [0] * len(table.keys)
    for pkey, pvalue in zip(up.keys, up.post):
        members = [i for i, k in enumerate(table.keys) if tuple(k[a] for a in at) == pkey]
        base = sum(floor[i] for i in members)
        for i, v in zip(members, project_to_simplex([table.wls[i] - floor[i] for i in members], pvalue - base)):
            post[i] = floor[i] + v
    return post


def consistent_release(
    measured: dict[tuple[str, ...], tuple[Sequence[float], Sequence[float]]],
    known: dict[tuple[str, ...], Sequence[int]] | None = None,
) -> dict[tuple[str, ...], ConsistentTable]:
    """One release's own tables made to add up (the joint release): `measured` maps each table, the total () and
    every planned marginal, to (estimates, variances), one per cell in codelist order of the dimensions as given.

    The WLS fit is fitted_tables' (weights 1 / cell variance), so each fitted marginal adds up to the one fitted
    total; every table keeps its fitted covariance. Integer figures go top-down: the total rounded, then each table
    split down from its parent (the largest measured table whose dimensions it contains, else the total), never
    below `known` (people known individually per cell; a parent's known people must be its cells' sum, as records
    are)."""
    if () not in measured:
        raise ValueError("a release's tables are fitted to its total: measure the total ()")
    tables = fitted_tables(measured, list(measured))
    for dims, table in tables.items():
        table.known = [max(int(k), 0) for k in (known or {}).get(dims, [0] * len(table.keys))]
    return _integer_figures(tables)


def fitted_tables(measured: dict[tuple[str, ...], tuple[Sequence[float], Sequence[float]]],
                  tables: Sequence[tuple[str, ...]]) -> dict[tuple[str, ...], ConsistentTable]:
    """The weighted least squares fit (_group_estimates, weights 1 / cell variance) of independent measurements
    (table -> (estimates, variances), codelist order) to each of `tables` that they determine, with the fitted
    covariance of its cells; integer figures are the fitted values rounded (consistent_release splits them down)."""
    fitted = _group_estimates([(dims, variances, estimates) for dims, (estimates, variances) in measured.items()],
                              list(tables), covariance=True)
    out: dict[tuple[str, ...], ConsistentTable] = {}
    for dims in sorted(fitted, key=len):  # parents first
        estimate, variance, covariance = fitted[dims]
        out[dims] = ConsistentTable(dims, list(product(*(codes(d) for d in dims))), [float(v) for v in estimate],
                                    [float(v) for v in variance], [round(float(v)) for v in estimate],
                                    covariance=[[float(c) for c in row] for row in covariance])
    return out


def _integer_figures(tables: dict[tuple[str, ...], ConsistentTable]) -> dict[tuple[str, ...], ConsistentTable]:
    """Each table's `post`, top-down: the total rounded, then each table split down from its parent (the largest
    table whose dimensions it contains), never below its `known`."""
    done: dict[tuple[str, ...], ConsistentTable] = {}
    for dims in sorted(tables, key=len):  # parents first
        table = tables[dims]
        floor = table.known or [0] * len(table.keys)
        if dims:
            parent = max((p for p in done if set(p) < set(dims)), key=len)
            table.post = _split_down(table, done[parent], floor)
        else:
            table.post = [max(floor[0], round(table.wls[0]))]
        done[dims] = table
    return done


def shifted_release(tables: dict[tuple[str, ...], ConsistentTable], shifts: dict[tuple[str, ...], ConsistentTable],
                    factor: float) -> dict[tuple[str, ...], ConsistentTable]:
    """Consistent tables minus `factor` times a correction measured apart from them (the joint release's linkage
    correction, coordinator/joint.py), given per table as ConsistentTable. The corrections must add up across the
    tables as their cells do and be independent of the fit (different noise draws), so covariances add (a
    correction without a covariance has independent cells). Integer figures again top-down."""
    out = {}
    for dims, table in tables.items():
        shift = shifts[dims]
        extra = shift.covariance or [[v if i == j else 0.0 for j in range(len(shift.variance))]
                                     for i, v in enumerate(shift.variance)]
        covariance = None if table.covariance is None else [[c + factor * factor * e for c, e in zip(row, extra_row)]
                                                            for row, extra_row in zip(table.covariance, extra)]
        out[dims] = ConsistentTable(dims, table.keys, [w - factor * s for w, s in zip(table.wls, shift.wls)],
                                    [v + factor * factor * sv for v, sv in zip(table.variance, shift.variance)],
                                    covariance=covariance, known=table.known)
    return _integer_figures(out)
