"""The joint release in the national table: for a period with a co-signed joint result, the cells it covers.

Covered are the total row and, when the breakdown is one of the plan's marginals (default: form, age band), every
cell. Such a row gets `joint`:
  estimate        distinct people: the collision-corrected count (linear counting, done in public on the opened
                  count; coordinator/joint.py) made consistent with the rest of the joint release: the total and
                  every planned marginal are fitted together by weighted least squares (privacy/consistency.py:
                  consistent_release, weights 1 / (noise + collision variance)), so each marginal's cells add up to
                  the one joint total; integer figures top-down from that total, never below `known`
  known           of whom known individually: the people with a lawful basis (statutory or consent) in the cell,
                  the row's individual records, counted once across organisations
  se, lower, upper  the fitted standard error and 95% interval (intervals.bounded_interval: outward to whole people,
                  never below `known`, never zero-width while se > 0, always holding the estimate); with linkage
                  bounds the interval spans them (figures) and `linked_se` is that of the distinct pseudonyms
  raw_estimate, raw_lower, raw_upper  the cell's own linear count and interval, before the consistency step
  unlinked        with linkage bounds (plans from version 2): people contributed under a local pseudonym (no name or
                  no date of birth at that organisation), who may also be counted elsewhere; the estimate takes a
                  quarter of them to be, and the interval spans none to all of them (figures)
The per-organisation columns of the row stay exactly as they are without a joint result.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any

from ..privacy.intervals import Z_95, bound_z, bounded_interval
from ..util.engine import quote_ident


def with_joint(con, names: list[str], periods: list[int], rows: list) -> tuple[list, list[str]]:
    """The rows with their joint figures where a period has a joint result, and notes about it."""
    out, notes = list(rows), []
    for per in periods:
        plan, tables, cells = _release(con, per)
        if plan is None:
            continue
        covering = next((dims for dims in plan.marginals if set(dims) == set(names)), None)
        for i, row in enumerate(out):
            if row.period != per:
                continue
            if row.total or not names:
                out[i] = dataclasses.replace(row, joint=_cell(tables[()], (), cells))
            elif covering is not None and covering in tables:
                out[i] = dataclasses.replace(row, joint=_cell(tables[covering],
                                                              tuple(row.dims[d] for d in covering), cells))
        if plan.unlinked_groups and tables:
            unlinked = figures(tables[()], [()])["unlinked"]
            notes.append(f"joint release {per}: about {unlinked:,} people were known to an organisation only without a "
                         "name or date of birth, so they cannot be matched across organisations; the joint estimate takes "
                         "a quarter of them to be counted elsewhere too, and its interval spans from none to all of "
                         "them")
        missing = _not_in(con, per)
        if missing:
            notes.append(f"joint release {per}: {', '.join(missing)} took no part in it, so the joint figures do not "
                         "count the people only they know (their individual records are still in 'of whom known')")
    return out, notes


def joint_release(db_path: Path, period: int) -> dict:
    """The period's consistent joint tables (consistency.ConsistentTable by dimensions, () the total, floored at
    the people known individually), as the national table shows them; empty without a joint result."""
    from .store import open_store

    with open_store(Path(db_path), write=False) as con:
        return _release(con, period)[1]


def figures(table, keys: list[tuple[str, ...]]) -> dict[str, Any]:
    """Estimate, bounded 95% interval, se and people known individually of a sum of cells of one consistent joint
    table (one key: the cell); the variance of a sum comes from the fitted covariance.

    With linkage bounds (the table's `unlinked` and `linked`, coordinator/joint.py: joint_tables) the estimate is
    L - U/4 (L fitted, then shifted), L the distinct pseudonyms and U the people contributed under local pseudonyms, of whom a
    quarter are taken to be known elsewhere too (coordinator/joint.py: UNLINKED_KNOWN_ELSEWHERE). The interval is
    Imbens and Manski's for a truth between two bounds (privacy/intervals.py: bound_z): from L - U (U taken as at
    least 0) minus z se to L plus z se, both from the fit of L alone, z between 1.645 and 1.96 by how far apart
    the bounds are (U's lower 95% bound, so an uncertain U errs towards 1.96). It holds the distinct people at 95%
    or more whatever share of U is also known elsewhere (L's fit and U come from different noise draws: their
    variances add). Its standard error adds the prior uncertainty of that share times U (UNLINKED_KNOWN_ELSEWHERE_SD)."""
    from .joint import UNLINKED_KNOWN_ELSEWHERE_SD

    wls, variance, post = table.sum_of(keys)
    known = sum(table.known[table.keys.index(k)] for k in keys)
    out: dict[str, Any] = {"known": known, "wls": round(wls, 3), "variance": variance}
    if table.unlinked is None:
        se, low, high = bounded_interval(wls, variance, known)
    else:
        u, u_variance, _ = table.unlinked.sum_of(keys)
        linked, linked_variance, _ = table.linked.sum_of(keys)
        width = max(u - Z_95 * math.sqrt(u_variance), 0.0)  # the bounds' distance, erring small
        z = bound_z(width, math.sqrt(linked_variance + u_variance))
        _, low, _ = bounded_interval(linked - max(u, 0.0), linked_variance + u_variance, known, z=z)
        out["linked_se"], _, high = bounded_interval(linked, linked_variance, known, z=z)
        # of the point estimate: the noise, and the prior uncertainty of the share of U known elsewhere
        se = math.sqrt(variance + (max(u, 0.0) * UNLINKED_KNOWN_ELSEWHERE_SD) ** 2)
        out["unlinked"] = round(max(u, 0.0))
    return {"estimate": post, "lower": min(low, float(post)), "upper": max(high, float(post)), "se": se, **out}


def _release(con, period: int) -> tuple[Any, dict, dict]:
    """(plan, consistent tables, collision-corrected cells by name) of the period's joint result; (None, {}, {})."""
    from .joint import joint_tables, stored_joint

    plan, cells = stored_joint(con, period)
    if plan is None:
        return None, {}, {}
    return plan, joint_tables(plan, cells, _known(con, period, [(), *plan.marginals])), cells


def _cell(table, key: tuple[str, ...], cells: dict[str, Any]) -> dict[str, Any]:
    from ..joint.plan import TOTAL, cell_name

    raw = cells[cell_name(table.dims, key) if table.dims else TOTAL]
    return {**figures(table, [key]), "raw_estimate": round(raw.estimate, 1), "raw_lower": round(raw.lower, 1),
            "raw_upper": round(raw.upper, 1), "consistent": True}


def _known(con, period: int, tables: list[tuple[str, ...]]) -> dict[tuple[str, ...], list[int]]:
    """People known individually per cell of each table (the national table's individual records, codelist order)."""
    import itertools

    from ..contract.codelists import codes
    from .national import _PEOPLE

    out = {}
    for dims in tables:
        cols = ", ".join(quote_ident(d) for d in dims)
        found = {tuple(r[:-1]): int(r[-1]) for r in con.execute(
            f"WITH {_PEOPLE} SELECT {cols + ', ' if cols else ''}count(*) FROM people WHERE period = $period"
            + (f" GROUP BY {cols}" if cols else ""), {"period": period}).fetchall()}
        out[dims] = [found.get(key, 0) for key in itertools.product(*(codes(d) for d in dims))]
    return out


def _not_in(con, period: int) -> list[str]:
    """Organisations with a current bundle in the period whose shares are not in its joint result."""
    import json

    from .store import CURRENT_BUNDLES_SQL

    (text,) = con.execute("SELECT result FROM joint_results WHERE period = ?", [period]).fetchone()
    included = set(json.loads(text).get("included", []))
    current = [org for (org,) in con.execute(
        "WITH " + CURRENT_BUNDLES_SQL + " SELECT DISTINCT org_id FROM live ORDER BY org_id", {"period": period}
    ).fetchall()]
    return [org for org in current if org not in included]
