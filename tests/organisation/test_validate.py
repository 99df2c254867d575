"""validate.py: DuckDB verdicts, pydantic explanations, helpful messages, no identifying values in the report."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aggregator.util.engine import connect
from aggregator.errors import MappingError
from aggregator.contract.schema import Mapping, Registration
from aggregator.organisation.validate import (
    check_export, compiled_rules, field_specs, normalised_rows, pydantic_verdict, validate_export, value_lookups,
    write_errors_csv,
)
from tests.orgfactory import CANARIES, canary_rows, row, write_export

EXPORT_DATE = dt.date(2025, 12, 31)


def test_field_specs_follow_the_model():
    specs = {s.name: s for s in field_specs()}
    assert set(specs) == set(Registration.model_fields)
    assert specs["age"].kind == "int" and (specs["age"].ge, specs["age"].le) == (0, 120)
    assert specs["record_id"].required and specs["record_id"].max_length == 64 and specs["record_id"].identifying
    assert specs["form"].codes == ("sexual", "labour", "criminal", "organ_removal", "other_unknown")
    assert specs["consent"].kind == "bool" and specs["report_date"].kind == "date"


def test_valid_export_passes(tmp_path):
    export, mapping = write_export(tmp_path, [row(i) for i in range(30)])
    report, con = validate_export(export, mapping, export_date=EXPORT_DATE)
    assert (report.rows_read, report.rows_valid, report.rows_invalid) == (30, 30, 0)
    assert report.valid and report.errors == []
    assert con.execute("SELECT count(*) FROM valid_rows").fetchone()[0] == 30
    # Dutch labels were mapped onto codes.
    forms = {r[0] for r in con.execute("SELECT DISTINCT form FROM valid_rows").fetchall()}
    assert forms == {"sexual", "labour", "criminal", "other_unknown"}
    nats = {r[0] for r in con.execute("SELECT DISTINCT nationality FROM valid_rows").fetchall()}
    assert nats == {"NL", "PL", "NG", None}


@pytest.mark.parametrize(
    "overrides, field, rule",
    [
        ({"age": "130"}, "age", "out-of-range"),
        ({"age": "twelve"}, "age", "not-an-integer"),
        ({"report_date": "31-02-2025"}, "report_date", "not-a-date"),
        ({"report_date": ""}, "report_date", "required"),
        ({"record_id": ""}, "record_id", "required"),
        ({"record_id": "R" * 65}, "record_id", "too-long"),
        ({"form": "mensenroof"}, "form", "unknown-code"),
        ({"gender": "zeker"}, "gender", "unknown-code"),
        ({"nationality": "Atlantis"}, "nationality", "not-iso-3166"),
        ({"nationality": "XK"}, "nationality", "not-iso-3166"),
        ({"consent": "misschien"}, "consent", "not-yes-no"),
        ({"consent_date": "01-01-2026"}, "consent_date", "after-export-date"),
        ({"date_of_birth": "01-01-1850"}, "date_of_birth", "date-too-early"),
        ({"date_of_birth": "01-12-2025", "report_date": "01-06-2025"}, "date_of_birth", "date-order"),
        ({"consent_date": "01-06-2025", "consent_withdrawn_date": "01-05-2025"}, "consent_withdrawn_date", "date-order"),
        ({"province": "Atlantis"}, "province", "unknown-code"),
    ],
)
def test_each_rule_is_reported(tmp_path, overrides, field, rule):
    export, mapping = write_export(tmp_path, [row(1), row(2, **overrides), row(3)])
    report, _ = validate_export(export, mapping, export_date=EXPORT_DATE)
    assert (report.rows_read, report.rows_invalid) == (3, 1)
    assert (3, field, rule) in {(e.row, e.field, e.rule) for e in report.errors}
    assert report.errors_by_rule[rule] >= 1
    assert all(e.row == 3 for e in report.errors)  # row numbers as a person sees them: header is row 1


def test_unknown_value_suggests_mapping_line_and_nearest_codes(tmp_path):
    export, mapping = write_export(tmp_path, [row(1, form="seksuele uitbuiten"), row(2, form="arbeid uitbuiting")])
    report, _ = validate_export(export, mapping, export_date=EXPORT_DATE)
    entries = {e["value"]: e for e in report.unknown_values["form"]}
    assert entries["seksuele uitbuiten"]["closest_codes"][0] == "sexual"
    assert entries["arbeid uitbuiting"]["closest_codes"][0] == "labour"
    assert entries["seksuele uitbuiten"]["mapping_line"] == '[values.form] "seksuele uitbuiten" = "sexual"'


def test_missing_column_names_the_mapping_entry(tmp_path):
    export, mapping = write_export(tmp_path, [row(1)])
    text = mapping.read_text().replace('family_name = "Achternaam"', 'family_name = "Achternam"')
    mapping.write_text(text)
    with pytest.raises(MappingError) as err:
        validate_export(export, mapping, export_date=EXPORT_DATE)
    assert '[columns] family_name = "Achternam"' in err.value.message
    assert "'Achternaam'" in err.value.message


def test_mapping_without_required_field_is_refused(tmp_path):
    export, mapping = write_export(tmp_path, [row(1)])
    mapping.write_text(mapping.read_text().replace('report_date = "Meldingsdatum"\n', ""))
    with pytest.raises(MappingError, match="report_date"):
        validate_export(export, mapping, export_date=EXPORT_DATE)


def test_report_and_errors_csv_carry_no_identifying_value(tmp_path):
    export, mapping = write_export(tmp_path, [row(1)] + canary_rows())
    report, _ = validate_export(export, mapping, export_date=EXPORT_DATE)
    assert report.rows_invalid == 4
    text = json.dumps(report.as_dict())
    csv_path = tmp_path / "errors.csv"
    write_errors_csv(report, csv_path)
    for canary in CANARIES:
        assert canary not in text
        assert canary not in csv_path.read_text(encoding="utf-8-sig")


def test_errors_csv_is_formula_safe(tmp_path):
    export, mapping = write_export(tmp_path, [row(1, form="=HYPERLINK(\"x\")")])
    report, _ = validate_export(export, mapping, export_date=EXPORT_DATE)
    csv_path = tmp_path / "errors.csv"
    write_errors_csv(report, csv_path)
    for line in csv_path.read_text(encoding="utf-8-sig").splitlines()[1:]:
        for cell in line.split(","):
            assert not cell.startswith(("=", "+", "-", "@"))


def test_explanations_are_capped_but_every_row_is_counted(tmp_path):
    export, mapping = write_export(tmp_path, [row(i, age="200") for i in range(40)])
    report, _ = validate_export(export, mapping, export_date=EXPORT_DATE, max_explained=5)
    assert report.rows_invalid == 40 and report.errors_total == 40
    assert len(report.errors) == 5 and report.truncated
    assert report.as_dict()["truncated"] is True


# ---------------------------------------------------------------- DuckDB and pydantic agree

FIELDS = list(Registration.model_fields)
# Boundary-heavy values: each rule's edge is drawn often, so a rule dropped on either side is found quickly.
dates = st.one_of(
    st.sampled_from(["1899-12-31", "1900-01-01", "2025-06-01", "2025-12-31", "2026-01-01", "2025-02-30", "31-12-2025", "x"]),
    st.just("2026-01-01"),
    st.dates(min_value=dt.date(1850, 1, 1), max_value=dt.date(2030, 12, 31)).map(dt.date.isoformat),
)
texts = st.one_of(st.sampled_from(["", "  ", "a", "r" * 64, "r" * 65]), st.text(min_size=0, max_size=3))
VALUE_STRATEGIES = {
    "record_id": texts,
    "person_id": texts,
    "family_name": st.one_of(st.none(), st.sampled_from(["", "x" * 200, "x" * 201]), st.text(max_size=4)),
    "given_names": st.one_of(st.none(), st.sampled_from(["", "y" * 200, "y" * 201]), st.text(max_size=4)),
    "date_of_birth": st.one_of(st.none(), dates),
    "age": st.one_of(st.none(), st.sampled_from(["-1", "0", "120", "121", "abc", "1.5", " 7 ", "99999999999"])),
    "report_date": dates,
    "form": st.sampled_from(["sexual", "labour", "criminal", "organ_removal", "other_unknown", "Seksuele uitbuiting", "x", ""]),
    "gender": st.one_of(st.none(), st.sampled_from(["female", "male", "vrouw", "M", "zzz", "unknown"])),
    "nationality": st.one_of(st.none(), st.sampled_from(["NL", "nl", "PL", "XK", "ZZ", "Nederlandse", "N", "NLD", "de"])),
    "province": st.one_of(st.none(), st.sampled_from(["NL-ZH", "Utrecht", "NL-XX", "unknown"])),
    "consent": st.one_of(st.none(), st.sampled_from(["ja", "nee", "true", "0", "maybe"])),
    "consent_date": st.one_of(st.none(), dates),
    "consent_withdrawn_date": st.one_of(st.none(), dates, st.just("2025-05-31")),
    "notes": st.one_of(st.none(), st.sampled_from(["", "n" * 4000, "n" * 4001]), st.text(max_size=4)),
}
VALID_ROW = {
    "record_id": "R1", "person_id": "P1", "family_name": "Jansen", "given_names": "Eva", "date_of_birth": "2001-05-04",
    "age": "24", "report_date": "2025-06-01", "form": "sexual", "gender": "female", "nationality": "NL",
    "province": "NL-UT", "consent": "ja", "consent_date": "2025-06-01", "consent_withdrawn_date": None, "notes": "n",
}
# Mostly one or two broken fields on a valid row, so that dropping any single rule on either side changes a verdict.
mutated_row = st.lists(
    st.one_of(*[st.tuples(st.just(f), VALUE_STRATEGIES[f]) for f in FIELDS]), min_size=1, max_size=2
).map(lambda pairs: {**VALID_ROW, **dict(pairs)})
rows_strategy = st.lists(mutated_row, min_size=1, max_size=40)


def _agreement(rows: list[dict]) -> list[tuple[int, bool, dict]]:
    con = connect(memory_limit="512MB")
    cols = ", ".join(f'"{f}" VARCHAR' for f in FIELDS)
    con.execute(f"CREATE TEMP TABLE export_raw (__row BIGINT, {cols})")
    con.executemany(
        f"INSERT INTO export_raw VALUES (?, {', '.join('?' for _ in FIELDS)})",
        [[i + 2] + [r.get(f) for f in FIELDS] for i, r in enumerate(rows)],
    )
    mapping = Mapping(columns={f: f for f in FIELDS}, date_formats=["%Y-%m-%d"])
    check_export(con, mapping, EXPORT_DATE, source_columns=FIELDS)
    duck = dict(con.execute("SELECT __row, len(violations) = 0 FROM verdicts").fetchall())
    values = normalised_rows(con, list(duck))
    out = []
    for r, duck_ok in duck.items():
        verdict = pydantic_verdict(values[r], EXPORT_DATE)
        out.append((r, duck_ok, verdict))
    con.close()
    return out


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rows_strategy)
def test_duckdb_and_pydantic_verdicts_agree(rows):
    for r, duck_ok, verdict in _agreement(rows):
        assert duck_ok == (not verdict), f"row {r}: duckdb valid={duck_ok}, pydantic says {verdict}"


def test_compiled_rules_cover_field_and_model_constraints():
    """The compiled list holds the model's field constraints and its validators; the property test above is what
    fails when a rule is dropped on either side."""
    rules = {(rule, field) for rule, field, _ in compiled_rules(field_specs())}
    assert ("required", "report_date") in rules and ("out-of-range", "age") in rules
    assert ("not-iso-3166", "nationality") in rules and ("date-order", "date_of_birth") in rules
    assert len(rules) >= 25


def test_value_lookups_hold_only_values_the_map_changes_however_many_distinct_values_an_export_has():
    """A code column full of distinct free text (a mapping pointing at the wrong column) must not bring every value
    into Python or into the SQL: only values the value map changes come back."""
    con = connect(memory_limit="512MB")
    con.execute("CREATE TEMP TABLE export_raw AS SELECT range + 2 AS __row, 'free text ' || range AS form, "
                "CASE WHEN range % 2 = 0 THEN 'Vrouw' ELSE 'male' END AS gender FROM range(20000)")
    columns = {"form": "form", "gender": "gender", "person_id": "form", "report_date": "form"}
    mapping = Mapping(columns=columns, date_formats=["%Y-%m-%d"])
    lookups = value_lookups(con, mapping, field_specs())
    assert lookups == {"form": {}, "gender": {"Vrouw": "female"}}  # "male" is already the code
    con.close()
