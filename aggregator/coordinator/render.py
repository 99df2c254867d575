"""Rendering the national table for people: headers, display rows, Excel-safe CSV, Markdown (CLI and report)."""

from __future__ import annotations

from typing import Any

from ..contract.codelists import dimension_label, label
from .national import NationalTable

HEADERS = {
    "individual": ("Individual records", "Individuele registraties"),
    "noisy": ("Noisy counts (DP)", "Ruisgetallen (DP)"),
    "estimate": ("Estimate", "Schatting"),
    "se": ("Standard error", "Standaardfout"),
    "lower": ("95% lower", "95% ondergrens"),
    "upper": ("95% upper", "95% bovengrens"),
    "total": ("Total", "Totaal"),
    "joint": ("Joint estimate (distinct people)", "Gezamenlijke schatting (unieke personen)"),
    "joint_se": ("Joint standard error", "Gezamenlijk standaardfout"),
    "joint_lower": ("Joint 95% lower", "Gezamenlijk 95% ondergrens"),
    "joint_upper": ("Joint 95% upper", "Gezamenlijk 95% bovengrens"),
    "joint_known": ("Of whom known individually", "Van wie individueel bekend"),
    "incomplete": ("Incomplete (*)", "Onvolledig (*)"),
}


def header_label(key: str, lang: str = "en") -> str:
    pair = HEADERS.get(key)
    if pair is None:
        return dimension_label(key, lang)
    return pair[1] if lang == "nl" else pair[0]


def display_rows(table: NationalTable, lang: str = "en") -> tuple[list[str], list[list[Any]]]:
    """Headers and rows with labels in `lang`; numbers stay numbers (se and bounds rounded to 1 decimal)."""
    headers = [header_label("period", lang), *(header_label(n, lang) for n in table.by),
               *(header_label(k, lang) for k in ("individual", "noisy", "estimate", "se", "lower", "upper"))]
    out: list[list[Any]] = []
    for row in table.rows:
        if row.total:
            dims = [header_label("total", lang)] + [""] * (len(table.by) - 1) if table.by else []
        else:
            dims = [label(n, row.dims[n], lang) for n in table.by]
        out.append([
            row.period, *dims, row.individual, row.noisy, row.estimate,
            round(row.se, 1), round(row.lower, 1), round(row.upper, 1),
        ])
    if any(row.joint for row in table.rows):  # the joint release beside the per-organisation one
        joint = ("joint", "joint_se", "joint_lower", "joint_upper", "joint_known")
        headers += [header_label(k, lang) for k in joint]
        for line, row in zip(out, table.rows):
            j = row.joint
            line += ([j["estimate"], round(j["se"], 1), round(j["lower"], 1), round(j["upper"], 1), j["known"]]
                     if j else [""] * len(joint))
    if table.incomplete:  # cells that miss some releases' noisy counts (the notes say whose)
        headers.append(header_label("incomplete", lang))
        for line, row in zip(out, table.rows):
            line.append("*" if row.incomplete else "")
    if not table.by:  # a table with no breakdown still says which row is the total
        headers.insert(1, "")
        for line in out:
            line.insert(1, header_label("total", lang))
    return headers, out


def to_csv(table: NationalTable, lang: str = "en", dialect: str = "excel") -> bytes:
    """UTF-8 CSV (with BOM) safe to open in Excel: text cells that look like formulas get a leading quote.

    dialect "excel": ',' and decimal points; "excel-nl": ';' and decimal commas, as Dutch Excel reads them."""
    from ..util.csvsafe import excel_safe_csv

    headers, rows = display_rows(table, lang)
    if dialect == "excel-nl":
        return excel_safe_csv(headers, rows, delimiter=";", decimal_comma=True)
    return excel_safe_csv(headers, rows)


def to_markdown(table: NationalTable, lang: str = "en") -> str:
    headers, rows = display_rows(table, lang)

    def cell(value: Any) -> str:
        return str(value).replace("|", "\\|")

    numeric_from = 1 + max(len(table.by), 1)  # period, then the breakdown (or the total's label), then numbers
    lines = [
        "| " + " | ".join(cell(h) for h in headers) + " |",
        "| " + " | ".join("---:" if i >= numeric_from or i == 0 else "---" for i in range(len(headers))) + " |",
    ]
    for row in rows:
        lines.append("| " + " | ".join(cell(v) for v in row) + " |")
    text = "\n".join(lines) + "\n"
    for note in table.notes:
        text += f"\n> {note}\n"
    return text
