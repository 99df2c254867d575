"""CSV written for people: safe to open in Excel (no formula injection)."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence

FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def excel_safe(value: object) -> object:
    """Prefix a quote to text that a spreadsheet would run as a formula; numbers pass unchanged."""
    if isinstance(value, str) and value.startswith(FORMULA_START):
        return "'" + value
    return value


def excel_safe_csv(
    header: Sequence[str], rows: Iterable[Sequence[object]], *, delimiter: str = ",", decimal_comma: bool = False
) -> bytes:
    """UTF-8 (with BOM, so Excel picks the encoding) CSV text with every text cell made formula-safe.

    `delimiter=";", decimal_comma=True` is what Dutch Excel reads: floats are written 1,5 (numbers, never quoted
    as formulas: the guard looks at text only)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter=delimiter, lineterminator="\r\n")

    def cell(value: object) -> object:
        if decimal_comma and isinstance(value, float):
            return repr(value).replace(".", ",")
        return excel_safe(value)

    writer.writerow([excel_safe(h) for h in header])
    for row in rows:
        writer.writerow([cell(v) for v in row])
    return buffer.getvalue().encode("utf-8-sig")
