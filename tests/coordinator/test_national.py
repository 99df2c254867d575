"""National table: individual records deduplicated across organisations + noisy counts, variance and intervals."""

from __future__ import annotations

import csv
import datetime as dt
import io
import itertools
import math
import random

import pytest

from aggregator.coordinator.render import HEADERS, to_csv, to_markdown
from aggregator.coordinator.national import national_table
from aggregator.coordinator.merge import merge_bundles
from aggregator.contract.codelists import codes
from aggregator.errors import UsageError
from tests import bundlefactory as bf


def merge(db, *paths):
    result = merge_bundles(db, list(paths))
    assert result.refused == 0, result.as_dict()
    return result


@pytest.fixture
def db(tmp_path):
    return tmp_path / "national.duckdb"


@pytest.fixture
def orgs(db):
    shelter = bf.new_org("shelter-a")
    helpline = bf.new_org("help-b", reporter_type="help_line")
    police = bf.new_org("police-x", "investigative")
    bf.register(db, shelter, helpline, police)
    return shelter, helpline, police


def random_counts(rng, dims):
    return {key: rng.randint(-3, 20) for key in itertools.product(*(codes(d) for d in dims))}


def test_table_is_records_plus_noisy_cells_cell_by_cell(db, orgs, tmp_path):
    shelter, helpline, police = orgs
    rng = random.Random(7)
    forms, bands = codes("form"), codes("age_band")
    records = {
        org.id: [
            bf.record(f"{org.id}-{i}", basis="statutory" if org is police else "consent",
                      form=rng.choice(forms), age_band=rng.choice(bands))
            for i in range(40)
        ]
        for org in orgs
    }
    counts_a = random_counts(rng, ["form", "age_band"])
    counts_b = random_counts(rng, ["form", "age_band"])
    merge(
        db,
        bf.bundle_file(tmp_path, shelter, records=records[shelter.id], marginals=[bf.marginal(["form", "age_band"], "1/2", counts_a)]),
        bf.bundle_file(tmp_path, helpline, records=records[helpline.id], marginals=[bf.marginal(["form", "age_band"], "1/4", counts_b)]),
        bf.bundle_file(tmp_path, police, records=records[police.id]),
    )
    table = national_table(db, 2025, ["form", "age_band"])
    assert table.periods == [2025] and not table.notes
    cells = table.cells(2025)
    assert [(r.dims["form"], r.dims["age_band"]) for r in cells] == list(itertools.product(forms, bands))
    var = bf.dlap_variance(2.0) + bf.dlap_variance(4.0)
    for row in cells:
        key = (row.dims["form"], row.dims["age_band"])
        expected_individual = sum(
            1 for recs in records.values() for r in recs if (r.form.value, r.age_band.value) == key
        )
        assert row.individual == expected_individual
        assert row.noisy == counts_a[key] + counts_b[key]
        # Raw sums stay available; the estimate is the consistent, non-negative one (consistency.py).
        assert row.raw_estimate == row.individual + row.noisy and row.consistent
        assert row.estimate >= row.individual
        assert row.variance == pytest.approx(var)
        assert row.se == pytest.approx(math.sqrt(var))
        # The interval is bounded (intervals.bounded_interval): rounded outward to whole people, never below the
        # records, the upper bound taken from the records when the noise put the centre below them.
        raw = row.raw_estimate
        assert row.lower == min(max(row.individual, math.floor(raw - 1.96 * row.se)), row.estimate)
        assert row.upper == max(math.ceil(max(raw, row.individual) + 1.96 * row.se), row.estimate)
    total = table.total(2025)
    assert sum(r.estimate for r in cells) == total.estimate  # margins add up exactly
    assert total.individual == 120
    assert total.noisy == sum(counts_a.values()) + sum(counts_b.values())
    assert total.variance == pytest.approx(25 * var)
    # the one-way margin agrees with the two-way table summed over age band
    by_form = national_table(db, 2025, ["form"])
    for row in by_form.cells(2025):
        parts = [c for c in cells if c.dims["form"] == row.dims["form"]]
        assert (row.individual, row.noisy) == (sum(c.individual for c in parts), sum(c.noisy for c in parts))
        assert row.variance == pytest.approx(5 * var)
    assert by_form.total(2025).estimate == total.estimate


def test_same_pseudonym_at_two_organisations_is_counted_once(db, orgs, tmp_path):
    shelter, helpline, police = orgs
    merge(
        db,
        bf.bundle_file(tmp_path, shelter, records=[bf.record("p1", form="sexual"), bf.record("p2")]),
        bf.bundle_file(tmp_path, police, records=[bf.record("p1", basis="statutory", form="labour")]),
    )
    table = national_table(db, 2025, ["form", "kind"])
    assert table.total(2025).individual == 2
    assert (table.linked_people, table.conflicting_people) == (1, 1)
    counts = {(r.dims["form"], r.dims["kind"]): r.individual for r in table.cells(2025) if r.individual}
    # the investigative organisation's record is kept for p1
    assert counts == {("labour", "investigative"): 1, ("sexual", "non_investigative"): 1}


def test_between_consent_organisations_the_latest_bundle_wins(db, orgs, tmp_path):
    shelter, helpline, _ = orgs
    merge(
        db,
        bf.bundle_file(tmp_path, shelter, records=[bf.record("p1", form="sexual")], created_at=bf.NOW - dt.timedelta(days=2)),
        bf.bundle_file(tmp_path, helpline, records=[bf.record("p1", form="criminal")], created_at=bf.NOW - dt.timedelta(days=1)),
    )
    table = national_table(db, 2025, ["form", "reporter_type"])
    kept = [(r.dims["form"], r.dims["reporter_type"]) for r in table.cells(2025) if r.individual]
    assert kept == [("criminal", "help_line")]


def test_people_are_counted_per_period(db, orgs, tmp_path):
    shelter, _, police = orgs
    merge(
        db,
        bf.bundle_file(tmp_path, shelter, period=2024, records=[bf.record("p1")]),
        bf.bundle_file(tmp_path, police, period=2025, records=[bf.record("p1", basis="statutory")]),
    )
    table = national_table(db, None, [])
    assert table.periods == [2024, 2025]
    assert [(r.period, r.individual, r.total) for r in table.rows] == [(2024, 1, True), (2025, 1, True)]


def test_higher_sequence_replaces_lower_in_the_table(db, orgs, tmp_path):
    shelter = orgs[0]
    one = bf.bundle_file(tmp_path, shelter, sequence=1, records=[bf.record(1), bf.record(2)],
                         marginals=[bf.marginal(["form"], "1/4", fill=5)])
    two = bf.bundle_file(tmp_path, shelter, sequence=2, records=[bf.record(3)],
                         marginals=[bf.marginal(["form"], "1/4", fill=1)])
    merge(db, one)
    assert national_table(db, 2025, ["form"]).total(2025).estimate == 2 + 25
    merge(db, two)
    table = national_table(db, 2025, ["form"])
    assert (table.total(2025).individual, table.total(2025).noisy) == (1, 5)
    assert [r.sequence for r in table.releases] == [2]


def test_withdrawal_removes_the_record_and_a_later_bundle_restores_it(db, orgs, tmp_path):
    shelter, helpline, _ = orgs
    t0 = bf.NOW - dt.timedelta(days=10)
    merge(db, bf.bundle_file(tmp_path, shelter, period=2025, records=[bf.record("p1"), bf.record("p2")], created_at=t0))
    # another organisation's withdrawal does not touch shelter's record
    merge(db, bf.bundle_file(tmp_path, helpline, period=2026, withdrawals=[(bf.pseudonym("p1"), 2025)], created_at=t0))
    assert national_table(db, 2025, []).total(2025).individual == 2
    merge(db, bf.bundle_file(tmp_path, shelter, period=2026, withdrawals=[(bf.pseudonym("p1"), 2025)],
                             created_at=t0 + dt.timedelta(days=1)))
    assert national_table(db, 2025, []).total(2025).individual == 1
    # a 2025 resubmission created after the withdrawal that sends p1 again brings it back
    merge(db, bf.bundle_file(tmp_path, shelter, period=2025, sequence=2, records=[bf.record("p1")],
                             created_at=t0 + dt.timedelta(days=2)))
    assert national_table(db, 2025, []).total(2025).individual == 1
    assert national_table(db, 2026, []).total(2026).individual == 0


def test_withdrawal_result_does_not_depend_on_arrival_order(tmp_path):
    results = []
    for order in (0, 1):
        db = tmp_path / f"n{order}.duckdb"
        shelter = bf.new_org("shelter-a")
        bf.register(db, shelter)
        t0 = bf.NOW - dt.timedelta(days=10)
        sent = bf.bundle_file(tmp_path / str(order), shelter, period=2025, records=[bf.record("p1"), bf.record("p2")], created_at=t0)
        withdrawn = bf.bundle_file(tmp_path / str(order), shelter, period=2026, withdrawals=[(bf.pseudonym("p1"), 2025)],
                                   created_at=t0 + dt.timedelta(days=1))
        for path in ([sent, withdrawn] if order == 0 else [withdrawn, sent]):
            merge(db, path)  # separate runs
        results.append(national_table(db, 2025, ["form"]).as_dict()["rows"])
    assert results[0] == results[1]
    assert results[0][-1]["individual"] == 1


def test_release_uses_its_lowest_variance_covering_marginal(db, orgs, tmp_path):
    shelter = orgs[0]
    one_way = bf.marginal(["form"], "1/4", fill=2)  # scale 4: variance ~31.8 per form cell
    two_way = bf.marginal(["form", "age_band"], "1/2", fill=1)  # scale 2: 5 x ~7.8 = ~39.2 per form cell
    merge(db, bf.bundle_file(tmp_path, shelter, marginals=[two_way, one_way]))
    by_form = national_table(db, 2025, ["form"])
    assert by_form.releases[0].marginal == ["form"]
    assert by_form.cells(2025)[0].noisy == 2
    # The consistent estimate combines both tables by inverse variance (consistency.py): better than either alone.
    assert by_form.cells(2025)[0].variance == pytest.approx(1 / (1 / bf.dlap_variance(4.0) + 1 / (5 * bf.dlap_variance(2.0))))
    by_age = national_table(db, 2025, ["age_band"])  # only the two-way marginal covers age band
    assert by_age.releases[0].marginal == ["form", "age_band"]
    assert by_age.cells(2025)[0].noisy == 5
    assert by_age.cells(2025)[0].variance <= 5 * bf.dlap_variance(2.0) + 1e-9


def test_each_release_uses_its_own_marginals_and_gaps_are_reported(db, orgs, tmp_path):
    shelter, helpline, _ = orgs
    merge(
        db,
        bf.bundle_file(tmp_path, shelter, marginals=[bf.marginal(["form", "age_band"], "1/2", fill=1)]),
        bf.bundle_file(tmp_path, helpline, marginals=[bf.marginal(["form"], "1/2", fill=3)]),
    )
    by_form = national_table(db, 2025, ["form"])
    assert {r.org: r.marginal for r in by_form.releases} == {"shelter-a": ["form", "age_band"], "help-b": ["form"]}
    assert [r.noisy for r in by_form.cells(2025)] == [5 + 3] * 5
    by_age = national_table(db, 2025, ["age_band"])
    assert [r.org for r in by_age.uncovered] == ["help-b"]
    assert by_age.notes and "help-b" in by_age.notes[0]
    assert [r.noisy for r in by_age.cells(2025)] == [5] * 5


def test_breakdown_by_organisation_attributes(db, orgs, tmp_path):
    shelter, helpline, police = orgs
    merge(
        db,
        bf.bundle_file(tmp_path, shelter, records=[bf.record(1)], marginals=[bf.marginal(["gender"], "1/2", fill=2)]),
        bf.bundle_file(tmp_path, helpline, marginals=[bf.marginal(["gender"], "1/2", fill=1)]),
        bf.bundle_file(tmp_path, police, records=[bf.record(2, basis="statutory"), bf.record(3, basis="statutory")]),
    )
    table = national_table(db, 2025, ["reporter_type"])
    got = {r.dims["reporter_type"]: (r.individual, r.noisy) for r in table.cells(2025)}
    assert got["police"] == (2, 0)
    assert got["shelter"] == (1, 8)
    assert got["help_line"] == (0, 4)
    assert got["municipality"] == (0, 0)
    assert table.total(2025).estimate == 3 + 12


def test_period_without_bundles_gives_zero_rows_and_a_note(db, orgs):
    table = national_table(db, 2030, ["gender"])
    assert [r.estimate for r in table.rows] == [0] * 5
    assert table.notes == ["no bundles for period 2030"]


def test_unknown_breakdown_is_a_usage_error(db, orgs):
    with pytest.raises(UsageError, match="unknown breakdown dimension") as refused:
        national_table(db, 2025, "form,shoe_size")
    assert refused.value.option == "by" and "--" not in refused.value.message  # the CLI names its own flag
    with pytest.raises(UsageError, match="twice"):
        national_table(db, 2025, "form,form")


def test_csv_is_excel_safe_and_labelled_in_dutch(db, orgs, tmp_path, monkeypatch):
    shelter = orgs[0]
    merge(db, bf.bundle_file(tmp_path, shelter, marginals=[bf.marginal(["form"], "1/2", fill=-4)]))
    table = national_table(db, 2025, ["form"])
    text = to_csv(table, "nl").decode("utf-8-sig")
    rows = list(csv.reader(io.StringIO(text)))
    assert rows[0][:3] == ["Periode", "Vorm van uitbuiting", "Individuele registraties"]
    assert rows[1][1] == "Seksuele uitbuiting" and rows[1][3] == "-4"  # numbers stay numbers
    assert rows[-1][1] == "Totaal"
    monkeypatch.setitem(HEADERS, "estimate", ("=HYPERLINK(\"x\")", "@SUM(A1)"))
    hostile = list(csv.reader(io.StringIO(to_csv(table, "en").decode("utf-8-sig"))))
    assert hostile[0][4] == "'=HYPERLINK(\"x\")"


def test_markdown_and_json_shapes(db, orgs, tmp_path):
    shelter = orgs[0]
    merge(db, bf.bundle_file(tmp_path, shelter, records=[bf.record(1)], marginals=[bf.marginal(["gender"], "1/2")]))
    table = national_table(db, 2025, ["gender"])
    md = to_markdown(table, "nl").splitlines()
    assert md[0].startswith("| Periode | Geslacht |") and len(md) == 2 + 4 + 1
    assert "| Vrouw | 1 | 0 | 1 |" in md[2]
    data = table.as_dict()
    assert data["by"] == ["gender"] and data["rows"][0]["dims"] == {"gender": "female"}
    assert data["rows"][-1]["total"] is True


def test_a_period_without_bundles_is_marked_empty(db, orgs, tmp_path):
    assert national_table(db, 2030, ["gender"]).empty
    shelter = orgs[0]
    merge(db, bf.bundle_file(tmp_path, shelter, records=[bf.record("p1")]))
    assert not national_table(db, 2025, ["gender"]).empty and not national_table(db, None, ["gender"]).empty


def test_a_withdrawal_names_the_sequence_it_withdraws_from_whatever_the_clocks(db, orgs, tmp_path):
    """The 2025 bundle's clock ran two days ahead of the withdrawal's: the withdrawal (of sequence 1) still applies.
    A 2025 resubmission (sequence 2) that sends p1 again is not touched by it, even though the withdrawal was signed
    later by the clock."""
    shelter = orgs[0]
    t0 = bf.NOW - dt.timedelta(days=10)
    merge(db, bf.bundle_file(tmp_path, shelter, period=2025, records=[bf.record("p1"), bf.record("p2")],
                             created_at=t0 + dt.timedelta(days=2)))
    merge(db, bf.bundle_file(tmp_path, shelter, period=2026, withdrawals=[(bf.pseudonym("p1"), 2025, 1)], created_at=t0))
    assert national_table(db, 2025, []).total(2025).individual == 1
    merge(db, bf.bundle_file(tmp_path, shelter, period=2025, sequence=2, records=[bf.record("p1")],
                             created_at=t0 + dt.timedelta(days=1)))
    merge(db, bf.bundle_file(tmp_path, shelter, period=2027, withdrawals=[(bf.pseudonym("p1"), 2025, 1)],
                             created_at=t0 + dt.timedelta(days=3)))
    assert national_table(db, 2025, []).total(2025).individual == 1
