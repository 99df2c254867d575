"""Honest numbers in the national table (issue 15, item 10).

- one national total, the same whatever the breakdown;
- a breakdown no release covers is refused (exit code 2 through the CLI), naming the released marginals;
- partial coverage is computed but marked incomplete, with a footnote naming what is missing;
- no zero-width interval while the standard error is positive;
- no lower bound below the individual records of the cell.
"""

from __future__ import annotations

import itertools
import json
import math
import random

import pytest
from typer.testing import CliRunner

import aggregator.cli.coordinator  # noqa: F401  (registers the commands)
from aggregator.cli import app
from aggregator.contract.codelists import codes
from aggregator.coordinator.merge import merge_bundles
from aggregator.coordinator.national import national_table
from aggregator.errors import BreakdownNotReleased
from aggregator.privacy.intervals import bounded_interval
from tests import bundlefactory as bf

MONITOR = (["form", "age_band"], ["form", "nationality_group"], ["gender"], ["province"])


def merge(db, *paths):
    result = merge_bundles(db, list(paths))
    assert result.refused == 0, result.as_dict()


def noisy(rng, dims, low=-4, high=30):
    return {key: rng.randint(low, high) for key in itertools.product(*(codes(d) for d in dims))}


def monitor_marginals(rng, epsilon="1/4"):
    """The default workload's four tables, each with its own noise (so they disagree about the total)."""
    return [bf.marginal(list(dims), epsilon, noisy(rng, dims)) for dims in MONITOR]


def people(prefix, n, rng, basis="consent"):
    return [bf.record(f"{prefix}-{i}", basis=basis, form=rng.choice(codes("form")),
                      age_band=rng.choice(codes("age_band")), gender=rng.choice(codes("gender")))
            for i in range(n)]


@pytest.fixture
def db(tmp_path):
    return tmp_path / "national.duckdb"


@pytest.fixture
def nation(db, tmp_path):
    """Three consent organisations on the default workload (two reporter types) and a police force."""
    rng = random.Random(15)
    shelter = bf.new_org("shelter-a")
    care = bf.new_org("care-c", reporter_type="care_coordination")
    helpline = bf.new_org("help-b", reporter_type="help_line")
    police = bf.new_org("police-x", "investigative")
    bf.register(db, shelter, care, helpline, police)
    merge(
        db,
        bf.bundle_file(tmp_path, shelter, records=people("s", 12, rng), marginals=monitor_marginals(rng)),
        bf.bundle_file(tmp_path, care, records=people("c", 7, rng), marginals=monitor_marginals(rng)),
        bf.bundle_file(tmp_path, helpline, marginals=monitor_marginals(rng)),
        bf.bundle_file(tmp_path, police, records=people("p", 20, rng, basis="statutory")),
    )
    return db


def cli(*args, code=0):
    result = CliRunner().invoke(app, [str(a) for a in args])
    assert "Traceback" not in result.stdout + result.stderr
    assert result.exit_code == code, (result.stdout, result.stderr, result.exception)
    return result


def test_the_national_total_is_the_same_whatever_the_breakdown(nation):
    breakdowns = ([], ["form"], ["reporter_type"], ["age_band"], ["kind"], ["gender"], ["form", "age_band"],
                  ["kind", "reporter_type"], ["province", "kind"])
    totals = {}
    for by in breakdowns:
        table = national_table(nation, 2025, by)
        total = table.total(2025)
        totals[" x ".join(by) or "total"] = (total.individual, total.estimate, total.se, total.lower, total.upper)
        if by:  # and the cells add up to it
            assert sum(c.estimate for c in table.cells(2025)) == total.estimate, by
            assert sum(c.individual for c in table.cells(2025)) == total.individual, by
    assert len(set(totals.values())) == 1, totals
    individual, estimate, se, lower, upper = totals["total"]
    assert individual == 39 and se > 0 and lower < estimate < upper
    # cells without noise (the police release none) keep exactly their records
    police = next(c for c in national_table(nation, 2025, ["reporter_type"]).cells(2025)
                  if c.dims["reporter_type"] == "police")
    assert (police.estimate, police.lower, police.upper) == (20, 20, 20)


def test_a_breakdown_no_release_covers_is_refused_naming_the_released_marginals(nation):
    with pytest.raises(BreakdownNotReleased) as refused:
        national_table(nation, 2025, ["gender", "province"])
    assert set(refused.value.released) == {tuple(m) for m in MONITOR}
    assert refused.value.option == "by" and refused.value.exit_code == 2
    result = cli("table", "--db", nation, "--period", 2025, "--by", "gender,province", code=2)
    assert result.stdout == ""
    message = " ".join(result.stderr.split())
    assert message.startswith("error: --by: no organisation released noisy counts by gender x province for 2025")
    for released in ("form x age_band", "form x nationality_group", "gender", "province"):
        assert released in message
    data = json.loads(cli("table", "--db", nation, "--by", "form,gender", "--json", code=2).stdout)
    assert data["error"]["code"] == "breakdown-not-released" and data["error"]["exit_code"] == 2
    # The audit still compares every breakdown: it asks for the uncovered one as records only, marked incomplete.
    table = national_table(nation, 2025, ["gender", "province"], refuse_uncovered=False)
    assert all(c.incomplete for c in table.cells(2025)) and not table.total(2025).incomplete
    assert table.total(2025).estimate == national_table(nation, 2025, []).total(2025).estimate


def test_partial_coverage_is_computed_but_marked_incomplete(db, tmp_path):
    shelter = bf.new_org("shelter-a")
    helpline = bf.new_org("help-b", reporter_type="help_line")
    bf.register(db, shelter, helpline)
    merge(
        db,
        bf.bundle_file(tmp_path, shelter, records=[bf.record(1, gender="male")],
                       marginals=[bf.marginal(["gender"], "1/2", fill=10)]),
        bf.bundle_file(tmp_path, helpline, marginals=[bf.marginal(["form", "age_band"], "1/2", fill=2)]),
    )
    table = national_table(db, 2025, ["gender"])
    assert table.incomplete and [u.org for u in table.uncovered] == ["help-b"]
    assert all(c.incomplete for c in table.cells(2025)) and not table.total(2025).incomplete
    assert [c.noisy for c in table.cells(2025)] == [10] * 4  # the help line's 50 noisy people are not in the cells
    assert table.footnotes and "help-b" in table.footnotes[0] and "gender" in table.footnotes[0]
    # the total is still the national one, with the help line's noisy counts
    assert table.total(2025).estimate == national_table(db, 2025, ["form"]).total(2025).estimate
    assert sum(c.estimate for c in table.cells(2025)) < table.total(2025).estimate
    assert table.as_dict()["incomplete"] is True
    out = cli("table", "--db", db, "--period", 2025, "--by", "gender")
    lines = out.stdout.splitlines()
    male = next(line for line in lines if "Male" in line)
    assert male.rstrip().endswith("*") and "11*" in male
    total = next(line for line in lines if "Total" in line)
    assert "*" not in total
    footnote = " ".join(out.stdout[out.stdout.index("* incomplete"):].split())
    assert "help-b" in footnote and "missing" in footnote
    csv_text = cli("table", "--db", db, "--by", "gender", "--format", "csv").stdout
    assert "Incomplete (*)" in csv_text.splitlines()[0]


@pytest.mark.parametrize("by", [["gender"], ["reporter_type"], ["form"], ["gender", "kind"]])
def test_no_zero_width_interval_while_the_standard_error_is_positive(db, tmp_path, by):
    shelter = bf.new_org("shelter-a")
    bf.register(db, shelter)
    # Noise far below zero in some cells (a plausible draw at a small epsilon) put the centre below the records.
    gender = {("female",): -20, ("male",): 3, ("other",): -9, ("unknown",): 1}
    form = {("sexual",): -15, ("labour",): 6}
    merge(db, bf.bundle_file(tmp_path, shelter, records=[bf.record(1, form="labour", gender="male")],
                             marginals=[bf.marginal(["gender"], "1/2", gender), bf.marginal(["form"], "1/2", form)]))
    table = national_table(db, 2025, by)
    rows = [*table.cells(2025), table.total(2025)]
    assert any(r.se > 0 for r in rows)
    for row in rows:
        if row.se > 0:
            assert row.upper > row.lower, row
            assert row.upper - row.lower >= 1.96 * row.se - 1e-9, row  # never narrower than z se, even when cut
        assert row.lower <= row.estimate <= row.upper, row
        assert row.lower == math.floor(row.lower) and row.upper == math.ceil(row.upper)  # whole people


def test_bounded_interval_rounds_outward_and_never_collapses():
    se, lower, upper = bounded_interval(10.4, 4.0)
    assert se == 2.0 and (lower, upper) == (6.0, 15.0)  # 6.48 down, 14.32 up
    assert bounded_interval(-20.0, 3.4 ** 2)[1:] == (0.0, 7.0)  # was 0.0-0.0: the upper bound from the floor
    assert bounded_interval(73.0, 0.0, floor=73)[1:] == (73.0, 73.0)  # no noise: exact
    assert bounded_interval(5.0, 9.0, floor=8)[1:] == (8.0, 14.0)  # never below the known records
    assert bounded_interval(-3.0, 1.0, floor=-5)[1] == 0.0  # never below 0


def test_the_lower_bound_is_never_below_the_records(db, tmp_path):
    shelter = bf.new_org("shelter-a")
    helpline = bf.new_org("help-b", reporter_type="help_line")
    bf.register(db, shelter, helpline)
    records = [bf.record(i, gender="female" if i % 3 else "male") for i in range(30)]
    merge(
        db,
        bf.bundle_file(tmp_path, shelter, records=records, marginals=[bf.marginal(["gender"], "1/2", fill=-6)]),
        bf.bundle_file(tmp_path, helpline, marginals=[bf.marginal(["gender"], "1/2", fill=1)]),
    )
    for by in (["reporter_type"], ["kind", "reporter_type"], ["gender", "kind"], ["gender"], []):
        table = national_table(db, 2025, by)
        rows = [*table.cells(2025), table.total(2025)]
        # the noise pulls the plain interval below the records somewhere (so the cut is what this test checks)
        assert any(r.individual > 0 and r.individual + r.noisy - 1.96 * r.se < r.individual for r in rows)
        for row in rows:
            assert row.lower >= row.individual >= 0, (by, row)
            assert row.estimate >= row.individual, (by, row)


def test_the_report_skips_charts_of_breakdowns_no_release_covers(db, tmp_path):
    from aggregator.coordinator.report import build_context, render_report

    shelter = bf.new_org("shelter-a")
    bf.register(db, shelter)
    merge(db, bf.bundle_file(tmp_path, shelter, records=[bf.record(1)], marginals=[bf.marginal(["gender"], "1", fill=4)]))
    context = build_context(db, "en", 2025)
    (section,) = context["sections"]
    assert section["breakdowns"] == [] and section["minors"] is None  # form, age band, nationality: none released
    assert any("No chart by form" in n for n in context["notes"])
    render_report(db, tmp_path / "report.html", "en", 2025)
    html = (tmp_path / "report.html").read_text(encoding="utf-8")
    assert 'id="chart-form-2025"' not in html and "No chart by age band" in html
