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


def excel_safe_csv(header: Sequence[str], rows: Iterable[Sequence[object]]) -> bytes:
    """UTF-8 (with BOM, so Excel picks the encoding) CSV text with every text cell made formula-safe."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow([excel_safe(h) for h in header])
    for row in rows:
        writer.writerow([excel_safe(v) for v in row])
    return buffer.getvalue().encode("utf-8-sig")
