"""Dutch exports as case systems write them: BRP nationality words and codes, no record id, a columns-only mapping."""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import json

from typer.testing import CliRunner

from aggregator.cli import app, register_commands
from aggregator.contract.codelists import ISO_3166_ALPHA2, nationality_group
from aggregator.contract.envelope import open_envelope, parse_payload
from aggregator.contract.nationalities import BRP_TABLE, brp_table, nationality_aliases
from aggregator.organisation.mapping import NO_RECORD_ID_NOTE
from aggregator.organisation.validate import validate_export

register_commands()
EXPORT_DATE = dt.date(2026, 1, 15)
HEADERS = ["Cliënt", "Achternaam", "Voornamen", "Geboortedatum", "Meldingsdatum", "Vorm", "Geslacht",
           "Nationaliteit", "Provincie", "Toestemming", "Datum toestemming"]
COLUMNS_ONLY = """date_formats = ["%d-%m-%Y"]

[columns]
person_id = "Cliënt"
family_name = "Achternaam"
given_names = "Voornamen"
date_of_birth = "Geboortedatum"
report_date = "Meldingsdatum"
form = "Vorm"
gender = "Geslacht"
nationality = "Nationaliteit"
province = "Provincie"
consent = "Toestemming"
consent_date = "Datum toestemming"
"""
# What Dutch case systems write: BRP descriptions, four-digit BRP codes (also without the zeros a spreadsheet drops).
NATIONALITIES = {
    "Poolse": "PL", "Marokkaanse": "MA", "Roemeense": "RO", "Nigeriaanse": "NG", "Nederlandse": "NL",
    "Bulgaarse": "BG", "Eritrese": "ER", "Brits burger": "GB", "0072": "PL", "0131": "MA", "137": "NG",
    "Staatloos": None, "Onbekend": None,
}


def write(tmp_path, nationalities, forms=None):
    export = tmp_path / "export.csv"
    with export.open("w", encoding="cp1252", newline="") as fh:
        w = csv.writer(fh, delimiter=";")
        w.writerow(HEADERS)
        for i, nat in enumerate(nationalities):
            form = (forms or ["seksuele uitbuiting", "arbeidsuitbuiting"])[i % len(forms or [0, 0])]
            consent = i % 2 == 0
            w.writerow([f"C{i:04d}", f"Proefberg{i}", f"Anna{i}", f"{i % 28 + 1:02d}-03-199{i % 10}", "01-06-2025",
                        form, "vrouw", nat, "Groningen", "ja" if consent else "nee", "01-06-2025" if consent else ""])
    mapping = tmp_path / "mapping.toml"
    mapping.write_text(COLUMNS_ONLY, encoding="utf-8")
    return export, mapping


def test_the_brp_table_is_the_published_copy_and_its_iso_mapping_is_sound():
    assert hashlib.sha256(BRP_TABLE.read_bytes()).hexdigest() == (
        "ab35e37f74b4f9ad69571b6726bfe8c380b694b18b24ee87343423deae990bd7"
    )
    table = brp_table()
    assert len(table) == 217 and len({code for code, _, _ in table}) == 217
    assert all(iso == "" or iso in ISO_3166_ALPHA2 for _, _, iso in table)
    mapped = {code: iso for code, _, iso in table}
    assert mapped["0001"] == "NL" and mapped["0072"] == "PL" and mapped["0087"] == "" and mapped["0499"] == ""
    assert sum(1 for iso in mapped.values() if iso) == 208
    aliases = nationality_aliases()
    for word, iso in NATIONALITIES.items():
        assert aliases.get(word.lower(), "?") == (iso or ""), word


def test_dutch_export_with_brp_words_and_no_record_id_validates_and_submits(tmp_path):
    words = list(NATIONALITIES) * 3
    export, mapping = write(tmp_path, words)
    report, con = validate_export(export, mapping, export_date=EXPORT_DATE)
    con.close()
    assert report.valid and report.rows_read == len(words), report.errors[:3]
    assert report.unknown_values == {} and report.notes == [NO_RECORD_ID_NOTE]

    env = {"AGGREGATOR_LINKAGE_KEY": "a-linkage-key-for-this-test-only"}
    runner = CliRunner()
    home = tmp_path / "home"
    assert runner.invoke(app, ["org", "init", "--org", "shelter-a", "--kind", "non_investigative",
                               "--reporter-type", "shelter", "--home", str(home)], env=env).exit_code == 0
    shown = runner.invoke(app, ["validate", str(export), "-m", str(mapping), "--export-date", "2026-01-15"], env=env)
    assert shown.exit_code == 0 and "no record_id column" in " ".join(shown.output.split())
    submitted = runner.invoke(app, ["submit", str(export), "-m", str(mapping), "--period", "2025", "--home", str(home),
                                    "--out", str(tmp_path / "out"), "--export-date", "2026-01-15", "--json"], env=env)
    assert submitted.exit_code == 0, submitted.output
    result = json.loads(submitted.stdout)
    payload = parse_payload(open_envelope((tmp_path / "out" / f"{result['digest']}.bundle.json").read_bytes()))
    consented = [w for i, w in enumerate(words) if i % 2 == 0]
    expected = sorted(nationality_group(NATIONALITIES[w]) for w in consented)
    assert sorted(r.nationality_group.value for r in payload.records) == expected
    assert "C0000" not in submitted.output and "Proefberg" not in submitted.output


def test_an_unknown_nationality_word_is_named_with_the_mapping_line_to_add(tmp_path):
    export, mapping = write(tmp_path, ["Poolse", "Poolsche", "Poolsche", "Atlantische"])
    report, con = validate_export(export, mapping, export_date=EXPORT_DATE)
    con.close()
    assert report.rows_invalid == 3
    entries = {e["value"]: e for e in report.unknown_values["nationality"]}
    assert entries["Poolsche"]["rows"] == 2 and entries["Poolsche"]["closest_codes"] == ["PL"]
    assert entries["Poolsche"]["mapping_line"] == '[values.nationality] "Poolsche" = "PL"'
    assert entries["Atlantische"]["closest_codes"] == [] and "Tabel 32" in entries["Atlantische"]["reason"]
    assert entries["Atlantische"]["mapping_line"] == '[values.nationality] "Atlantische" = ""'


def test_a_label_that_is_no_form_of_exploitation_is_not_suggested_by_spelling(tmp_path):
    export, mapping = write(tmp_path, ["Poolse"] * 3, forms=["mensensmokkel", "seksuele uitbuiten", "loverboy"])
    report, con = validate_export(export, mapping, export_date=EXPORT_DATE)
    con.close()
    entries = {e["value"]: e for e in report.unknown_values["form"]}
    smuggling = entries["mensensmokkel"]
    assert smuggling["closest_codes"] == [] and "sexual" not in smuggling["mapping_line"]
    assert smuggling["mapping_line"] == '[values.form] "mensensmokkel" = "other_unknown"'
    assert "smuggling" in smuggling["reason"] and "spelling" in smuggling["reason"]
    assert entries["loverboy"]["closest_codes"] == []
    assert entries["seksuele uitbuiten"]["closest_codes"] == ["sexual"]  # a typo still gets its code


def test_consent_is_never_suggested_from_spelling(tmp_path):
    export, mapping = write(tmp_path, ["Poolse"])
    text = export.read_text(encoding="cp1252").replace(";ja;", ";jaa;")
    export.write_text(text, encoding="cp1252")
    report, con = validate_export(export, mapping, export_date=EXPORT_DATE)
    con.close()
    (entry,) = report.unknown_values["consent"]
    assert entry["closest_codes"] == [] and entry["mapping_line"] == '[values.consent] "jaa" = ""'


def test_a_bad_date_is_explained_in_the_mappings_own_format(tmp_path):
    export, mapping = write(tmp_path, ["Poolse", "Poolse"])
    text = export.read_text(encoding="cp1252").replace("01-06-2025", "31-02-2025", 1)
    export.write_text(text, encoding="cp1252")
    report, con = validate_export(export, mapping, export_date=EXPORT_DATE)
    con.close()
    (error,) = [e for e in report.errors if e.rule == "not-a-date"]
    assert "DD-MM-YYYY" in error.message and "does not exist" in error.message
    assert "YYYY-MM-DD" not in error.message and "31-02-2025" not in error.message


def test_an_export_date_that_does_not_exist_says_so(tmp_path):
    from aggregator.errors import UsageError
    from aggregator.util.clock import parse_day

    import pytest

    with pytest.raises(UsageError, match="2026-02-30 does not exist: February 2026 has 28 days"):
        parse_day("2026-02-30")
    with pytest.raises(UsageError, match="no month 13"):
        parse_day("2026-13-01")
    with pytest.raises(UsageError, match="YYYY-MM-DD"):
        parse_day("30-02-2026")
    assert parse_day("2024-02-29") == dt.date(2024, 2, 29)
    export, mapping = write(tmp_path, ["Poolse"])
    result = CliRunner().invoke(app, ["validate", str(export), "-m", str(mapping), "--export-date", "2026-02-30"])
    assert result.exit_code == 2 and result.stdout == ""
    assert "--export-date: 2026-02-30 does not exist" in " ".join(result.stderr.split())
