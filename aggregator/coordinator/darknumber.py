"""The dark number: a multiple-systems estimate, per stratum, of the victims no organisation registered.

Input is only what the joint result opened: per stratum of the plan the noisy count of buckets of every list
pattern. Collision correction (estimate/buckets.py) turns those into a pattern table of people with a known extra
variance (privacy noise plus hashing); the log-linear estimate with model search and a parametric bootstrap that
repeats the search (estimate/mse.py) gives the total with a 95% interval. `registered` is the deduplicated number
of people any organisation knows in the stratum (linear counting of the stratum cell, with its own interval); from
plan version 4 of people known under a name and date of birth, the only ones whose overlaps can be counted
(joint/plan.py: overlaps of linkable people).
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..errors import AggregatorError

CAVEATS = (
    "closed population: everyone counted is taken to be a victim in this country during the whole year;",
    "list dependence: the model allows for pairs of lists that know the same people more (or less) often than "
    "chance, but not for dependence among three or more lists;",
    "heterogeneity: people who are hard to see for one list are often hard to see for all; strata (minors, "
    "Dutch victims) take out the known part, what is left makes the estimate too low.",
)
LINKABLE_CAVEAT = ("linkage: only people known under a name and date of birth can be matched across lists, so only "
                   "they are registered here; a person known only without them (as at the anonymous help line) "
                   "counts among the unseen.")


REPORT_BOOTSTRAP = 200  # replicates behind the report's and the demo's intervals (`aggregator estimate` takes more)


class NoDarkNumber(AggregatorError):
    """The period has no joint result with list overlaps, or its overlaps cannot support an estimate."""


@dataclass
class StratumRow:
    stratum: str
    registered: int
    registered_lower: float
    registered_upper: float
    estimate: float | None
    lower: float | None
    upper: float | None
    share_visible: float | None
    model: str
    warnings: list[str] = field(default_factory=list)


@dataclass
class DarkNumberReport:
    period: int
    lists: list[str]
    criterion: str
    n_bootstrap: int
    rows: list[StratumRow]
    caveats: tuple[str, ...] = CAVEATS

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def stratum_label(name: str) -> str:
    """"stratum=minor/dutch" -> "minor, dutch" (for people)."""
    return name.split("=", 1)[1].replace("/", ", ").replace("_", "-")


def dark_number(db_path: Path, period: int, *, n_bootstrap: int = 500, seed: int | None = None,
                criterion: str = "bic") -> DarkNumberReport:
    """Estimate every stratum of the period's joint result; a stratum whose overlaps cannot carry an estimate is
    shown with its registered count and the reason, never with a made-up total."""
    from ..estimate.buckets import pattern_table_from_buckets
    from ..estimate.mse import EstimationError, estimate_stratum
    from ..joint.layout import PATTERNS_SUFFIX
    from ..joint.plan import STRATA_GROUP
    from ..joint.noise import model_of, released_variance
    from .joint import _plan, joint_estimates
    from .store import open_store

    with open_store(db_path, write=False) as con:
        row = con.execute("SELECT plan, result FROM joint_results WHERE period = ?", [period]).fetchone()
        if row is None:
            raise NoDarkNumber(f"period {period} has no joint result; run `compute` on a plan with lists first")
        plan, _ = _plan(con, row[0])
    if not plan.lists:
        raise NoDarkNumber(f"the joint result of {period} opened no list overlaps (its plan has no lists)")
    result = json.loads(row[1])
    cells = joint_estimates(db_path, period)
    scales = plan.group_scales()
    lists = tuple(name for name, _ in plan.lists)
    rows = []
    for seed_k, stratum in enumerate(plan.cells_of(STRATA_GROUP)):
        name, m = stratum["name"], int(stratum["m"])
        registered = cells[name]
        noise_model, scale = model_of(plan.version), scales[name + PATTERNS_SUFFIX]
        noise = released_variance(noise_model, scale)
        estimate = lower = upper = share = None
        model, notes = "", []
        try:
            table = pattern_table_from_buckets(lists, result["patterns"][name], m, noise, readded=noise)
            fit = estimate_stratum(table, scale, noise_model=noise_model, stratum=name, criterion=criterion,
                                   n_bootstrap=n_bootstrap, seed=None if seed is None else seed + seed_k)
            estimate, lower, upper = fit.estimate, fit.lower, fit.upper
            model = " + ".join(["independence", *(f"{a}:{b}" for a, b in fit.chosen_terms)])
            notes = list(fit.warnings)
            if lower is not None:
                # the total cannot be below the people registered, whose own interval is known
                if estimate < registered.lower:
                    notes.append("the fitted total fell below the lower bound of the people registered (noise); "
                                 "it is shown at that bound")
                    estimate = registered.lower
                # the interval holds its own point estimate: widened where the bootstrap centres elsewhere
                lower = min(max(lower, registered.lower), estimate)
                upper = max(upper, estimate)
            # seen / total from the same fitted table (the stratum cell's count carries its own noise, and a share
            # of two differently noised figures could pass 100%)
            share = fit.observed / estimate if estimate and estimate > 0 and fit.observed > 0 else None
        except EstimationError as exc:
            notes = [str(exc)]
        if lower is not None:  # whole people, rounded outward: a shown interval is never narrower than computed
            lower, upper = math.floor(lower), math.ceil(upper)
        rows.append(StratumRow(stratum_label(name), round(registered.estimate), math.floor(registered.lower),
                               math.ceil(registered.upper), estimate, lower, upper, share, model, notes))
    caveats = CAVEATS + ((LINKABLE_CAVEAT,) if plan.linkable_overlaps else ())
    return DarkNumberReport(period, list(lists), criterion, n_bootstrap, rows, caveats)
