"""The national table: deduplicated individual records plus noisy counts, with variance and a 95% interval.

For each period and each cell of the requested breakdown (the full codelist product, empty cells included):
  individual  people with a lawful basis, deduplicated ACROSS organisations by pseudonym within the period
  noisy       sum over the current releases of their noisy counts for the cell (raw, as released)
  estimate    individual + a non-negative noisy part; se = sqrt(variance of that part); the 95% interval is
              intervals.bounded_interval: rounded outward, never below the individual records (nor 0), never
              zero-width while the standard error is positive, and it always holds the estimate
plus one total row per period: THE national total, the same whatever the breakdown. It is the weighted-least-
squares combination of every released marginal (privacy/consistency.py; raw sums only when nothing was released).
Where a period has a joint result, the total row and the cells of a planned marginal also carry the joint release's
figures beside these (national_joint.py: distinct people, consistent with the joint total, of whom known
individually); the per-organisation figures do not change.

How the cells meet that total:
- a breakdown of the consistency hierarchy (form, age band, nationality group, gender, province, form x age band,
  form x nationality group): the consistent WLS cells, whose margins add up to the total exactly;
- any other breakdown every release covers (organisation attributes, gender x province of an equal workload, ...):
  the raw cell sums, their noisy parts projected onto {>= 0, adding up to the total's noisy part}; cells without
  noise (e.g. investigative organisations, which release none) keep exactly their records;
- partial coverage (some releases of the period have no covering marginal): the raw cells, marked `incomplete`
  with a footnote naming the organisations whose noisy counts are missing; they do not add up to the total;
- no release of a period covers the breakdown: refused (errors.BreakdownNotReleased, naming the released
  marginals), unless the caller passes refuse_uncovered=False (the audit), which gets incomplete cells.

Rules, in one place:
- Only the current bundle of each (organisation, period) counts in the table: a higher sequence supersedes the
  earlier ones (they still count in the budget).
- A withdrawal (pseudonym, period, sequence) in a bundle removes that organisation's record for the pseudonym and
  period from the organisation's bundles of that period up to that sequence (the latest one it had sent when it
  withdrew): neither the bundles' clocks nor the order they arrive in matter, and a later resubmission of the period
  that sends the person again (consent given anew) is not touched. A withdrawal without a sequence (bundles made
  before withdrawals named one) keeps the earlier rule: bundles created no later than the withdrawing one.
- Cross-organisation dedupe: one person = one pseudonym per period. If two organisations sent the same pseudonym
  with different dimensions, the record kept is the one from an investigative organisation, else the one from
  the most recently created bundle, then the lowest organisation id, then the lowest digest.
- Noisy counts: for each current release, the marginal used is the one among ITS marginals that covers the
  requested dimensions with the smallest variance per output cell (a marginal's cell variance times the number
  of its cells summed into one output cell); ties go to fewer dimensions, then release order. A finer marginal
  is summed down (cells and variances add). A release with no covering marginal is listed in `uncovered` and
  its noisy counts are missing from the table (the table says so).
- Organisation attributes (kind, reporter_type) can be part of the breakdown for free: an individual record
  takes the attributes of the organisation whose record was kept, a release those of its organisation.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Sequence

from ..contract.codelists import codes, DIMENSIONS, OrgKind, ReporterType
from ..errors import BreakdownNotReleased, UsageError
from ..privacy.intervals import Z_95, bounded_interval
from ..util.engine import quote_ident
from .store import CURRENT_BUNDLES_SQL, open_store

ORG_ATTRIBUTES = ("kind", "reporter_type")
BREAKDOWNS = (*DIMENSIONS, *ORG_ATTRIBUTES)


def breakdown_codes(name: str) -> list[str]:
    """The codes of a breakdown dimension (a release dimension or an organisation attribute), in order."""
    if name == "kind":
        return [k.value for k in OrgKind]
    if name == "reporter_type":
        return [r.value for r in ReporterType]
    return codes(name)


def parse_by(by: str | Sequence[str] | None) -> list[str]:
    """'form,age_band' or ['form', 'age_band'] -> checked list of breakdown names."""
    if by is None:
        return []
    names = [part.strip() for part in (by.split(",") if isinstance(by, str) else by) if part.strip()]
    unknown = [n for n in names if n not in BREAKDOWNS]
    if unknown:
        raise UsageError(f"unknown breakdown dimension {unknown[0]!r}; choose from: {', '.join(BREAKDOWNS)}", "by")
    if len(set(names)) != len(names):
        raise UsageError("the breakdown lists a dimension twice", "by")
    return names


@dataclass(frozen=True)
class NationalRow:
    period: int
    dims: dict[str, str]  # breakdown name -> code, in `NationalTable.by` order; {} on a total row
    individual: int
    noisy: int
    variance: float
    estimate: int
    se: float
    lower: float
    upper: float
    total: bool = False
    raw_estimate: int | None = None  # individual + raw noisy sum, before the consistent post-processing
    raw_variance: float | None = None  # the raw sum's noise variance
    consistent: bool = False  # estimate and interval come from consistency.py (WLS, non-negative, margins add up)
    joint: dict[str, Any] | None = None  # the period's joint release for this cell (national_joint.py): consistent
    # distinct people, its 95% interval, and `known`, of whom known individually
    incomplete: bool = False  # some releases have no marginal covering the breakdown: their noisy counts are missing

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class ReleaseUse:
    """How one current release entered the table."""

    org: str
    period: int
    digest: str
    sequence: int
    kind: str
    reporter_type: str
    marginal: list[str] | None  # dimensions of the marginal used; None when nothing covers the breakdown
    cell_variance: float | None  # variance of one output cell from this release

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class NationalTable:
    by: list[str]
    period: int | None
    periods: list[int]
    rows: list[NationalRow]
    releases: list[ReleaseUse]
    linked_people: int = 0  # pseudonyms sent by more than one organisation in a period (counted once)
    conflicting_people: int = 0  # ... of whom the organisations disagree on a dimension
    notes: list[str] = field(default_factory=list)
    z: float = Z_95
    empty: bool = False  # no bundle counts for the period asked (or the store has none): the rows are only zeros
    footnotes: list[str] = field(default_factory=list)  # what the cells marked incomplete (*) miss; also in notes

    @property
    def incomplete(self) -> bool:
        return any(r.incomplete for r in self.rows)

    @property
    def uncovered(self) -> list[ReleaseUse]:
        return [r for r in self.releases if r.marginal is None]

    def cells(self, period: int) -> list[NationalRow]:
        return [r for r in self.rows if r.period == period and not r.total]

    def total(self, period: int) -> NationalRow:
        return next(r for r in self.rows if r.period == period and r.total)

    def as_dict(self) -> dict[str, Any]:
        return {
            "by": self.by,
            "period": self.period,
            "periods": self.periods,
            "z": self.z,
            "rows": [r.as_dict() for r in self.rows],
            "releases": [r.as_dict() for r in self.releases],
            "uncovered": [r.as_dict() for r in self.uncovered],
            "linked_people": self.linked_people,
            "conflicting_people": self.conflicting_people,
            "notes": self.notes,
            "footnotes": self.footnotes,
            "incomplete": self.incomplete,
        }


_LIVE = CURRENT_BUNDLES_SQL

# Records of current bundles that no withdrawal of the same organisation removed (see the module docstring).
_KEPT = _LIVE + """,
kept AS (
    SELECT r.*, l.created_at, l.kind, l.reporter_type
    FROM records AS r JOIN live AS l USING (digest)
    WHERE NOT EXISTS (
        SELECT 1 FROM withdrawals AS w JOIN bundles AS wb ON wb.digest = w.digest
        WHERE w.org_id = r.org_id AND w.period = r.period AND w.pseudonym = r.pseudonym
          AND CASE WHEN w.sequence IS NOT NULL THEN l.sequence <= w.sequence ELSE wb.created_at >= l.created_at END
    )
)"""

# One record per person (pseudonym) and period across organisations; see the module docstring for the order.
_PEOPLE = _KEPT + """,
people AS (
    SELECT * FROM kept
    QUALIFY row_number() OVER (
        PARTITION BY period, pseudonym
        ORDER BY (kind = 'investigative') DESC, created_at DESC, org_id, digest
    ) = 1
)"""

_LINKED = "WITH " + _KEPT + """
SELECT count(*) FILTER (WHERE orgs > 1), count(*) FILTER (WHERE orgs > 1 AND variants > 1)
FROM (
    SELECT period, pseudonym, count(DISTINCT org_id) AS orgs,
           count(DISTINCT [form, age_band, gender, nationality_group, province]) AS variants
    FROM kept GROUP BY period, pseudonym
)
"""

_RELEASES = "WITH " + _LIVE + """
SELECT l.digest, l.org_id, l.period, l.sequence, l.kind, l.reporter_type,
       list(m.dimensions ORDER BY m.marginal_index), list(m.variance ORDER BY m.marginal_index)
FROM live AS l JOIN marginals AS m USING (digest)
GROUP BY ALL
ORDER BY l.period, l.org_id, l.digest
"""


def _choose_marginal(dims_list: list[list[str]], variances: list[float], needed: list[str]) -> tuple[int, float] | None:
    """Index and output-cell variance of the best marginal of one release covering `needed`."""
    best: tuple[float, int, int] | None = None
    for index, (dims, variance) in enumerate(zip(dims_list, variances)):
        if not set(needed) <= set(dims):
            continue
        summed = math.prod(len(codes(d)) for d in dims if d not in needed)
        candidate = (variance * summed, len(dims), index)
        if best is None or candidate < best:
            best = candidate
    return (best[2], best[0]) if best else None


def national_table(db_path: Path, period: int | None = None, by: str | Sequence[str] | None = ("form",), *,
                   refuse_uncovered: bool = True) -> NationalTable:
    """The national registration table for one period (or every period in the store) broken down by `by`.

    Raises BreakdownNotReleased when a period has releases but none of them covers the breakdown (the noisy counts
    cannot estimate it), unless `refuse_uncovered` is False (the audit compares every breakdown): the cells are then
    records only, marked incomplete."""
    names = parse_by(by)
    release_dims = [n for n in names if n in DIMENSIONS]
    params = {"period": period}
    with open_store(Path(db_path), write=False) as con:
        periods = [
            p for (p,) in con.execute(
                "WITH " + _LIVE + " SELECT DISTINCT period FROM live ORDER BY period", params
            ).fetchall()
        ]
        notes: list[str] = []
        empty = not periods or (period is not None and period not in periods)
        if period is not None and period not in periods:
            periods = [period]
            notes.append(f"no bundles for period {period}")

        # Which marginal of each current release answers this breakdown, and which the national total (a few rows
        # per organisation).
        uses: list[ReleaseUse] = []
        chosen: tuple[list[str], list[int]] = ([], [])
        for_total: tuple[list[str], list[int]] = ([], [])
        released: dict[tuple[str, ...], None] = {}
        for digest, org_id, per, sequence, kind, reporter_type, dims_list, variances in con.execute(
            _RELEASES, params
        ).fetchall():
            released.update((tuple(d), None) for d in dims_list)
            total_index, _ = _choose_marginal(dims_list, variances, [])  # every marginal covers the total
            for_total[0].append(digest)
            for_total[1].append(total_index)
            choice = _choose_marginal(dims_list, variances, release_dims)
            if choice is None:
                uses.append(ReleaseUse(org_id, per, digest, sequence, kind, reporter_type, None, None))
                continue
            index, cell_variance = choice
            uses.append(ReleaseUse(org_id, per, digest, sequence, kind, reporter_type, dims_list[index], cell_variance))
            chosen[0].append(digest)
            chosen[1].append(index)
        gaps = _gaps(uses, release_dims, list(released), refuse_uncovered)
        footnotes = [_footnote(per, missing, release_dims) for per, missing in sorted(gaps.items())]

        linked, conflicting = con.execute(_LINKED, params).fetchone()
        consistent = _consistent_tables(con, periods, {u.period for u in uses})
        grid = {**params, "periods": periods, **{f"codes_{i}": breakdown_codes(n) for i, n in enumerate(names)}}
        rows = con.execute(_table_sql(names), {**grid, "chosen_digest": chosen[0], "chosen_index": chosen[1]}).fetchall()
        totals = {r[0]: r[1:] for r in con.execute(
            _table_sql([]), {**params, "periods": periods, "chosen_digest": for_total[0], "chosen_index": for_total[1]}
        ).fetchall()}

    key = tuple(d for d in DIMENSIONS if d in names)
    table_rows: list[NationalRow] = []
    for per in periods:
        tables = consistent.get(per, {})
        total = _row(per, {}, *totals[per], total=True)
        if () in tables:  # the one national total: the WLS combination of every released marginal
            total = _consistent_row(total, tables[()], [])
        cells = [_row(per, dict(zip(names, r[1:1 + len(names)])), *r[1 + len(names):]) for r in rows if r[0] == per]
        if per in gaps:  # some releases have no covering marginal: the cells miss their noisy counts
            cells = [dataclasses.replace(c, incomplete=True) for c in cells]
        elif len(key) == len(names) and key in tables:
            cells = [_consistent_row(c, tables[key], names) for c in cells]
        else:
            cells = _fit_to_total(cells, total)
        if names:  # without a breakdown the single cell is the total row
            table_rows.extend(cells)
        table_rows.append(total)
    from .national_joint import with_joint

    with open_store(Path(db_path), write=False) as con:  # the joint release beside, where a period has one
        table_rows, joint_notes = with_joint(con, names, periods, table_rows)
    result = NationalTable(names, period, periods, table_rows, uses, int(linked or 0), int(conflicting or 0),
                           [*notes, *joint_notes, *footnotes], footnotes=footnotes)
    result.empty = empty
    return result


def _gaps(uses: list[ReleaseUse], release_dims: list[str], released: list[tuple[str, ...]],
          refuse: bool) -> dict[int, list[str]]:
    """Per period, the organisations whose release does not cover the breakdown; refuses a period none covers."""
    gaps: dict[int, list[str]] = {}
    covered: set[int] = set()
    for use in uses:
        if use.marginal is None:
            gaps.setdefault(use.period, []).append(use.org)
        else:
            covered.add(use.period)
    blind = sorted(set(gaps) - covered)
    if blind and refuse:
        raise BreakdownNotReleased(
            f"no organisation released noisy counts by {' x '.join(release_dims)} for "
            f"{', '.join(map(str, blind))}, so the people without a lawful basis cannot be counted in this breakdown; "
            f"the released marginals are {', '.join(' x '.join(m) for m in released)}: choose a breakdown within one "
            f"of them (kind and reporter_type can be added to any)",
            released,
        )
    return gaps


def _footnote(period: int, missing: list[str], release_dims: list[str]) -> str:
    whose = ", ".join(missing)
    return (f"* incomplete ({period}): the release of {whose} has no marginal covering {' x '.join(release_dims)}; "
            f"its noisy counts are missing from the cells marked *, which therefore count too few people and do not "
            f"add up to the total (the total includes them)")


def _fit_to_total(cells: list[NationalRow], total: NationalRow) -> list[NationalRow]:
    """Cells of a breakdown outside the consistency hierarchy, fitted to the one national total: the noisy parts of
    the cells that have noise are projected onto {x >= 0, sum x = the total's noisy part} (consistency.py's step);
    a cell without noise keeps its records. Intervals come from the raw sums and always hold the estimate."""
    from ..privacy.consistency import project_to_simplex

    noisy = [i for i, c in enumerate(cells) if c.variance > 0]
    if not noisy:
        return cells
    post = project_to_simplex([float(cells[i].noisy) for i in noisy], total.estimate - total.individual)
    out = list(cells)
    for i, value in zip(noisy, post):
        c = cells[i]
        estimate = c.individual + value
        se, low, high = bounded_interval(c.individual + c.noisy, c.variance, c.individual)
        out[i] = dataclasses.replace(c, estimate=estimate, se=se, lower=min(low, float(estimate)),
                                     upper=max(high, float(estimate)))
    return out


def sum_rows(rows: Sequence[NationalRow], z: float = Z_95) -> tuple[int, float, float, float]:
    """Estimate, standard error and interval of a sum of cells (e.g. minors = under 15 + 15-17).

    Estimates add; variances add (covariances between cells are ignored); the interval is a bounded one
    (intervals.py: outward-rounded, never below the individual records) and always holds the estimate."""
    if len(rows) == 1:
        return rows[0].estimate, rows[0].se, rows[0].lower, rows[0].upper
    estimate = sum(r.estimate for r in rows)
    variance = math.fsum(r.variance for r in rows)
    individual = sum(r.individual for r in rows)
    centre = sum(r.raw_estimate if r.raw_estimate is not None else r.estimate for r in rows)
    se, low, _ = bounded_interval(min(estimate, centre), variance, individual, z)
    _, _, high = bounded_interval(max(estimate, centre), variance, individual, z)
    return estimate, se, low, max(float(estimate), high)


def _consistent_tables(con, periods: list[int], released: set[int]) -> dict[int, dict]:
    """Per period with releases, the consistent tables (consistency.py) the releases determine."""
    from ..privacy.consistency import consistent_tables

    return {per: consistent_tables(con, per) for per in periods if per in released}


def _consistent_row(row: NationalRow, table, names: list[str]) -> NationalRow:
    """The row with the consistent, non-negative noisy part; the interval is the WLS one, bounded (intervals.py)."""
    from ..privacy.consistency import DIMS

    key = tuple(row.dims[d] for d in DIMS if d in names)
    wls, variance, post = table.by_key()[key]
    estimate = row.individual + post
    se, low, high = bounded_interval(row.individual + wls, variance, row.individual)
    lower, upper = min(low, float(estimate)), max(high, float(estimate))
    return NationalRow(row.period, row.dims, row.individual, row.noisy, variance, estimate, se, lower, upper,
                       row.total, raw_estimate=row.individual + row.noisy, raw_variance=row.variance, consistent=True)


def _row(period: int, dims: dict[str, str], individual: int, noisy: int, variance: float, *, total: bool = False) -> NationalRow:
    """A row from the raw sums: the estimate never counts fewer people than the records (noisy part cut at 0)."""
    individual, noisy, variance = int(individual), int(noisy), float(variance)
    estimate = individual + max(noisy, 0)
    se, lower, upper = bounded_interval(individual + noisy, variance, individual)
    return NationalRow(period, dims, individual, noisy, variance, estimate, se, lower, max(upper, float(estimate)),
                       total, raw_estimate=individual + noisy, raw_variance=variance)


def _table_sql(names: list[str]) -> str:
    """The grid of every (period, cell) with its individual and noisy sums. Identifiers come from BREAKDOWNS only."""
    cols = [quote_ident(n) for n in names]

    def source(table: str, name: str) -> str:
        return f"{table}.{quote_ident(name)}"

    grid = "SELECT UNNEST($periods::INTEGER[]) AS period"
    for i, col in enumerate(cols):
        grid = f"SELECT * FROM ({grid}) CROSS JOIN (SELECT UNNEST($codes_{i}::VARCHAR[]) AS {col})"
    ind_cols = "".join(f", {source('p', n)} AS {quote_ident(n)}" for n in names)
    noisy_cols = "".join(
        f", {source('o' if n in ORG_ATTRIBUTES else 'c', n)} AS {quote_ident(n)}" for n in names
    )
    join_cols = ", ".join(["period", *cols])
    order = ", ".join(["g.period", *(f"list_position($codes_{i}::VARCHAR[], g.{col})" for i, col in enumerate(cols))])
    select_cols = ", ".join(f"g.{c}" for c in cols)
    return f"""
WITH {_PEOPLE},
individual AS (
    SELECT p.period{ind_cols}, count(*) AS n
    FROM people AS p
    GROUP BY ALL
),
chosen AS (
    SELECT UNNEST($chosen_digest::VARCHAR[]) AS digest, UNNEST($chosen_index::INTEGER[]) AS marginal_index
),
noisy AS (
    SELECT b.period{noisy_cols}, sum(c.count) AS n, sum(m.variance) AS variance
    FROM noisy_cells AS c
    JOIN chosen USING (digest, marginal_index)
    JOIN marginals AS m USING (digest, marginal_index)
    JOIN bundles AS b ON b.digest = c.digest
    JOIN organisations AS o ON o.id = b.org_id
    GROUP BY ALL
),
grid AS ({grid})
SELECT g.period{', ' + select_cols if cols else ''},
       coalesce(i.n, 0) AS individual, coalesce(n.n, 0) AS noisy, coalesce(n.variance, 0) AS variance
FROM grid AS g
LEFT JOIN individual AS i USING ({join_cols})
LEFT JOIN noisy AS n USING ({join_cols})
ORDER BY {order}
"""


