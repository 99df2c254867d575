"""Read an organisation's export (CSV, XLSX, Parquet, JSON) into a DuckDB temp table, everything as text.

`read_export` makes one temp table with a `__row` BIGINT column plus one VARCHAR column per source column, named
exactly as the header (trimmed, BOM removed). Typing is the validator's job; empty cells become NULL and rows whose
cells are all empty are dropped (their numbers are skipped, the others keep theirs).

`__row` is the number a person would look for:
- CSV: the record's row as a spreadsheet shows it, header = 1, first data row = 2 (a quoted field spanning lines
  stays one row; blank lines above the header are counted, completely blank lines between data rows are skipped
  by DuckDB's parser and not counted, so rows after one are numbered one lower than a spreadsheet shows).
- XLSX: the sheet's own row number (the header is the first non-empty row, usually 1).
- JSON: the record's position, first record = 1 (the line number for JSON lines without blank lines).
- Parquet: the record's position, first record = 1.

Detection when the mapping's [file] table leaves something out:
- format from the extension: .csv .txt .tsv -> csv, .xlsx, .parquet/.pq, .json .jsonl .ndjson -> json.
- encoding (CSV, JSON) from the first 64 KiB: a UTF-8 or UTF-16 byte-order mark; else valid UTF-8; else Windows-1252
  (what Dutch Excel writes). If UTF-8 was guessed from a plain-ASCII start and DuckDB later finds a non-UTF-8 byte,
  the file is read again as Windows-1252. Windows-1252 is transcoded to a temporary UTF-8 file in 1 MiB chunks,
  unless the file has no byte 0x80-0x9F: there it equals Latin-1, which DuckDB reads natively.
- CSV delimiter among , ; tab | from the header line: the candidate that splits the header into more than one name
  and gives the most following sample lines the header's field count (ties: more header fields, then , ; tab |).

`csvfile.csv_scan` describes a CSV file that DuckDB can read as it is (no transcoding, no glob-like name) so that the
validator reads it in its own single pass (validate.py), numbered alike, instead of copying the export as text first;
the staged read stays for every other file, and for what the pass hands back (`Restage`).

Every failure is an InputError with one line that names the file, a line/row/column position or a header name, but
never the content of a data cell: DuckDB's own CSV messages quote the offending line, so they are never passed on.
Workbooks: formulas are never evaluated (cached values are read), external links are not loaded, and macro-enabled
workbooks (.xlsm, or any workbook carrying vbaProject.bin) are refused.
"""

from __future__ import annotations

import codecs
import csv
import io
import re
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ..util.engine import quote_ident
from ..errors import InputError

if TYPE_CHECKING:  # pragma: no cover
    import duckdb

    from ..contract.schema import FileOptions

MAX_COLUMNS = 16_384  # Excel's own limit (column XFD)
MAX_FIELD_CHARS = 100_000
MAX_XLSX_ROWS = 1_048_576  # Excel's own limit
SAMPLE_BYTES = 64 * 1024
MAX_HEADER_BYTES = 4 * 1024 * 1024
CHUNK_BYTES = 1024 * 1024

DELIMITERS = (",", ";", "\t", "|")
_DELIMITER_NAMES = {",": "comma", ";": "semicolon", "\t": "tab", "|": "pipe"}
_EXTENSIONS = {
    ".csv": "csv", ".txt": "csv", ".tsv": "csv",
    ".xlsx": "xlsx",
    ".parquet": "parquet", ".pq": "parquet",
    ".json": "json", ".jsonl": "json", ".ndjson": "json",
}
_STAGE = "__aggregator_read_stage"
_GLOB_CHARS = re.compile(r"[*?\[\]{}]")


@dataclass(frozen=True)
class ReadInfo:
    """What was read and how: for messages and `validate --json`."""

    path: str  # file name only (no directories)
    format: str  # "csv" | "xlsx" | "parquet" | "json"
    encoding: str | None  # csv/json: "utf-8", "utf-8-sig", "utf-16", "cp1252", "latin-1"; None otherwise
    delimiter: str | None  # csv only
    rows: int  # data rows read
    columns: list[str]  # source column names, in file order

    def as_dict(self) -> dict:
        return asdict(self)



def detect_format(path: Path) -> str:
    """The export format implied by the file's extension."""
    suffix = path.suffix.lower()
    if suffix in _EXTENSIONS:
        return _EXTENSIONS[suffix]
    name = path.name
    if suffix == ".xlsm":
        raise InputError(f"{name}: macro-enabled workbooks (.xlsm) are refused; save the sheet as a plain .xlsx workbook")
    if suffix == ".xls":
        raise InputError(f"{name}: old Excel .xls workbooks are not supported; save the sheet as .xlsx or CSV UTF-8")
    raise InputError(
        f"{name}: cannot tell the format from the extension {suffix or '(none)'!r}; "
        'set format = "csv", "xlsx", "parquet" or "json" in the mapping\'s [file] table'
    )


def read_export(
    con: duckdb.DuckDBPyConnection,
    path: Path,
    options: FileOptions | None = None,
    *,
    table: str = "export_raw",
) -> ReadInfo:
    """Read an export into TEMP table `table` (`__row` + one VARCHAR column per source column); describe what was read."""
    import duckdb

    path = Path(path)
    name = path.name
    fmt = (options.format if options is not None else None) or detect_format(path)
    if not path.is_file():
        raise InputError(f"{name}: no such file")
    if path.stat().st_size == 0:
        raise InputError(f"{name}: the file is empty")
    try:
        if fmt == "csv":
            from .csvfile import read_csv

            return read_csv(con, path, options, table)
        if fmt == "xlsx":
            from .spreadsheet import read_xlsx

            return read_xlsx(con, path, options, table)
        if fmt == "parquet":
            from .columnar import read_parquet

            return read_parquet(con, path, table)
        if fmt == "json":
            from .columnar import read_json

            return read_json(con, path, options, table)
        raise InputError(f"{name}: unknown format {fmt!r}")  # pragma: no cover - FileOptions restricts it
    except duckdb.Error:
        # Never pass DuckDB's text on: it can quote rows of the export.
        raise InputError(f"{name}: could not be read as {fmt.upper()}") from None
    except OSError as exc:
        raise InputError(f"{name}: could not be read ({exc.strerror or 'input/output error'})") from None
    finally:
        try:
            con.execute(f"DROP TABLE IF EXISTS {quote_ident(_STAGE)}")
        except duckdb.Error:  # e.g. the caller's transaction was aborted; never hide the real error
            pass


# ---------------------------------------------------------------- text files: encoding and sniffing


@dataclass
class _Sample:
    raw: bytes
    complete: bool  # the whole file is in `raw`


def _read_sample(path: Path) -> _Sample:
    size = path.stat().st_size
    with path.open("rb") as fh:
        raw = fh.read(SAMPLE_BYTES)
        # Make sure the header line is complete (very wide headers), within reason.
        while b"\n" not in raw and len(raw) < size and len(raw) < MAX_HEADER_BYTES:
            more = fh.read(SAMPLE_BYTES)
            if not more:
                break
            raw += more
    return _Sample(raw=raw, complete=len(raw) >= size)


def _refuse_binary(name: str, raw: bytes) -> None:
    """Fail fast on files that are clearly not text exports, naming what they look like."""
    if raw.startswith(b"PK\x03\x04"):
        raise InputError(
            f"{name}: does not look like a text export (it is a ZIP file, perhaps an .xlsx workbook); "
            'rename it to .xlsx or set format = "xlsx" in the mapping\'s [file] table'
        )
    if raw.startswith(b"\xd0\xcf\x11\xe0"):
        raise InputError(
            f"{name}: does not look like a text export (it is an old .xls or a password-protected workbook); "
            "save it as .xlsx or CSV UTF-8"
        )
    if raw.startswith(b"PAR1"):
        raise InputError(f'{name}: does not look like a text export (it is a Parquet file); set format = "parquet"')


def _decode_sample(raw: bytes, encoding: str, complete: bool) -> str:
    decoder = codecs.getincrementaldecoder(encoding)(errors="strict")
    return decoder.decode(raw, final=complete)


def _detect_encoding(name: str, sample: _Sample, wanted: str | None) -> tuple[str, str]:
    """(encoding, decoded sample text). `wanted` is the mapping's encoding, if any."""
    raw = sample.raw
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        if wanted not in (None, "utf-16"):
            raise InputError(f"{name}: the file is UTF-16 encoded, not {wanted}; remove encoding from the mapping")
        even = raw if sample.complete else raw[: len(raw) // 2 * 2]
        try:
            text = _decode_sample(even, "utf-16", sample.complete)
        except UnicodeDecodeError:
            raise InputError(f"{name}: does not look like a text export (invalid UTF-16)") from None
        return "utf-16", _check_text(name, text)
    if b"\x00" in raw:
        raise InputError(f"{name}: does not look like a text export (it contains NUL bytes)")
    if wanted is not None:
        encoding = "utf-8-sig" if wanted.startswith("utf-8") and raw.startswith(codecs.BOM_UTF8) else wanted
        try:
            return encoding, _check_text(name, _decode_sample(raw, encoding, sample.complete))
        except UnicodeDecodeError as exc:
            line = raw[: exc.start].count(b"\n") + 1
            raise InputError(
                f"{name}: is not valid {_encoding_label(wanted)} text (line {line}); check encoding in the mapping"
            ) from None
    if raw.startswith(codecs.BOM_UTF8):
        try:
            return "utf-8-sig", _check_text(name, _decode_sample(raw, "utf-8-sig", sample.complete))
        except UnicodeDecodeError:
            raise InputError(f"{name}: starts with a UTF-8 byte-order mark but is not valid UTF-8") from None
    for encoding in ("utf-8", "cp1252"):
        try:
            return encoding, _check_text(name, _decode_sample(raw, encoding, sample.complete))
        except UnicodeDecodeError:
            continue
    raise InputError(f"{name}: does not look like a text export (neither UTF-8 nor Windows-1252)")


def _check_text(name: str, text: str) -> str:
    controls = sum(1 for ch in text if ord(ch) < 32 and ch not in "\t\n\r\f\v")
    if controls > max(8, len(text) // 200):
        raise InputError(f"{name}: does not look like a text export (it contains binary control characters)")
    return text.lstrip("\ufeff")


def _encoding_label(encoding: str) -> str:
    return {"cp1252": "Windows-1252", "latin-1": "Latin-1", "utf-8-sig": "UTF-8", "utf-8": "UTF-8"}.get(
        encoding, encoding
    )


def _complete_lines(text: str, complete: bool) -> str:
    if complete:
        return text
    cut = max(text.rfind("\n"), text.rfind("\r"))
    return text[: cut + 1] if cut >= 0 else text


def _parse_records(text: str, delimiter: str, limit: int = 51) -> list[list[str]]:
    records: list[list[str]] = []
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, quotechar='"', doublequote=True, strict=False)
    try:
        for record in reader:
            if record:
                records.append(record)
            if len(records) >= limit:
                break
    except csv.Error:  # e.g. a field longer than the csv module's limit: judge on what was parsed
        pass
    return records


def detect_delimiter(text: str, default: str = ",") -> str:
    """The delimiter among , ; tab | that best splits the header line (see module docstring)."""
    best: tuple[int, float, int, int] | None = None
    choice = default
    for rank, delimiter in enumerate(DELIMITERS):
        records = _parse_records(text, delimiter)
        if not records or len(records[0]) < 2:
            continue
        width = len(records[0])
        body = records[1:]
        consistency = sum(1 for r in body if len(r) == width) / len(body) if body else 1.0
        score = (1, consistency, width, -rank)
        if best is None or score > best:
            best, choice = score, delimiter
    return choice


def _check_header(name: str, names: list[str], where: str = "column", first: int = 0) -> list[str]:
    """Trimmed header names; refuse empty, duplicate (ignoring case) or reserved names and too many columns."""
    if len(names) > MAX_COLUMNS:
        raise InputError(f"{name}: the header has {len(names):,} columns; at most {MAX_COLUMNS:,} are supported")
    cleaned = [n.replace("\ufeff", "").strip() for n in names]
    part = "records" if where == "key" else "header"
    seen: dict[str, int] = {}
    for index, column in enumerate(cleaned, start=first + 1):
        position = _position(where, index)
        if not column:
            raise InputError(f"{name}: {position} of the {part} has no name")
        if column.casefold() == "__row":
            raise InputError(f"{name}: {position} of the {part} is named {_short(column)!r}, a reserved name")
        key = column.casefold()
        if key in seen:
            raise InputError(
                f"{name}: {_position(where, seen[key])} and {position} of the {part} have the same name "
                f"{_short(column)!r} (names are compared ignoring case)"
            )
        seen[key] = index
    return cleaned


def _position(where: str, index: int) -> str:
    if where == "key":
        return f"key {index}"
    if where == "sheet":
        from openpyxl.utils import get_column_letter

        return f"column {get_column_letter(index)}"
    return f"column {index}"


def _short(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


@contextmanager
def _workdir() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="aggregator-read-") as tmp:
        yield Path(tmp)


def _duckdb_path(path: Path, workdir: Path) -> str:
    """A path DuckDB will not treat as a glob pattern (names like 'export [2025].csv' would be)."""
    resolved = path.resolve()
    if not _GLOB_CHARS.search(str(resolved)):
        return str(resolved)
    link = workdir / ("source" + "".join(c for c in path.suffix if c.isalnum() or c == "."))
    try:
        link.symlink_to(resolved)
    except OSError:  # pragma: no cover - platforms without symlinks
        import shutil

        shutil.copyfile(resolved, link)
    return str(link)


def _has_c1_bytes(path: Path) -> bool:
    """Whether the file has a byte where Windows-1252 and Latin-1 differ (streamed, 1 MiB at a time).

    32 single-byte searches (memchr) are several times faster than one regex character class here.
    """
    with path.open("rb") as fh:
        while chunk := fh.read(CHUNK_BYTES):
            if any(byte in chunk for byte in range(0x80, 0xA0)):
                return True
    return False


def _transcode(name: str, src: Path, encoding: str, dest: Path) -> None:
    """Stream `src` from `encoding` into a UTF-8 file, 1 MiB at a time."""
    decoder = codecs.getincrementaldecoder(encoding)(errors="strict")
    line = 1
    with src.open("rb") as fin, dest.open("w", encoding="utf-8", newline="") as fout:
        while chunk := fin.read(CHUNK_BYTES):
            try:
                fout.write(decoder.decode(chunk))
            except UnicodeDecodeError as exc:
                line += chunk[: exc.start].count(b"\n")
                raise InputError(
                    f"{name}: is not valid {_encoding_label(encoding)} text (line {line}); "
                    "set encoding in the mapping's [file] table"
                ) from None
            line += chunk.count(b"\n")
        try:
            fout.write(decoder.decode(b"", final=True))
        except UnicodeDecodeError:
            raise InputError(f"{name}: ends in the middle of a {_encoding_label(encoding)} character") from None


# ---------------------------------------------------------------- shared finish


def _finish(
    con: duckdb.DuckDBPyConnection, name: str, table: str, columns: list[str], row_expr: str, *, empty: str
) -> int:
    """Stage (c0..cN) -> view `table` (__row + named columns) without all-empty rows; check field lengths; row count.

    The stage is the one copy of the file: it is kept as `<table>__cells` and `table` is a view over it, so the export
    is not copied again on its way to validation."""
    target = quote_ident(table)
    cells_table = quote_ident(f"{table}__cells")
    cells = [f"NULLIF(c{i}, '')" for i in range(len(columns))]
    selected = ",\n            ".join(f"{cell} AS {quote_ident(col)}" for cell, col in zip(cells, columns, strict=True))
    any_value = f"coalesce({', '.join(cells)})" if len(cells) > 1 else cells[0]
    con.execute(f"DROP VIEW IF EXISTS {target}")
    con.execute(f"DROP TABLE IF EXISTS {target}")
    con.execute(f"DROP TABLE IF EXISTS {cells_table}")
    con.execute(f"ALTER TABLE {quote_ident(_STAGE)} RENAME TO {cells_table}")
    # One scan of the cells: rows, rows with a value, and (cheap, bytes >= characters) the longest value. The view
    # filters all-empty rows only when there are some: every later scan of it would pay for the test.
    longest = ", ".join(f"max(strlen(c{i}))" for i in range(len(columns)))
    result = con.execute(
        f"SELECT count(*), count(*) FILTER (WHERE {any_value} IS NOT NULL), greatest({longest}) FROM {cells_table}"
    ).fetchone()
    assert result is not None
    all_rows, rows, max_bytes = int(result[0]), int(result[1]), int(result[2] or 0)
    con.execute(
        f"""
        CREATE TEMP VIEW {target} AS
        SELECT ({row_expr})::BIGINT AS __row,
            {selected}
        FROM {cells_table}
        {f"WHERE {any_value} IS NOT NULL" if rows < all_rows else ""}
        """
    )
    quoted = [quote_ident(col) for col in columns]
    too_long: list[tuple[int, str]] = []
    if max_bytes > MAX_FIELD_CHARS:
        checks = ", ".join(f"min(__row) FILTER (WHERE length({q}) > {MAX_FIELD_CHARS})" for q in quoted)
        found = con.execute(f"SELECT {checks} FROM {target}").fetchone()
        assert found is not None
        too_long = [(row, col) for row, col in zip(found, columns, strict=True) if row is not None]
    if rows == 0 or too_long:
        con.execute(f"DROP VIEW IF EXISTS {target}")
        con.execute(f"DROP TABLE IF EXISTS {cells_table}")
    if rows == 0:
        raise InputError(f"{name}: {empty}")
    if too_long:
        row, col = min(too_long)
        raise InputError(
            f"{name}: row {row}, column {_short(col)!r} holds a value longer than {MAX_FIELD_CHARS:,} characters"
        )
    return rows


__all__ = ["ReadInfo", "read_export", "detect_format", "detect_delimiter", "MAX_COLUMNS", "MAX_FIELD_CHARS"]
