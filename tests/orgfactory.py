"""Small organisation exports built in tmp_path, with planted canary values in every identifying field."""

from __future__ import annotations

import csv
from pathlib import Path

CANARY_NAME = "Zyxwquorth"
CANARY_GIVEN = "Qvalmira"
CANARY_DOB = "1911-11-11"
CANARY_ID = "CANARYID7731"
CANARY_NOTE = "canary-note-secret-4471"

COLUMNS = {
    "record_id": "Dossier",
    "person_id": "Client",
    "family_name": "Achternaam",
    "given_names": "Voornamen",
    "date_of_birth": "Geboortedatum",
    "age": "Leeftijd",
    "report_date": "Meldingsdatum",
    "form": "Vorm",
    "gender": "Geslacht",
    "nationality": "Nationaliteit",
    "province": "Provincie",
    "consent": "Toestemming",
    "consent_date": "Datum toestemming",
    "consent_withdrawn_date": "Intrekking",
    "notes": "Opmerkingen",
}

MAPPING = """
date_formats = ["%d-%m-%Y", "%Y-%m-%d"]

[file]
delimiter = ";"

[columns]
{columns}

[values.nationality]
"poolse" = "PL"
"nigeriaanse" = "NG"
"""


def mapping_text() -> str:
    return MAPPING.format(columns="\n".join(f'{k} = "{v}"' for k, v in COLUMNS.items()))


def row(i: int, **overrides: str) -> dict[str, str]:
    """A valid Dutch-style row; person i."""
    forms = ["seksuele uitbuiting", "arbeidsuitbuiting", "criminele uitbuiting", "overig"]
    base = {
        "record_id": f"D{i:05d}",
        "person_id": f"P{i:05d}",
        "family_name": f"Testnaam{i}",
        "given_names": f"Voornaam{i}",
        "date_of_birth": f"{(i % 28) + 1:02d}-0{(i % 9) + 1}-{1970 + i % 40}",
        "age": "",
        "report_date": f"{(i % 28) + 1:02d}-0{(i % 9) + 1}-2025",
        "form": forms[i % len(forms)],
        "gender": ["vrouw", "man"][i % 2],
        "nationality": ["Nederlandse", "Poolse", "Nigeriaanse", ""][i % 4],
        "province": ["Groningen", "NL-ZH", ""][i % 3],
        "consent": ["ja", "nee", "nee"][i % 3],
        "consent_date": f"01-01-2025" if i % 3 == 0 else "",
        "consent_withdrawn_date": "",
        "notes": "vrije tekst",
    }
    base.update(overrides)
    return base


def write_export(folder: Path, rows: list[dict[str, str]], name: str = "export.csv") -> tuple[Path, Path]:
    """Write a ';' separated UTF-8 export and its mapping; returns (export, mapping)."""
    folder.mkdir(parents=True, exist_ok=True)
    export = folder / name
    with export.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh, delimiter=";")
        writer.writerow(COLUMNS.values())
        for r in rows:
            writer.writerow([r.get(k, "") for k in COLUMNS])
    mapping = folder / "mapping.toml"
    mapping.write_text(mapping_text(), encoding="utf-8")
    return export, mapping


def canary_rows() -> list[dict[str, str]]:
    """Rows carrying canaries: valid ones and failing ones (bad age, consent after export, unknown form)."""
    return [
        row(9001, family_name=CANARY_NAME, given_names=CANARY_GIVEN, date_of_birth="11-11-1911",
            record_id=CANARY_ID, person_id=CANARY_ID + "P", notes=CANARY_NOTE),
        row(9002, family_name=CANARY_NAME, notes=CANARY_NOTE, age="130", record_id=CANARY_ID + "X"),
        row(9003, family_name=CANARY_NAME + "B", consent="ja", consent_date="01-01-2099", notes=CANARY_NOTE),
        row(9004, family_name=CANARY_NAME + "C", form="mensenroof", notes=CANARY_NOTE),
        row(9005, family_name="x" * 300, given_names=CANARY_GIVEN, notes=CANARY_NOTE),
    ]


CANARIES = (CANARY_NAME, CANARY_GIVEN, CANARY_DOB, "11-11-1911", CANARY_ID, CANARY_NOTE)
