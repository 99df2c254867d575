"""CSV exports: how DuckDB must read them (sniffed by readers.py's text-file helpers), read staged into a table
(`read_csv`, through readers.read_export) or described for the validator's single pass over the file itself
(`csv_scan`). DuckDB's own CSV messages quote the offending line, so they are never passed on (`_csv_error`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import InputError
from ..util.engine import quote_ident, quote_literal
from .readers import (
    _DELIMITER_NAMES,
    _GLOB_CHARS,
    _STAGE,
    MAX_HEADER_BYTES,
    ReadInfo,
    _check_header,
    _complete_lines,
    _detect_encoding,
    _duckdb_path,
    _encoding_label,
    _finish,
    _has_c1_bytes,
    _parse_records,
    _read_sample,
    _refuse_binary,
    _transcode,
    _workdir,
    detect_delimiter,
    detect_format,
)

if TYPE_CHECKING:  # pragma: no cover
    import duckdb

    from ..contract.schema import FileOptions


_CSV_LINE = re.compile(r"CSV Error on Line: (\d+)")
_LEADING_BLANK_LINES = re.compile(r"(?:[ \t]*(?:\r\n|\n|\r))+")
_CSV_COLUMNS = re.compile(r"Expected Number of Columns: (\d+) Found: (\d+)")


class _NotUtf8(Exception):
    pass


@dataclass(frozen=True)
class _CsvLayout:
    """What sniffing the start of a CSV file found: how DuckDB must read it."""

    name: str
    encoding: str  # as detected or pinned
    pinned: bool  # the mapping names the encoding
    delimiter: str
    skip: int  # blank lines above the header
    columns: list[str]


def _sniff_csv(path: Path, options: FileOptions | None) -> _CsvLayout:
    name = path.name
    sample = _read_sample(path)
    _refuse_binary(name, sample.raw)
    wanted_encoding = options.encoding if options is not None else None
    encoding, text = _detect_encoding(name, sample, wanted_encoding)
    if not text.strip():
        raise InputError(f"{name}: the file is empty")
    text = _complete_lines(text, sample.complete)
    blank = _LEADING_BLANK_LINES.match(text)
    breaks = re.findall(r"\r\n|\n|\r", blank.group(0)) if blank else []
    if len(set(breaks)) > 1:  # DuckDB's `skip` miscounts these; rare enough to refuse
        raise InputError(f"{name}: the blank lines above the header mix line-ending styles; remove them")
    text = text[blank.end() :] if blank else text
    delimiter = options.delimiter if options is not None and options.delimiter else None
    if delimiter is None:
        delimiter = detect_delimiter(text, default="\t" if path.suffix.lower() == ".tsv" else ",")
    records = _parse_records(text, delimiter, limit=1)
    if not records:
        raise InputError(f"{name}: the header line could not be read (is it longer than {MAX_HEADER_BYTES:,} bytes?)")
    columns = _check_header(name, records[0])
    return _CsvLayout(name, encoding, wanted_encoding is not None, delimiter, len(breaks), columns)


def read_csv(con: duckdb.DuckDBPyConnection, path: Path, options: FileOptions | None, table: str) -> ReadInfo:
    layout = _sniff_csv(path, options)
    encoding = layout.encoding
    with _workdir() as work:
        try:
            _load_csv(con, path, work, layout, encoding)
        except _NotUtf8:
            if layout.pinned or encoding != "utf-8":  # pinned, or a BOM said UTF-8
                raise InputError(
                    f"{layout.name}: is not valid {_encoding_label(encoding)} text; check encoding in the mapping's "
                    "[file] table"
                ) from None
            encoding = "cp1252"
            _load_csv(con, path, work, layout, encoding)
    # Rows as a spreadsheet numbers them: blank lines above the header count, the header is the next row.
    rows = _finish(con, layout.name, table, layout.columns, f"rowid + {layout.skip + 2}",
                   empty="has a header but no data rows")
    return ReadInfo(path=layout.name, format="csv", encoding=encoding, delimiter=layout.delimiter, rows=rows,
                    columns=layout.columns)


def _read_csv_sql(source: str, layout: _CsvLayout, duck_encoding: str) -> str:
    """DuckDB's read_csv of a CSV export as it was sniffed: every column as text, c0..cN, strict."""
    columns = ", ".join(f"'c{i}': 'VARCHAR'" for i in range(len(layout.columns)))
    return f"""read_csv(
            {quote_literal(source)},
            header = true, skip = {layout.skip}, auto_detect = false, columns = {{{columns}}},
            delim = {quote_literal(layout.delimiter)}, quote = '"', escape = '"', comment = '',
            encoding = {quote_literal(duck_encoding)}, compression = 'none', strict_mode = true
        )"""


def _load_csv(con: duckdb.DuckDBPyConnection, path: Path, work: Path, layout: _CsvLayout, encoding: str) -> None:
    import duckdb

    if encoding == "cp1252" and not _has_c1_bytes(path):
        encoding = "latin-1"  # identical to Windows-1252 without bytes 0x80-0x9F, and DuckDB reads it natively
    if encoding in _NATIVE_ENCODINGS:
        source = _duckdb_path(path, work)
        duck_encoding = _NATIVE_ENCODINGS[encoding]
    else:  # cp1252 and anything else Python knows: transcode to UTF-8 first
        target = work / "transcoded.csv"
        _transcode(layout.name, path, encoding, target)
        source, duck_encoding = str(target), "utf-8"
    try:
        con.execute(f"CREATE OR REPLACE TEMP TABLE {quote_ident(_STAGE)} AS SELECT * FROM "
                    + _read_csv_sql(source, layout, duck_encoding))
    except duckdb.Error as exc:
        raise _csv_error(layout.name, str(exc), layout.delimiter, len(layout.columns), duck_encoding) from None


_NATIVE_ENCODINGS = {"utf-8": "utf-8", "utf-8-sig": "utf-8", "utf-16": "utf-16", "latin-1": "latin-1"}


# ---------------------------------------------------------------- read in place


class Restage(Exception):
    """The single pass over a CSV file met what only the staged read explains or handles: read it staged."""


@dataclass(frozen=True)
class CsvScan:
    """A CSV export that DuckDB reads in place, inside the validator's one pass, with nothing copied first.

    `relation` is SQL of the rows with one text column per source column, named as in the header (empty cells
    NULL, all-empty rows kept: the pass marks them). The pass stores its rows in file order, so a stored row's
    rowid plus `first_row` is the row number a spreadsheet shows, as `read_export` numbers it."""

    path: Path
    options: FileOptions | None
    info: ReadInfo  # rows 0 until the pass has counted them
    relation: str
    first_row: int
    duck_encoding: str
    stamp: tuple[int, int]  # size and modification time when sniffed

    def check_unchanged(self) -> None:
        """The pass reads the file more than once (its distinct values first, failing rows again): all reads must
        see the same file, or a value checked in one read could differ in the next."""
        try:
            unchanged = _stamp(self.path) == self.stamp
        except OSError:
            unchanged = False
        if not unchanged:
            raise InputError(f"{self.info.path}: the file changed while it was being read; validate it again")

    def failure(self, exc: Exception) -> Exception:
        """The error for people (never DuckDB's text) when the pass fails reading the file; Restage when a
        non-UTF-8 byte turns up (the staged read retries a guessed UTF-8 file as Windows-1252, or says so)."""
        error = _csv_error(self.info.path, str(exc), self.info.delimiter or ",", len(self.info.columns),
                           self.duck_encoding)
        return Restage() if isinstance(error, _NotUtf8) else error


def csv_scan(path: Path, options: FileOptions | None = None) -> CsvScan | None:
    """A CsvScan of a CSV export DuckDB can read as it is; None for other formats, for files that must first be
    transcoded (Windows-1252 with bytes 0x80-0x9F) and for names DuckDB would take for a glob pattern."""
    path = Path(path)
    fmt = (options.format if options is not None else None) or detect_format(path)
    if fmt != "csv" or not path.is_file() or path.stat().st_size == 0:
        return None
    resolved = path.resolve()
    if _GLOB_CHARS.search(str(resolved)):
        return None
    stamp = _stamp(path)
    layout = _sniff_csv(path, options)
    read_as = layout.encoding
    if read_as == "cp1252" and not _has_c1_bytes(path):
        read_as = "latin-1"  # as _load_csv does
    if read_as not in _NATIVE_ENCODINGS:
        return None
    cells = ", ".join(f"NULLIF(c{i}, '') AS {quote_ident(col)}" for i, col in enumerate(layout.columns))
    relation = f"SELECT {cells} FROM {_read_csv_sql(str(resolved), layout, _NATIVE_ENCODINGS[read_as])}"
    info = ReadInfo(path=layout.name, format="csv", encoding=layout.encoding, delimiter=layout.delimiter, rows=0,
                    columns=layout.columns)
    return CsvScan(path, options, info, relation, layout.skip + 2, _NATIVE_ENCODINGS[read_as], stamp)


def _stamp(path: Path) -> tuple[int, int]:
    status = path.stat()
    return status.st_size, status.st_mtime_ns


def _csv_error(name: str, text: str, delimiter: str, width: int, encoding: str) -> Exception:
    """One line for people from DuckDB's CSV error, keeping only numbers (DuckDB quotes the offending line)."""
    found = _CSV_LINE.search(text)
    where = f"line {found.group(1)}" if found else "a line"
    delim = _DELIMITER_NAMES[delimiter]
    if "Invalid unicode" in text or "invalid unicode" in text:
        if encoding == "utf-8":
            return _NotUtf8()
        return InputError(f"{name}: {where} is not valid {_encoding_label(encoding)} text")
    columns = _CSV_COLUMNS.search(text)
    if columns:
        return InputError(
            f"{name}: {where} has {columns.group(2)} fields but the header has {width} "
            f"(delimiter: {delim}); check the delimiter and quoting"
        )
    if "unterminated quote" in text:
        return InputError(f"{name}: {where} has a quoted value that is never closed")
    if "Maximum line size" in text:
        return InputError(f"{name}: {where} is longer than DuckDB's maximum line size")
    return InputError(f"{name}: could not be read as CSV near {where} (delimiter: {delim})")


__all__ = ["CsvScan", "Restage", "csv_scan", "read_csv"]
