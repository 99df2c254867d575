"""Writing one organisation's export: canonical rows, rendered in its own values, as CSV, JSONL, XLSX or Parquet.

Every writer gives the same bytes for the same rows: fixed zip entry times in XLSX, one DuckDB thread for Parquet.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import random
import re
import unicodedata
import zipfile
from pathlib import Path

from .organisations import OrgSpec
from .population import Person
from .styles import NOTES, Style, _nationality_label, _province_label


# ------------------------------------------------------------------------------------------------ writing exports

def _local_id(org: OrgSpec, year: int, index: int) -> str:
    """A person's id in the organisation's own style."""
    prefix = org.id.split("-")[0][:3].upper()
    return f"{prefix}-{year % 100:02d}-{index:05d}"


def _org_rows(org: OrgSpec, style: Style, people: list[Person], year: int, rng: random.Random) -> list[dict]:
    """Canonical rows (schema field -> Python value) for one organisation, in intake order."""
    rows = []
    mine = [(p, c) for p in people for c in p.contacts if c.org == org.id]
    mine.sort(key=lambda pc: (pc[1].dates[0], pc[0].key))
    for index, (p, c) in enumerate(mine, start=1):
        person_id = _local_id(org, year, index)
        if org.profile == "help_line":
            person_id = f"s{rng.getrandbits(48):012x}"
        for d in c.dates:
            rows.append({
                "record_id": "",
                "person_id": person_id,
                "family_name": None if org.profile == "help_line" else p.family_name,
                "given_names": None if org.profile == "help_line" else p.given_names,
                "date_of_birth": None if org.profile == "help_line" else p.date_of_birth,
                "age": p.age,
                "report_date": d,
                "form": p.form,
                "gender": p.gender,
                "nationality": p.nationality,
                "province": p.province,
                "consent": c.consent,
                "consent_date": c.consent_date,
                "consent_withdrawn_date": c.withdrawn_date,
                "notes": rng.choice(NOTES[style.notes_lang]) if rng.random() < 0.6 else None,
            })
    rows.sort(key=lambda r: (r["report_date"], r["person_id"]))
    prefix = org.id.split("-")[0][:3].upper()
    for n, row in enumerate(rows, start=1):
        row["record_id"] = f"{prefix}{year}{n:05d}"
    return rows


def _render(style: Style, row: dict, rng: random.Random, mode: str) -> dict[str, object]:
    """One canonical row in the organisation's own values.

    mode "text": every value a string ("" when empty) - CSV and text-only spreadsheets;
    mode "json": dates as text, age as a number, null when empty;
    mode "typed": dates, numbers and booleans as such, None when empty - Parquet and typed spreadsheets.
    """
    out: dict[str, object] = {}
    for name, header in style.columns.items():
        value = row[name]
        if name in ("date_of_birth", "report_date", "consent_date", "consent_withdrawn_date"):
            if value is None or mode == "typed":
                rendered: object = value
            else:
                fmt = style.date_format
                if style.legacy_date_format and rng.random() < 0.2:
                    fmt = style.legacy_date_format
                rendered = value.strftime(fmt)
        elif name == "form":
            rendered = style.form.get(value, value)
        elif name == "gender":
            rendered = style.gender.get(value, value) if style.gender else (None if value == "unknown" else value)
        elif name == "nationality":
            rendered = _nationality_label(style, value)
        elif name == "province":
            rendered = _province_label(style, value)
        elif name == "consent":
            if style.consent_bool:
                rendered = value
            else:
                rendered = None if value is None else style.consent[0] if value else style.consent[1]
        elif name in ("family_name", "given_names"):
            rendered = value
            if value is not None:
                if name == "family_name" and style.family_upper:
                    rendered = value.upper()
                if style.decomposed:
                    rendered = unicodedata.normalize("NFD", rendered)
        elif name == "age":
            rendered = str(value) if (mode == "text" and value is not None) else value
        else:
            rendered = value
        if mode == "text" and rendered is None:
            rendered = ""
        elif mode != "text" and rendered == "":
            rendered = None
        out[header] = rendered
    return out


def _write_csv(path: Path, style: Style, rendered: list[dict]) -> None:
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer, delimiter=style.delimiter, lineterminator=style.line_end, quoting=csv.QUOTE_MINIMAL)
    headers = list(style.columns.values())
    writer.writerow(headers)
    for row in rendered:
        writer.writerow([row[h] for h in headers])
    path.write_bytes(buffer.getvalue().encode(style.encoding))


def _write_jsonl(path: Path, style: Style, rendered: list[dict]) -> None:
    lines = []
    for row in rendered:
        lines.append(json.dumps(row, ensure_ascii=False))
    path.write_bytes(("\n".join(lines) + "\n").encode("utf-8"))


def _write_xlsx(path: Path, style: Style, org: OrgSpec, rendered: list[dict], year: int) -> None:
    from openpyxl import Workbook

    workbook = Workbook()
    stamp = dt.datetime(year, 12, 31, 17, 0, 0)
    workbook.properties.creator = org.name
    workbook.properties.created = stamp
    workbook.properties.modified = stamp
    sheet = workbook.active
    if style.cover_sheet:
        sheet.title = "Uitleg"
        sheet.append([f"Export {org.name} {year}"])
        sheet.append(["Gegevens staan op het tabblad " + (style.sheet or "")])
        sheet = workbook.create_sheet(style.sheet or "Sheet2")
    else:
        sheet.title = style.sheet or "Sheet1"
    headers = list(style.columns.values())
    sheet.append(headers)
    for row in rendered:
        sheet.append([row[h] for h in headers])
    if style.typed_dates:
        for column in sheet.iter_cols(min_row=2):
            for cell in column:
                if isinstance(cell.value, dt.date):
                    cell.number_format = "DD-MM-YYYY"
    buffer = io.BytesIO()
    workbook.save(buffer)
    path.write_bytes(_fixed_zip_times(buffer.getvalue(), stamp))


def _fixed_zip_times(data: bytes, stamp: dt.datetime) -> bytes:
    """Rewrite a zip (XLSX) with fixed entry times, and openpyxl's save time replaced, so a seed gives the same bytes."""
    source = zipfile.ZipFile(io.BytesIO(data))
    target_buffer = io.BytesIO()
    with zipfile.ZipFile(target_buffer, "w", zipfile.ZIP_DEFLATED) as target:
        for info in source.infolist():
            content = source.read(info.filename)
            if info.filename == "docProps/core.xml":
                content = re.sub(
                    rb"(<dcterms:modified[^>]*>)[^<]*(</dcterms:modified>)",
                    rb"\g<1>" + stamp.strftime("%Y-%m-%dT%H:%M:%SZ").encode() + rb"\g<2>",
                    content,
                )
            fixed = zipfile.ZipInfo(info.filename, date_time=stamp.timetuple()[:6])
            fixed.compress_type = zipfile.ZIP_DEFLATED
            fixed.external_attr = info.external_attr
            target.writestr(fixed, content)
    return target_buffer.getvalue()


PARQUET_TYPES = {
    "date_of_birth": "DATE", "report_date": "DATE", "consent_date": "DATE", "consent_withdrawn_date": "DATE",
    "age": "INTEGER", "consent": "BOOLEAN",
}


def _write_parquet(con, path: Path, style: Style, rendered: list[dict]) -> None:
    from ..util.engine import quote_ident

    headers = list(style.columns.items())
    selects = []
    params = {}
    for i, (name, header) in enumerate(headers):
        params[f"c{i}"] = [row[header] for row in rendered]
        sql_type = PARQUET_TYPES.get(name, "VARCHAR")
        selects.append(f"unnest($c{i}::{sql_type}[]) AS {quote_ident(header)}")
    con.execute("CREATE OR REPLACE TEMP TABLE synth_export AS SELECT " + ", ".join(selects), params)
    con.execute(f"COPY synth_export TO '{_sql_path(path)}' (FORMAT parquet)")
    con.execute("DROP TABLE synth_export")


def _sql_path(path: Path) -> str:
    return str(path).replace("'", "''")
