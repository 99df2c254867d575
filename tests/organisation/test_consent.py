"""consent.py: the latest statement on consent decides; validate warns (counts only) about undated and conflicting
consent and about a mapping that cannot express consent."""

from __future__ import annotations

import datetime as dt
import json
from fractions import Fraction

import pytest

from aggregator.organisation.home import init_org, load_org
from aggregator.organisation.release import build_people, submit
from aggregator.organisation.validate import validate_export
from tests.orgfactory import CANARIES, CANARY_GIVEN, CANARY_ID, CANARY_NAME, COLUMNS, row, write_export

EXPORT_DATE = dt.date(2025, 12, 31)
KEY = b"test-linkage-key-0123456789"
YES = dict(consent="ja", consent_date="01-02-2025")


def _basis(tmp_path, rows, period=2025):
    home = tmp_path / "home"
    init_org("org-a", "non_investigative", reporter_type="shelter", home=home)
    export, mapping = write_export(tmp_path, rows)
    _, con = validate_export(export, mapping, export_date=EXPORT_DATE)
    build_people(con, load_org(home), period, EXPORT_DATE, KEY)
    return [b for (b,) in con.execute("SELECT basis FROM people").fetchall()]


@pytest.mark.parametrize(
    "rows, basis",
    [
        # the newest row says no: an earlier consent no longer counts
        ([row(3, report_date="01-02-2025", **YES), row(3, report_date="01-09-2025", consent="nee", consent_date="")], None),
        # the same, with the rows in the other order in the file
        ([row(3, report_date="01-09-2025", consent="nee", consent_date=""), row(3, report_date="01-02-2025", **YES)], None),
        # a newer valid consent after a no counts
        ([row(3, report_date="01-02-2025", consent="nee", consent_date=""),
          row(3, report_date="01-09-2025", consent="ja", consent_date="01-09-2025")], "consent"),
        # a newer row that says nothing about consent leaves the earlier consent standing
        ([row(3, report_date="01-02-2025", **YES), row(3, report_date="01-09-2025", consent="", consent_date="")], "consent"),
        # a newer "yes" without a date is the latest word and is no valid consent
        ([row(3, report_date="01-02-2025", **YES), row(3, report_date="01-09-2025", consent="ja", consent_date="")], None),
        # the same day says yes and no: no (the tie goes to the statement that releases nothing)
        ([row(3, report_date="01-09-2025", **YES), row(3, report_date="01-09-2025", consent="nee", consent_date="")], None),
        ([row(3, report_date="01-09-2025", consent="nee", consent_date=""), row(3, report_date="01-09-2025", **YES)], None),
        # a withdrawal recorded on the older row counts from its own date, after the newer row
        ([row(3, report_date="01-02-2025", **YES, consent_withdrawn_date="01-11-2025"),
          row(3, report_date="01-09-2025", **YES)], None),
    ],
)
def test_the_latest_statement_on_consent_decides(tmp_path, rows, basis):
    assert _basis(tmp_path, rows) == [basis]


def test_a_no_in_a_later_period_stops_the_record_of_an_earlier_period(tmp_path):
    """The person consented in 2024 and said no in 2025: a 2024 release at the end of 2025 no longer sends them."""
    rows = [row(3, report_date="01-02-2024", consent="ja", consent_date="01-02-2024"),
            row(3, report_date="01-09-2025", consent="nee", consent_date="")]
    assert _basis(tmp_path, rows, period=2024) == [None]


def _warnings(tmp_path, rows, columns=None):
    export, mapping = write_export(tmp_path, rows)
    if columns is not None:
        text = mapping.read_text(encoding="utf-8")
        for fname in set(COLUMNS) - set(columns):
            text = text.replace(f'{fname} = "{COLUMNS[fname]}"\n', "")
        mapping.write_text(text, encoding="utf-8")
    report, con = validate_export(export, mapping, export_date=EXPORT_DATE)
    con.close()
    return report


def test_validate_warns_with_counts_about_undated_and_conflicting_consent_without_values(tmp_path):
    canary = dict(family_name=CANARY_NAME, given_names=CANARY_GIVEN, person_id=CANARY_ID, record_id=CANARY_ID + "R")
    rows = [
        row(1, consent="ja", consent_date=""),  # yes without a date
        row(2, consent="ja", consent_date="", **canary),  # and another
        row(3, report_date="01-02-2025", **YES), row(3, report_date="01-09-2025", consent="nee", consent_date=""),
        row(5, report_date="01-02-2025", **YES, **{k: v + "2" for k, v in canary.items()}),
        row(5, report_date="01-09-2025", consent="nee", consent_date="", **{k: v + "2" for k, v in canary.items()}),
        row(6, **YES), row(7, consent="nee", consent_date=""),
        # a withdrawal after a consent is a change of mind, not a conflict
        row(8, report_date="01-02-2025", **YES), row(8, report_date="01-09-2025", **YES, consent_withdrawn_date="01-10-2025"),
    ]
    report = _warnings(tmp_path, rows)
    assert report.valid  # warnings, not errors
    by_rule = {w["rule"]: w for w in report.warnings}
    assert by_rule["consent-without-date"]["rows"] == 2
    assert by_rule["consent-without-date"]["field"] == "consent_date"
    assert by_rule["conflicting-consent"]["people"] == 2
    assert "latest" in by_rule["conflicting-consent"]["message"]
    text = json.dumps(report.as_dict())
    for canary_value in (*CANARIES, "P00001", "Testnaam1", "Voornaam3"):
        assert canary_value not in json.dumps(report.warnings), canary_value
    assert CANARY_NAME not in text and CANARY_ID not in text


def test_a_clean_export_has_no_consent_warnings(tmp_path):
    report = _warnings(tmp_path, [row(3, **YES), row(4, consent="nee", consent_date=""), row(5, consent="", consent_date="")])
    assert report.warnings == []


@pytest.mark.parametrize(
    "left_out, says",
    [
        (("consent", "consent_date", "consent_withdrawn_date"), "maps no consent"),
        (("consent_date",), "consent_date"),
        (("consent",), "consent"),
    ],
)
def test_a_mapping_without_the_consent_fields_says_that_only_statutory_records_can_leave(tmp_path, left_out, says):
    columns = [f for f in COLUMNS if f not in left_out]
    report = _warnings(tmp_path, [row(3, **YES)], columns=columns)
    assert report.valid
    mapping_warnings = [w for w in report.warnings if w["rule"] == "no-consent-mapping"]
    assert len(mapping_warnings) == 1
    message = mapping_warnings[0]["message"]
    assert says in message and "statutory" in message and "noisy counts" in message


def test_a_mapping_without_the_withdrawal_date_says_what_that_implies(tmp_path):
    report = _warnings(tmp_path, [row(3, **YES)], columns=[f for f in COLUMNS if f != "consent_withdrawn_date"])
    (w,) = [w for w in report.warnings if w["rule"] == "no-withdrawal-mapping"]
    assert "consent_withdrawn_date" in w["message"] and "newer row" in w["message"]


def test_submit_carries_the_consent_warnings(tmp_path):
    home = tmp_path / "home"
    init_org("org-a", "non_investigative", reporter_type="shelter", home=home)
    export, mapping = write_export(tmp_path, [row(1, consent="ja", consent_date=""), row(2, **YES)])
    result = submit(export, mapping, period=2025, epsilon=Fraction(1, 2), out=tmp_path / "out", home=home,
                    linkage_key=KEY, export_date=EXPORT_DATE, dry_run=True)
    assert [w["rule"] for w in result.warnings] == ["consent-without-date"]
    assert result.records_by_basis["consent"] == 1


def test_validate_cli_prints_the_consent_warnings_and_exits_0(tmp_path):
    from typer.testing import CliRunner

    from aggregator.cli import app
    from aggregator.cli import organisation  # noqa: F401  (registers the commands)

    export, mapping = write_export(tmp_path, [row(1, consent="ja", consent_date="", family_name=CANARY_NAME), row(2, **YES)])
    text = mapping.read_text(encoding="utf-8").replace(f'consent_date = "{COLUMNS["consent_date"]}"\n', "")
    mapping.write_text(text, encoding="utf-8")
    result = CliRunner().invoke(app, ["validate", str(export), "--mapping", str(mapping), "--export-date", "2025-12-31"],
                                env={"COLUMNS": "200"}, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "warning" in result.output and "statutory" in result.output
    assert "Traceback" not in result.output and CANARY_NAME not in result.output


def test_the_warning_counts_match_a_count_person_by_person():
    """row_warnings counts without grouping every person (a semi join); the counts are those of a plain count over
    each person's statements, on random rows with several statements per person."""
    import datetime as dt
    import random
    from types import SimpleNamespace

    import duckdb

    from aggregator.organisation.consent import row_warnings

    mapping = SimpleNamespace(columns={"consent": "c", "consent_date": "cd"})
    day = dt.date(2025, 1, 1)
    for seed in range(20):
        rnd = random.Random(seed)
        rows = []
        for i in range(300):
            consent = rnd.choice([True, False, None])
            rows.append((f"P{rnd.randrange(60)}", i, day + dt.timedelta(rnd.randrange(300)), consent,
                         day if rnd.random() < 0.5 else None, day if rnd.random() < 0.1 else None))
        con = duckdb.connect()
        con.execute("CREATE TEMP TABLE valid_rows (person_id VARCHAR, __row BIGINT, report_date DATE, consent BOOLEAN, "
                    "consent_date DATE, consent_withdrawn_date DATE)")
        con.executemany("INSERT INTO valid_rows VALUES (?, ?, ?, ?, ?, ?)", rows)

        def statement(r):
            if r[5] is not None:
                return "withdrawn"
            if r[3] is True:
                return "consent" if r[4] is not None else "undated"
            return "refused" if r[3] is False else None

        undated = sum(statement(r) == "undated" for r in rows)
        gives = {r[0] for r in rows if statement(r) in ("consent", "undated")}
        refuses = {r[0] for r in rows if statement(r) == "refused"}
        got = {w["rule"]: w for w in row_warnings(con, mapping)}
        assert (got["consent-without-date"]["rows"] if "consent-without-date" in got else 0) == undated
        assert (got["conflicting-consent"]["people"] if "conflicting-consent" in got else 0) == len(gives & refuses)
        assert len(gives & refuses) > 0 and undated > 0  # the draw exercises both counts
        con.close()
