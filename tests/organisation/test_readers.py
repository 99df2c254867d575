"""aggregator.readers: every format and encoding read as text with the right row numbers; bad input refused in one
line that never carries a cell value."""

from __future__ import annotations

import codecs
import datetime as dt
import os
import time
import zipfile
from pathlib import Path

import duckdb
import openpyxl
import pytest

from aggregator.errors import InputError
from aggregator.organisation.readers import detect_delimiter, MAX_FIELD_CHARS, read_export, ReadInfo
from aggregator.contract.schema import FileOptions

CANARY = "CANARY-Zq7x"  # planted in cells; must never appear in a message


@pytest.fixture
def con():
    connection = duckdb.connect()
    yield connection
    connection.close()


def rows(con, table="export_raw"):
    return con.execute(f'SELECT * FROM "{table}" ORDER BY __row').fetchall()


def columns_of(con, table="export_raw"):
    return [r[0] for r in con.execute(f'DESCRIBE "{table}"').fetchall()]


def refused(con, path, options=None) -> str:
    with pytest.raises(InputError) as caught:
        read_export(con, path, options)
    message = caught.value.message
    assert "\n" not in message
    assert CANARY not in message
    assert path.name in message
    return message


# ---------------------------------------------------------------- CSV


def test_csv_utf8_comma(con, tmp_path):
    path = tmp_path / "export.csv"
    path.write_text("id,Naam , Opmerking\n1,Zoë,\n2,André,\"twee, regels\nlang\"\n3,,x\n", encoding="utf-8")
    info = read_export(con, path)
    assert info == ReadInfo("export.csv", "csv", "utf-8", ",", 3, ["id", "Naam", "Opmerking"])
    assert columns_of(con) == ["__row", "id", "Naam", "Opmerking"]
    # A quoted field over two lines stays one row, as a spreadsheet shows it.
    assert rows(con) == [(2, "1", "Zoë", None), (3, "2", "André", "twee, regels\nlang"), (4, "3", None, "x")]
    types = {r[0]: r[1] for r in con.execute("DESCRIBE export_raw").fetchall()}
    assert types == {"__row": "BIGINT", "id": "VARCHAR", "Naam": "VARCHAR", "Opmerking": "VARCHAR"}
    assert info.as_dict() == {
        "path": "export.csv", "format": "csv", "encoding": "utf-8", "delimiter": ",", "rows": 3,
        "columns": ["id", "Naam", "Opmerking"],
    }


@pytest.mark.parametrize("delimiter", [",", ";", "\t", "|"])
def test_delimiter_detected(con, tmp_path, delimiter):
    path = tmp_path / "export.csv"
    lines = [["id", "naam", "datum"], ["1", "a b", "01-02-2025"], ["2", "c", "03-04-2025"]]
    path.write_text("\n".join(delimiter.join(r) for r in lines) + "\n", encoding="utf-8")
    info = read_export(con, path)
    assert info.delimiter == delimiter
    assert info.columns == ["id", "naam", "datum"]
    assert rows(con) == [(2, "1", "a b", "01-02-2025"), (3, "2", "c", "03-04-2025")]


def test_delimiter_prefers_consistent_split():
    # The header has one comma and two semicolons; the data rows agree with the semicolons only.
    text = "Naam;Adres, plaats;Datum\nA;Straat 1, Utrecht;1-1-2025\nB;Laan 2;2-1-2025\n"
    assert detect_delimiter(text) == ";"
    assert detect_delimiter("single\n1\n") == ","
    assert detect_delimiter("single\n1\n", default="\t") == "\t"


def test_delimiter_from_options_overrides(con, tmp_path):
    path = tmp_path / "export.txt"
    path.write_text("a;b|c\n1;2|3\n", encoding="utf-8")
    info = read_export(con, path, FileOptions(delimiter="|"))
    assert info.columns == ["a;b", "c"]
    assert rows(con) == [(2, "1;2", "3")]


def test_single_column_reports_the_delimiter_used(con, tmp_path):
    path = tmp_path / "export.csv"
    path.write_text("alleen\nx\ny\n", encoding="utf-8")
    info = read_export(con, path)
    assert (info.columns, info.delimiter, info.rows) == (["alleen"], ",", 2)


def test_utf8_bom(con, tmp_path):
    path = tmp_path / "export.csv"
    path.write_bytes("\ufeffCliëntnummer;Naam\n1;Zoë\n".encode())
    info = read_export(con, path)
    assert info.encoding == "utf-8-sig"
    assert info.columns == ["Cliëntnummer", "Naam"]
    assert rows(con) == [(2, "1", "Zoë")]


def test_cp1252_detected_and_transcoded(con, tmp_path):
    path = tmp_path / "export.csv"
    # € and ' are where Windows-1252 and Latin-1 differ.
    path.write_bytes("Cliëntnummer;Achternaam;Opmerkingen\n1;Müller-Hé;kost €5 ‘ok’\n2;Öztürk;\n".encode("cp1252"))
    info = read_export(con, path)
    assert (info.encoding, info.delimiter) == ("cp1252", ";")
    assert info.columns == ["Cliëntnummer", "Achternaam", "Opmerkingen"]
    assert rows(con) == [(2, "1", "Müller-Hé", "kost €5 ‘ok’"), (3, "2", "Öztürk", None)]


def test_cp1252_after_a_long_ascii_start(con, tmp_path):
    # The first 64 KiB is plain ASCII (looks like UTF-8); DuckDB meets the é later and the file is read again.
    path = tmp_path / "export.csv"
    body = "".join(f"{i};naam{i}\n" for i in range(2, 12_000))
    path.write_bytes(("id;naam\n" + body + "99999;Hélène\n").encode("cp1252"))
    assert path.stat().st_size > 64 * 1024
    info = read_export(con, path)
    assert info.encoding == "cp1252"
    assert info.rows == 11_999
    assert con.execute("SELECT __row, naam FROM export_raw WHERE id = '99999'").fetchall() == [(12_000, "Hélène")]


def test_encoding_from_options(con, tmp_path):
    path = tmp_path / "export.csv"
    path.write_bytes("a;b\n1;Cliënt\n".encode("cp1252"))
    info = read_export(con, path, FileOptions(encoding="cp1252", delimiter=";", format="csv"))
    assert (info.encoding, rows(con)) == ("cp1252", [(2, "1", "Cliënt")])
    info = read_export(con, path, FileOptions(encoding="latin-1"))
    assert (info.encoding, rows(con)) == ("latin-1", [(2, "1", "Cliënt")])


def test_wrong_encoding_in_options_is_refused(con, tmp_path):
    path = tmp_path / "export.csv"
    path.write_bytes(f"a;b\n1;{CANARY}\n2;Cliënt {CANARY}\n".encode("cp1252"))
    message = refused(con, path, FileOptions(encoding="utf-8"))
    assert "UTF-8" in message and "line 3" in message


def test_invalid_utf8_late_in_file_with_utf8_in_options(con, tmp_path):
    path = tmp_path / "export.csv"
    body = "".join(f"{i};{CANARY}\n" for i in range(8_000))
    path.write_bytes(("a;b\n" + body).encode() + f"1;{CANARY}\xe9\n".encode("cp1252"))
    message = refused(con, path, FileOptions(encoding="utf-8"))
    assert "UTF-8" in message


def test_utf16_with_bom(con, tmp_path):
    path = tmp_path / "export.txt"
    path.write_bytes("naam\tland\nZoë\tNL\n".encode("utf-16"))
    info = read_export(con, path)
    assert (info.encoding, info.delimiter, rows(con)) == ("utf-16", "\t", [(2, "Zoë", "NL")])


def test_crlf_and_empty_rows_keep_row_numbers(con, tmp_path):
    path = tmp_path / "export.csv"
    path.write_bytes(b'a;b;c\r\n1;x;y\r\n;;\r\n"";"";""\r\n4;;z\r\n')
    info = read_export(con, path)
    assert info.rows == 2
    assert rows(con) == [(2, "1", "x", "y"), (5, "4", None, "z")]


def test_table_name_and_replace(con, tmp_path):
    path = tmp_path / "export.csv"
    path.write_text('a,"we""ird"\n1,2\n', encoding="utf-8")
    read_export(con, path, table='my "table"')
    read_export(con, path, table='my "table"')
    assert columns_of(con, 'my ""table""') == ["__row", "a", 'we"ird']
    assert con.execute('SELECT count(*) FROM "my ""table"""').fetchone() == (1,)


def test_file_name_with_glob_characters(con, tmp_path):
    (tmp_path / "export 2.csv").write_text("other\nwrong\n", encoding="utf-8")
    path = tmp_path / "export [2].csv"
    path.write_text("right\nyes\n", encoding="utf-8")
    info = read_export(con, path)
    assert (info.path, info.columns, rows(con)) == ("export [2].csv", ["right"], [(2, "yes")])


def test_format_from_extension_and_unknown(con, tmp_path):
    path = tmp_path / "export.dat"
    path.write_text("a\n1\n", encoding="utf-8")
    assert "format" in refused(con, path)
    assert read_export(con, path, FileOptions(format="csv")).rows == 1
    macro = tmp_path / "export.xlsm"
    macro.write_bytes(b"PK\x03\x04")
    assert "macro" in refused(con, macro)


# ---------------------------------------------------------------- bad text input


def test_missing_file(con, tmp_path):
    assert "no such file" in refused(con, tmp_path / "export.csv")


@pytest.mark.parametrize("content", [b"", b"\n\n  \n", b"\xef\xbb\xbf"])
def test_empty_file(con, tmp_path, content):
    path = tmp_path / "export.csv"
    path.write_bytes(content)
    assert "empty" in refused(con, path)


def test_header_only(con, tmp_path):
    path = tmp_path / "export.csv"
    path.write_text("id;naam;datum\n", encoding="utf-8")
    assert refused(con, path) == "export.csv: has a header but no data rows"
    path.write_text("id;naam;datum\n;;\n\n", encoding="utf-8")
    assert refused(con, path) == "export.csv: has a header but no data rows"
    assert not con.execute("SELECT * FROM duckdb_tables() WHERE table_name LIKE 'export_raw%'").fetchall()
    assert not con.execute("SELECT * FROM duckdb_views() WHERE view_name = 'export_raw'").fetchall()


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("id;naam;;datum", "column 3 of the header has no name"),
        ("id;Naam;datum;naam", "column 2 and column 4 of the header have the same name 'naam'"),
        ("id; naam ;naam", "column 2 and column 3 of the header have the same name 'naam'"),
        ("id;__row", "reserved"),
    ],
)
def test_bad_header_names(con, tmp_path, header, expected):
    path = tmp_path / "export.csv"
    path.write_text(f"{header}\n1;{CANARY};{CANARY};{CANARY}\n", encoding="utf-8")
    assert expected in refused(con, path)


def test_wrong_field_count_names_the_line_not_the_content(con, tmp_path):
    path = tmp_path / "export.csv"
    path.write_text(f"id;naam\n1;{CANARY}\n2;{CANARY};{CANARY}\n", encoding="utf-8")
    message = refused(con, path)
    assert "line 3 has 3 fields but the header has 2" in message
    assert "semicolon" in message


def test_unterminated_quote(con, tmp_path):
    path = tmp_path / "export.csv"
    path.write_text(f'id,naam\n1,"{CANARY}\n2,{CANARY}\n', encoding="utf-8")
    assert "never closed" in refused(con, path)


def test_field_too_long(con, tmp_path):
    path = tmp_path / "export.csv"
    path.write_text(f"id,notes\n1,ok\n2,{CANARY * (MAX_FIELD_CHARS // len(CANARY) + 1)}\n", encoding="utf-8")
    message = refused(con, path)
    assert "row 3, column 'notes'" in message and "longer than" in message
    path.write_text(f"id,notes\n1,{CANARY * 300_000}\n", encoding="utf-8")  # beyond DuckDB's line limit
    assert "line 2" in refused(con, path)


def test_too_many_columns(con, tmp_path):
    path = tmp_path / "export.csv"
    path.write_text(",".join(f"c{i}" for i in range(16_385)) + "\n" + "1," * 16_384 + "1\n", encoding="utf-8")
    assert "16,385 columns" in refused(con, path)


def test_binary_renamed_csv_fails_fast(con, tmp_path):
    path = tmp_path / "export.csv"
    with path.open("wb") as fh:
        fh.write(os.urandom(1024 * 1024))
        fh.truncate(50 * 1024 * 1024)
    started = time.perf_counter()
    message = refused(con, path)
    assert time.perf_counter() - started < 2
    assert "does not look like a text export" in message


def test_binary_without_nul_bytes(con, tmp_path):
    path = tmp_path / "export.csv"
    path.write_bytes(bytes(range(1, 256)) * 200_000)  # invalid as UTF-8 and as Windows-1252 (0x81)
    started = time.perf_counter()
    assert "does not look like a text export" in refused(con, path)
    assert time.perf_counter() - started < 2


def test_workbook_renamed_csv(con, tmp_path):
    source = tmp_path / "book.xlsx"
    wb = openpyxl.Workbook()
    wb.active.append(["a"])
    wb.active.append([CANARY])
    wb.save(source)
    path = tmp_path / "export.csv"
    path.write_bytes(source.read_bytes())
    assert "xlsx" in refused(con, path)
    assert read_export(con, path, FileOptions(format="xlsx")).rows == 1


# ---------------------------------------------------------------- XLSX


def make_workbook(path: Path, rows_: list[list], title: str = "Export", extra_sheet: bool = False) -> Path:
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.title = title
    for row in rows_:
        ws.append(row)
    if extra_sheet:
        other = wb.create_sheet("Tweede")
        other.append(["x", "y"])
        other.append([1, 2])
    wb.save(path)
    return path


def test_xlsx_values_and_row_numbers(con, tmp_path):
    path = make_workbook(
        tmp_path / "export.xlsx",
        [
            ["Chat-ID", " Leeftijd ", "Datum", "Toestemming", "Score", "Opmerking"],
            ["c-1", 14, dt.datetime(2025, 3, 1), True, 3.0, "Zoë"],
            [None, None, None, None, None, None],
            ["c-3", 16.0, dt.date(2025, 3, 2), False, 0.25, ""],
            ["c-4", "17", dt.datetime(2025, 3, 3, 14, 30), None, -2, "=1+1"],
        ],
    )
    info = read_export(con, path)
    assert info == ReadInfo("export.xlsx", "xlsx", None, None, 3, ["Chat-ID", "Leeftijd", "Datum", "Toestemming", "Score", "Opmerking"])
    assert rows(con) == [
        (2, "c-1", "14", "2025-03-01", "TRUE", "3", "Zoë"),
        (4, "c-3", "16", "2025-03-02", "FALSE", "0.25", None),
        # A formula is never evaluated: without a cached value the cell is empty.
        (5, "c-4", "17", "2025-03-03 14:30:00", None, "-2", None),
    ]


def test_xlsx_sheet_by_name_and_missing(con, tmp_path):
    path = make_workbook(tmp_path / "export.xlsx", [["a"], [1]], extra_sheet=True)
    read_export(con, path, FileOptions(sheet="Tweede"))
    assert rows(con) == [(2, "1", "2")]
    message = refused(con, path, FileOptions(sheet="Derde"))
    assert "no sheet named 'Derde'" in message and "Export, Tweede" in message


def test_xlsx_header_below_a_margin(con, tmp_path):
    wb = openpyxl.Workbook()
    ws = wb.active
    ws["B3"], ws["C3"] = "id", "naam"
    ws["B4"], ws["C4"] = 1, "Zoë"
    ws["B9"] = 2
    ws["C12"] = "   "  # whitespace is a value, like in a CSV
    wb.save(tmp_path / "export.xlsx")
    info = read_export(con, tmp_path / "export.xlsx")
    assert info.columns == ["id", "naam"]
    assert rows(con) == [(4, "1", "Zoë"), (9, "2", None), (12, None, "   ")]


@pytest.mark.parametrize(
    ("cell", "expected"),
    [("A5", "row 5 has a value in column A, left of the first named header column"),
     ("E6", "row 6 has a value in column E, beyond the last named header column")],
)
def test_xlsx_values_outside_the_header(con, tmp_path, cell, expected):
    wb = openpyxl.Workbook()
    ws = wb.active
    ws["B1"], ws["C1"], ws["D1"] = "id", "naam", "x"
    ws["B2"] = 1
    ws[cell] = CANARY
    wb.save(tmp_path / "export.xlsx")
    assert expected in refused(con, tmp_path / "export.xlsx")


def test_xlsx_bad_headers_name_the_column_letter(con, tmp_path):
    path = make_workbook(tmp_path / "export.xlsx", [["id", None, "naam"], [1, CANARY, CANARY]])
    assert "column B of the header has no name" in refused(con, path)
    path = make_workbook(tmp_path / "export.xlsx", [["id", "Naam", "naam"], [1, CANARY, CANARY]])
    assert "column B and column C of the header have the same name 'naam'" in refused(con, path)


def test_xlsx_header_only_and_empty(con, tmp_path):
    path = make_workbook(tmp_path / "export.xlsx", [["id", "naam"], [None, None]])
    assert refused(con, path) == "export.xlsx: has a header but no data rows"
    path = make_workbook(tmp_path / "empty.xlsx", [])
    assert "empty" in refused(con, path)


def test_xlsx_bomb_is_refused_before_inflating(con, tmp_path):
    path = tmp_path / "export.xlsx"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("[Content_Types].xml", "<Types/>")
        with zf.open("xl/worksheets/sheet1.xml", "w", force_zip64=True) as member:
            block = b" " * (1024 * 1024)
            for _ in range(40):
                member.write(block)
    assert path.stat().st_size < 1024 * 1024
    started = time.perf_counter()
    message = refused(con, path)
    assert time.perf_counter() - started < 1
    assert "decompression bomb" in message


def test_xlsx_with_macros_is_refused(con, tmp_path):
    path = make_workbook(tmp_path / "export.xlsx", [["a"], [1]])
    with zipfile.ZipFile(path, "a") as zf:
        zf.writestr("xl/vbaProject.bin", b"\x00" * 16)
    assert "macros" in refused(con, path)


def test_xlsx_damaged(con, tmp_path):
    path = tmp_path / "export.xlsx"
    path.write_bytes(b"PK\x03\x04" + CANARY.encode() * 10)
    assert "not a valid .xlsx" in refused(con, path)
    path.write_text(f"a,b\n1,{CANARY}\n", encoding="utf-8")
    assert "not an .xlsx workbook" in refused(con, path)
    path.write_bytes(b"\xd0\xcf\x11\xe0" + b"\x00" * 100)
    assert ".xls" in refused(con, path)


# ---------------------------------------------------------------- Parquet


def test_parquet_cast_to_text(con, tmp_path):
    path = tmp_path / "export.parquet"
    con.execute(
        f"""
        COPY (
            SELECT * FROM (VALUES
                (7, 'Zoë', DATE '1990-02-03', TIMESTAMP '2025-01-02 03:04:05', 1.50::DECIMAL(5, 2), NULL::VARCHAR, true),
                (8, '', NULL, NULL, NULL, 'x', false)
            ) AS t(id, "Naam", geboren, gemeld, bedrag, leeg, toestemming)
        ) TO '{path}' (FORMAT parquet)
        """
    )
    info = read_export(con, path)
    assert info == ReadInfo("export.parquet", "parquet", None, None, 2, ["id", "Naam", "geboren", "gemeld", "bedrag", "leeg", "toestemming"])
    assert rows(con) == [
        (1, "7", "Zoë", "1990-02-03", "2025-01-02 03:04:05", "1.50", None, "true"),
        (2, "8", None, None, None, None, "x", "false"),
    ]


@pytest.mark.parametrize("nested", ["[1, 2]", "{'a': 1}", "MAP {'k': 1}"])
def test_parquet_nested_refused(con, tmp_path, nested):
    path = tmp_path / "export.parquet"
    con.execute(f"COPY (SELECT '{CANARY}' AS id, {nested} AS extra) TO '{path}' (FORMAT parquet)")
    assert "column 2 ('extra') holds nested values" in refused(con, path)


def test_parquet_not_parquet(con, tmp_path):
    path = tmp_path / "export.parquet"
    path.write_text(f"a\n{CANARY}\n", encoding="utf-8")
    assert "not a Parquet file" in refused(con, path)
    path.write_bytes(b"PAR1" + CANARY.encode() * 20)
    assert refused(con, path) == "export.parquet: could not be read as PARQUET"


# ---------------------------------------------------------------- JSON


def test_json_lines(con, tmp_path):
    path = tmp_path / "export.jsonl"
    path.write_text(
        '{"id": 1, "naam": "Zoë", "leeftijd": 14, "toestemming": true, "x/y~": null}\n'
        '{"id": "2", "naam": "", "extra": 1.5}\n',
        encoding="utf-8",
    )
    info = read_export(con, path)
    assert info == ReadInfo("export.jsonl", "json", "utf-8", None, 2, ["id", "naam", "leeftijd", "toestemming", "x/y~", "extra"])
    assert rows(con) == [(1, "1", "Zoë", "14", "true", None, None), (2, "2", None, None, None, None, "1.5")]


def test_json_array_and_cp1252(con, tmp_path):
    path = tmp_path / "export.json"
    path.write_bytes('[{"id": 1, "naam": "Cliënt €"},\n {"id": 2}]'.encode("cp1252"))
    info = read_export(con, path)
    assert (info.encoding, rows(con)) == ("cp1252", [(1, "1", "Cliënt €"), (2, "2", None)])


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (f'{{"id": 1, "naam": "{CANARY}"}}\n{{"id": 2, "naam": {{"first": "{CANARY}"}}}}\n', "record 2, key 'naam' holds a nested"),
        (f'[{{"id": 1, "tags": ["{CANARY}"]}}]', "record 1, key 'tags' holds a nested"),
        (f'[{{"id": 1}}, "{CANARY}"]', "record 2 is not a JSON object"),
        (f'{{"id": 1, "naam": "{CANARY}"}}\n{{"id": 2, "naam": {CANARY}}}\n', "is not valid JSON"),
        (f'"{CANARY}"', "is not JSON lines or a JSON array"),
        ("[]", "has no records"),
        (f'[{{"naam": 1}}, {{"Naam": "{CANARY}"}}]', "key 1 and key 2 of the records have the same name 'Naam'"),
    ],
)
def test_json_refused(con, tmp_path, text, expected):
    path = tmp_path / "export.json"
    path.write_text(text, encoding="utf-8")
    assert expected in refused(con, path)


def test_json_binary(con, tmp_path):
    path = tmp_path / "export.json"
    path.write_bytes(b"\x00\x01" * 1000)
    assert "does not look like a text export" in refused(con, path)


# ---------------------------------------------------------------- the shipped examples

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def load_mapping(folder: str):
    import tomllib

    from aggregator.contract.schema import Mapping

    return Mapping.model_validate(tomllib.loads((EXAMPLES / folder / "mapping.toml").read_text(encoding="utf-8")))


@pytest.mark.parametrize(
    ("folder", "export", "expected"),
    [
        ("police-oost", "export-2025.csv", ("csv", "utf-8", ",", 296)),
        ("shelter-noord", "export-2025.csv", ("csv", "cp1252", ";", 118)),
        ("shelter-noord", "export-2025-clean.csv", ("csv", "cp1252", ";", 115)),
        ("helpline-chat", "export-2025.xlsx", ("xlsx", None, None, 284)),
    ],
)
def test_examples_read_with_their_mapping(con, folder, export, expected):
    mapping = load_mapping(folder)
    info = read_export(con, EXAMPLES / folder / export, mapping.file)
    assert (info.format, info.encoding, info.delimiter, info.rows) == expected
    assert set(mapping.columns.values()) <= set(info.columns)
    # Detection alone finds the same (the help line needs its sheet name: the first sheet is an explanation).
    if info.format == "csv":
        assert read_export(con, EXAMPLES / folder / export) == info


def test_example_people_known_to_police_and_shelter(con):
    read_export(con, EXAMPLES / "police-oost" / "export-2025.csv", table="police")
    read_export(con, EXAMPLES / "shelter-noord" / "export-2025-clean.csv", table="shelter")
    shared = con.execute(
        """
        SELECT count(*) FROM (SELECT DISTINCT "Surname", "First names", "Date of birth" FROM police) AS p
        JOIN (SELECT DISTINCT "Achternaam", "Voornamen", strftime(strptime("Geboortedatum", '%d-%m-%Y'), '%Y-%m-%d') AS born
              FROM shelter) AS s
        ON p."Surname" = s."Achternaam" AND p."First names" = s."Voornamen" AND p."Date of birth" = s.born
        """
    ).fetchone()
    assert shared == (24,)
    accented = con.execute("SELECT count(*) FROM shelter WHERE regexp_matches(\"Voornamen\", '[éëïá]')").fetchone()
    assert accented[0] > 0


def test_examples_are_reproducible(tmp_path, monkeypatch):
    import importlib.util
    import sys

    spec = importlib.util.spec_from_file_location("make_examples", EXAMPLES / "make_examples.py")
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "make_examples", module)  # dataclasses look their module up
    spec.loader.exec_module(module)
    written = module.build(tmp_path)
    assert len(written) == 4
    for path in written:
        committed = EXAMPLES / path.relative_to(tmp_path)
        assert path.read_bytes() == committed.read_bytes(), f"{committed} is stale: run examples/make_examples.py"


def test_blank_lines_above_the_header(con, tmp_path):
    path = tmp_path / "export.csv"
    path.write_bytes(b"\r\n  \r\nid;naam\r\n1;a\r\n2;b\r\n")
    info = read_export(con, path)
    assert (info.columns, rows(con)) == (["id", "naam"], [(4, "1", "a"), (5, "2", "b")])
    path.write_bytes(b"\n \r\n\nid;naam\n1;a\n")
    assert "mix line-ending styles" in refused(con, path)


def test_bom_then_invalid_utf8_is_refused_not_reread(con, tmp_path):
    path = tmp_path / "export.csv"
    body = "".join(f"{i};{CANARY}\n" for i in range(8_000))
    path.write_bytes(codecs.BOM_UTF8 + ("a;b\n" + body).encode() + f"1;{CANARY}\xe9\n".encode("cp1252"))
    assert "UTF-8" in refused(con, path)


def test_error_inside_a_callers_transaction_stays_an_input_error(con, tmp_path):
    path = tmp_path / "export.csv"
    path.write_text(f"id;naam\n1;{CANARY}\n2;{CANARY};{CANARY}\n", encoding="utf-8")
    con.execute("BEGIN")
    assert "line 3 has 3 fields" in refused(con, path)
    con.execute("ROLLBACK")
