"""XLSX exports: guarded against zip bombs, macros and external links, streamed row by row into DuckDB."""

from __future__ import annotations

import csv
import datetime as dt
import warnings
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import InputError
from ..util.engine import quote_ident
from .readers import (
    MAX_COLUMNS,
    MAX_XLSX_ROWS,
    _STAGE,
    ReadInfo,
    _check_header,
    _finish,
    _position,
    _short,
    _workdir,
)

if TYPE_CHECKING:  # pragma: no cover
    import duckdb

    from ..contract.schema import FileOptions

# ---------------------------------------------------------------- XLSX


# Decompression-bomb guards for .xlsx (a ZIP): checked on the declared member sizes before anything is inflated.
# Python's zipfile never inflates a member past its declared size, so the declared sizes bound the work.
XLSX_MAX_UNCOMPRESSED = 2 * 1024**3
XLSX_MAX_RATIO = 100
XLSX_RATIO_MIN_BYTES = 32 * 1024**2
XLSX_MAX_MEMBERS = 10_000
XLSX_MAX_SHARED_STRINGS = 512 * 1024**2  # openpyxl holds the shared-strings table in memory
XLSX_BATCH_ROWS = 50_000


def _check_workbook_zip(name: str, path: Path) -> None:
    with path.open("rb") as fh:
        magic = fh.read(8)
    if magic.startswith(b"\xd0\xcf\x11\xe0"):
        raise InputError(f"{name}: is an old .xls or a password-protected workbook; save it as a plain .xlsx")
    if not magic.startswith(b"PK"):
        raise InputError(f"{name}: is not an .xlsx workbook (not a ZIP file)")
    try:
        with zipfile.ZipFile(path) as zf:
            members = zf.infolist()
    except (zipfile.BadZipFile, OSError, ValueError):
        raise InputError(f"{name}: is not a valid .xlsx workbook (damaged ZIP file)") from None
    if len(members) > XLSX_MAX_MEMBERS:
        raise InputError(f"{name}: refused: the workbook has {len(members):,} parts (suspicious)")
    total = sum(m.file_size for m in members)
    if total > XLSX_MAX_UNCOMPRESSED:
        raise InputError(
            f"{name}: refused: the workbook unpacks to {total / 1024**3:.1f} GiB "
            f"(limit {XLSX_MAX_UNCOMPRESSED / 1024**3:.0f} GiB); export it as CSV instead"
        )
    for member in members:
        if member.file_size > XLSX_RATIO_MIN_BYTES and member.file_size > XLSX_MAX_RATIO * max(member.compress_size, 1):
            raise InputError(
                f"{name}: refused: a part of the workbook unpacks to {member.file_size / max(member.compress_size, 1):,.0f} "
                "times its packed size (a decompression bomb?)"
            )
        if member.filename.lower().endswith("sharedstrings.xml") and member.file_size > XLSX_MAX_SHARED_STRINGS:
            raise InputError(
                f"{name}: refused: the workbook's text table unpacks to {member.file_size / 1024**2:,.0f} MiB "
                f"(limit {XLSX_MAX_SHARED_STRINGS // 1024**2} MiB); export it as CSV instead"
            )
        if member.filename.lower().endswith("vbaproject.bin"):
            raise InputError(f"{name}: refused: the workbook contains macros; save the sheet as a plain .xlsx without macros")


def _cell_text(value: object) -> str | None:
    """A cell's value as text: what a person would read, dates in ISO 8601."""
    if value is None:
        return None
    if isinstance(value, str):
        return value or None
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if value.is_integer() and abs(value) < 2**53:
            return str(int(value))
        return repr(value)
    if isinstance(value, dt.datetime):
        if value.time() == dt.time(0, 0):
            return value.date().isoformat()
        return value.isoformat(sep=" ")
    if isinstance(value, dt.date | dt.time):
        return value.isoformat()
    return str(value)


def read_xlsx(con: duckdb.DuckDBPyConnection, path: Path, options: FileOptions | None, table: str) -> ReadInfo:
    name = path.name
    if path.suffix.lower() == ".xlsm":
        raise InputError(f"{name}: macro-enabled workbooks (.xlsm) are refused; save the sheet as a plain .xlsx workbook")
    _check_workbook_zip(name, path)
    sheet = options.sheet if options is not None else None

    import openpyxl

    with path.open("rb") as fh, _workdir() as work, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # openpyxl warns about styles and extensions it does not support
        try:
            workbook = openpyxl.load_workbook(fh, read_only=True, data_only=True, keep_links=False, keep_vba=False)
        except InputError:
            raise
        except Exception:  # openpyxl raises many kinds on damaged files; none of them is for people
            raise InputError(f"{name}: is not a valid .xlsx workbook") from None
        try:
            if sheet is None:
                if not workbook.worksheets:
                    raise InputError(f"{name}: the workbook has no worksheet")
                worksheet = workbook.worksheets[0]
            elif sheet in workbook.sheetnames:
                worksheet = workbook[sheet]
            else:
                raise InputError(
                    f"{name}: the workbook has no sheet named {_short(sheet)!r}; "
                    f"sheets: {', '.join(_short(s, 40) for s in workbook.sheetnames)}"
                )
            if not hasattr(worksheet, "reset_dimensions"):
                raise InputError(f"{name}: sheet {_short(worksheet.title)!r} is a chart, not a worksheet")
            worksheet.reset_dimensions()  # never trust the declared size: it can claim a million empty rows
            staged = work / "sheet.csv"
            try:
                columns = _stream_sheet(name, worksheet, staged)
            except InputError:
                raise
            except Exception:
                raise InputError(f"{name}: the sheet could not be read (damaged workbook)") from None
        finally:
            workbook.close()
        if columns is None:
            raise InputError(f"{name}: the sheet is empty")
        con.execute(
            f"""
            CREATE OR REPLACE TEMP TABLE {quote_ident(_STAGE)} AS
            SELECT * FROM read_csv(
                $source, header = false, auto_detect = false, columns = $columns,
                delim = ',', quote = '"', escape = '"', comment = '', compression = 'none', strict_mode = true
            )
            """,
            {"source": str(staged), "columns": {"__row": "BIGINT", **{f"c{i}": "VARCHAR" for i in range(len(columns))}}},
        )
    rows = _finish(con, name, table, columns, "__row", empty="has a header but no data rows")
    return ReadInfo(path=name, format="xlsx", encoding=None, delimiter=None, rows=rows, columns=columns)


def _stream_sheet(name: str, worksheet: object, target: Path) -> list[str] | None:
    """Write the sheet's rows to a UTF-8 CSV ([row number, cells...]); return the header names (None: empty sheet).

    The header is the first row with a value; empty columns left of it (a margin) are skipped, but a value in them
    or right of the last named header column is refused.
    """
    columns: list[str] | None = None
    first = width = 0
    with target.open("w", encoding="utf-8", newline="") as out:
        writer = csv.writer(out, lineterminator="\n")
        batch: list[list[object]] = []
        for number, values in enumerate(worksheet.iter_rows(min_row=1, values_only=True), start=1):  # type: ignore[attr-defined]
            if number > MAX_XLSX_ROWS:
                raise InputError(f"{name}: the sheet has more than {MAX_XLSX_ROWS:,} rows")
            if len(values) > MAX_COLUMNS:
                raise InputError(f"{name}: row {number} has more than {MAX_COLUMNS:,} columns")
            cells = [_cell_text(v) for v in values]
            if columns is None:
                named = [i for i, c in enumerate(cells) if c is not None and c.strip()]
                if not named:
                    continue  # empty rows above the header
                first = named[0]
                columns = _check_header(name, [c or "" for c in cells[first : named[-1] + 1]], where="sheet", first=first)
                width = len(columns)
                continue
            stray = next(
                (i for i, c in enumerate(cells) if c is not None and not first <= i < first + width), None
            )
            if stray is not None:
                side = "left of the first" if stray < first else "beyond the last"
                raise InputError(
                    f"{name}: row {number} has a value in {_position('sheet', stray + 1)}, {side} named header column"
                )
            cells = cells[first : first + width]
            if all(c is None for c in cells):
                continue
            cells.extend([None] * (width - len(cells)))
            batch.append([number, *("" if c is None else c for c in cells)])
            if len(batch) >= XLSX_BATCH_ROWS:
                writer.writerows(batch)
                batch.clear()
        writer.writerows(batch)
    return columns


# ---------------------------------------------------------------- Parquet

