"""validate.py with csvfile.CsvScan: a CSV export is validated in one pass over the file, never copied as text, and
says exactly what the staged read says: the same verdicts, row numbers, messages and refusals."""

from __future__ import annotations

import csv
import datetime as dt

import pytest

from aggregator.errors import InputError
from aggregator.organisation.csvfile import csv_scan
from aggregator.organisation.mapping import load_mapping
from aggregator.organisation.validate import check_export, validate_export
from aggregator.util.engine import connect
from tests.orgfactory import CANARIES, COLUMNS, canary_rows, row, write_export

EXPORT_DATE = dt.date(2025, 12, 31)


def _staged(export, mapping, monkeypatch):
    """validate_export as it ran before the one pass: read_export's stage first."""
    with monkeypatch.context() as patch:
        patch.setattr("aggregator.organisation.csvfile.csv_scan", lambda *args, **kwargs: None)
        return validate_export(export, mapping, export_date=EXPORT_DATE)


def _staged_was_used(con) -> bool:
    return bool(con.execute("SELECT count(*) FROM duckdb_tables() WHERE table_name = 'export_raw__cells'").fetchone()[0])


def _write(path, lines: list[str], encoding="utf-8") -> None:
    path.write_bytes("".join(lines).encode(encoding))


def test_a_valid_csv_export_is_read_once_and_never_staged(tmp_path):
    export, mapping = write_export(tmp_path, [row(i) for i in range(40)])
    report, con = validate_export(export, mapping, export_date=EXPORT_DATE)
    assert report.valid and report.rows_read == 40
    assert not _staged_was_used(con)
    assert report.file["rows"] == 40 and report.file["format"] == "csv" and report.file["delimiter"] == ";"


def test_row_numbers_follow_the_file_on_a_large_parallel_read(tmp_path):
    """35 MB makes DuckDB read in parallel; the pass stores rows in file order (a join in it broke that: most rows
    got another row's number). An all-empty row in the middle keeps the numbers of the rows after it."""
    export, mapping = write_export(tmp_path, [])
    bad = {7, 150_001, 299_998}  # data rows with an age that is not a number
    blank_after = 200_000
    with export.open("a", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh, delimiter=";")
        for i in range(300_000):
            values = row(i, notes="x" * 60, age="twelve" if i in bad else "")
            writer.writerow([values.get(k, "") for k in COLUMNS])
            if i == blank_after:
                writer.writerow([""] * len(COLUMNS))
    assert export.stat().st_size > 30_000_000

    def row_number(i: int) -> int:  # header is row 1
        return i + 2 + (i > blank_after)

    report, con = validate_export(export, mapping, export_date=EXPORT_DATE)
    assert report.rows_read == 300_000 and report.rows_invalid == len(bad)
    assert [e.row for e in report.errors] == sorted(row_number(i) for i in bad)
    assert {e.rule for e in report.errors} == {"not-an-integer"}
    wrong = con.execute(
        f"""SELECT count(*) FROM typed
            WHERE __row <> CAST(substr(person_id, 2) AS BIGINT) + 2 + (CAST(substr(person_id, 2) AS BIGINT) > {blank_after})::INT"""
    ).fetchone()[0]
    assert wrong == 0
    # `aggregator validate` first stores the rows in any order (faster); a failing row sends it back to file order
    report_only, _ = validate_export(export, mapping, export_date=EXPORT_DATE, report_only=True)
    assert report_only.as_dict() == report.as_dict()


def test_a_valid_export_is_reported_alike_from_rows_stored_in_any_order(tmp_path):
    rows = [row(i) for i in range(30)] + [row(48, consent="ja", consent_date="")]  # valid, with a consent warning
    export, mapping = write_export(tmp_path, rows)
    in_order, _ = validate_export(export, mapping, export_date=EXPORT_DATE)
    any_order, con = validate_export(export, mapping, export_date=EXPORT_DATE, report_only=True)
    assert in_order.valid and in_order.warnings
    assert any_order.as_dict() == in_order.as_dict()
    # the connection is left in file order for whatever runs on it next
    assert con.execute("SELECT current_setting('preserve_insertion_order')").fetchone()[0] is True


def test_the_one_pass_and_the_staged_read_say_the_same(tmp_path, monkeypatch):
    rows = [row(i) for i in range(30)] + canary_rows() + [
        row(40, age="130"), row(41, nationality="Atlantis"), row(42, consent="misschien"),
        row(43, report_date="31-02-2025"), row(44, record_id=""), row(45, province="Limburg "),
        row(46, gender=" vrouw"), row(47, consent_withdrawn_date="01-01-2024", consent="ja", consent_date="01-06-2024"),
        row(48, consent="ja", consent_date=""),  # a consent without a date: a warning
    ]
    export, mapping = write_export(tmp_path, rows)
    text = export.read_text(encoding="utf-8").splitlines(keepends=True)
    # two blank lines above the header and an all-empty row among the data
    export.write_text("\n\n" + "".join(text[:10]) + ";" * (len(COLUMNS) - 1) + "\n" + "".join(text[10:]), encoding="utf-8")
    one_pass, con = validate_export(export, mapping, export_date=EXPORT_DATE)
    assert not one_pass.valid
    staged, staged_con = _staged(export, mapping, monkeypatch)
    assert _staged_was_used(staged_con)
    assert one_pass.as_dict() == staged.as_dict()
    query = "SELECT * FROM valid_rows ORDER BY __row"
    assert con.execute(query).fetchall() == staged_con.execute(query).fetchall()
    # pydantic's explanations need the texts, which come from the file staged after the pass, by row number
    assert "Input should be less than or equal to 120" in {e.message for e in one_pass.errors if e.field == "age"}
    for canary in CANARIES:
        assert canary not in str(one_pass.as_dict())
    # `aggregator validate` wants the report only: the pass keeps fewer fields and says the same
    report_only, narrow = validate_export(export, mapping, export_date=EXPORT_DATE, report_only=True)
    assert report_only.as_dict() == one_pass.as_dict()
    assert report_only.warnings and report_only.unknown_values  # consent warnings and suggestions read the rows
    kept = {name for (name,) in narrow.execute("SELECT column_name FROM (DESCRIBE valid_rows)").fetchall()}
    assert "family_name" not in kept and "date_of_birth" not in kept and "consent_date" in kept


def test_a_value_over_the_length_limit_is_refused_as_the_staged_read_refuses_it(tmp_path, monkeypatch):
    rows = [row(i) for i in range(5)]
    rows[3]["notes"] = "n" * 100_001
    export, mapping = write_export(tmp_path, rows)
    with pytest.raises(InputError) as one_pass:
        validate_export(export, mapping, export_date=EXPORT_DATE)
    with pytest.raises(InputError) as staged:
        _staged(export, mapping, monkeypatch)
    assert str(one_pass.value) == str(staged.value)
    assert "row 5" in str(one_pass.value) and "Opmerkingen" in str(one_pass.value)
    # out of file order the row (too long for notes too) stops the pass, and the staged read refuses the file alike
    with pytest.raises(InputError) as report_only:
        validate_export(export, mapping, export_date=EXPORT_DATE, report_only=True)
    assert str(report_only.value) == str(staged.value)


def test_a_late_windows_1252_byte_is_read_again_as_windows_1252(tmp_path):
    export, mapping = write_export(tmp_path, [row(i) for i in range(3000)] + [row(3000, notes="caf\u00e9 \u20ac")])
    export.write_bytes(export.read_text(encoding="utf-8").encode("cp1252"))  # one non-ASCII row, after 64 KiB
    report, _ = validate_export(export, mapping, export_date=EXPORT_DATE)
    assert report.valid and report.rows_read == 3001
    assert report.file["encoding"] == "cp1252"


def test_a_header_without_rows_is_refused(tmp_path):
    export, mapping = write_export(tmp_path, [])
    with pytest.raises(InputError, match="has a header but no data rows"):
        validate_export(export, mapping, export_date=EXPORT_DATE)


def test_a_broken_line_is_named_by_number_without_its_content(tmp_path, monkeypatch):
    export, mapping = write_export(tmp_path, [row(i) for i in range(5)] + canary_rows())
    lines = export.read_text(encoding="utf-8").splitlines(keepends=True)
    lines.insert(4, ";".join([CANARIES[0], CANARIES[4], *["extra"] * 15]) + "\n")
    export.write_text("".join(lines), encoding="utf-8")
    with pytest.raises(InputError) as caught:
        validate_export(export, mapping, export_date=EXPORT_DATE)
    message = str(caught.value)
    assert "line 5 has" in message and "fields but the header has 15" in message
    with pytest.raises(InputError) as staged:
        _staged(export, mapping, monkeypatch)
    assert message == str(staged.value)
    assert not any(canary in message for canary in CANARIES)


def test_a_file_that_changes_between_the_reads_is_refused(tmp_path):
    export, mapping_path = write_export(tmp_path, [row(i) for i in range(5)])
    mapping = load_mapping(mapping_path)
    scan = csv_scan(export, mapping.file)
    assert scan is not None
    with export.open("a", encoding="utf-8") as fh:
        fh.write(";".join(row(99).get(k, "") for k in COLUMNS) + "\r\n")  # csv.writer ends lines so
    with pytest.raises(InputError, match="changed while it was being read"):
        check_export(connect(), mapping, EXPORT_DATE, source_columns=scan.info.columns, scan=scan)


def test_files_the_pass_cannot_read_in_place_go_the_staged_way(tmp_path):
    export, mapping = write_export(tmp_path, [row(i, notes="\u20ac") for i in range(3)], name="export [2025].csv")
    options = load_mapping(mapping).file
    assert csv_scan(export, options) is None  # DuckDB would take the name for a glob pattern
    cp1252 = tmp_path / "cp1252.csv"
    cp1252.write_bytes(export.read_text(encoding="utf-8").encode("cp1252"))  # the euro sign is byte 0x80
    assert csv_scan(cp1252, options) is None  # transcoded first
    report, con = validate_export(cp1252, mapping, export_date=EXPORT_DATE)
    assert report.valid and report.file["encoding"] == "cp1252" and _staged_was_used(con)


@pytest.mark.parametrize("in_sql", [True, False])
def test_many_distinct_values_are_settled_alike_through_sql_or_a_join(tmp_path, monkeypatch, in_sql):
    """The fields of the value map are mapped and checked once per distinct value after the pass: up to
    MAX_MAPPED_IN_SQL values through a MAP in the SQL, more through a join; both must say the same."""
    from aggregator.organisation import validate as validate_module

    rows = [row(i, nationality=f"Land{i:04d}" if i % 2 else ["Nederlandse", "Poolse", "pl", " NG "][i // 2 % 4])
            for i in range(2400)]
    export, mapping = write_export(tmp_path, rows)
    monkeypatch.setattr(validate_module, "MAX_MAPPED_IN_SQL", 10_000 if in_sql else 10)
    report, con = validate_export(export, mapping, export_date=EXPORT_DATE)
    assert report.rows_invalid == 1200 and report.errors_by_rule == {"not-iso-3166": 1200}
    assert sorted({e.row for e in report.errors})[:3] == [3, 5, 7]  # the odd data rows; the header is row 1
    nationalities = dict(con.execute("SELECT nationality, count(*) FROM valid_rows GROUP BY ALL").fetchall())
    assert nationalities == {"NL": 300, "PL": 600, "NG": 300}


@pytest.mark.parametrize("encoding", ["utf-8-sig", "utf-16", "latin-1"])
def test_other_encodings_duckdb_reads_natively_are_validated_in_one_pass(tmp_path, monkeypatch, encoding):
    rows = [row(i, notes="caf\u00e9") for i in range(30)] + [row(30, age="twelve")]
    export, mapping = write_export(tmp_path, rows)
    export.write_bytes(export.read_text(encoding="utf-8").encode(encoding))
    assert csv_scan(export, load_mapping(mapping).file) is not None
    one_pass, _ = validate_export(export, mapping, export_date=EXPORT_DATE)
    staged, _ = _staged(export, mapping, monkeypatch)
    assert one_pass.as_dict() == staged.as_dict()
    assert one_pass.rows_read == 31 and [e.row for e in one_pass.errors] == [32]


def test_counting_failing_rows_without_explaining_them_never_stages_the_file(tmp_path):
    """submit only counts failing rows (it sends the user to `aggregator validate`): the same counts, nothing staged."""
    rows = [row(i) for i in range(30)] + canary_rows() + [row(40, age="130"), row(41, nationality="Atlantis")]
    export, mapping = write_export(tmp_path, rows)
    explained, explained_con = validate_export(export, mapping, export_date=EXPORT_DATE)
    counted, con = validate_export(export, mapping, export_date=EXPORT_DATE, explain=False)
    assert not _staged_was_used(con)
    assert explained.errors and not counted.errors and not counted.unknown_values
    for key in ("rows_read", "rows_valid", "rows_invalid", "errors_by_rule", "errors_total", "warnings"):
        assert getattr(counted, key) == getattr(explained, key), key
    query = "SELECT * FROM valid_rows ORDER BY __row"
    assert con.execute(query).fetchall() == explained_con.execute(query).fetchall()
