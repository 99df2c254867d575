"""Parquet and JSON exports, read by DuckDB itself."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import InputError
from ..util.engine import quote_ident
from .readers import (
    MAX_COLUMNS,
    _STAGE,
    ReadInfo,
    _check_header,
    _detect_encoding,
    _duckdb_path,
    _finish,
    _read_sample,
    _refuse_binary,
    _short,
    _transcode,
    _workdir,
)

if TYPE_CHECKING:  # pragma: no cover
    import duckdb

    from ..contract.schema import FileOptions

_NESTED_TYPES = {"list", "struct", "map", "union", "array", "variant"}


def read_parquet(con: duckdb.DuckDBPyConnection, path: Path, table: str) -> ReadInfo:
    name = path.name
    with path.open("rb") as fh:
        if fh.read(4) != b"PAR1":
            raise InputError(f"{name}: is not a Parquet file")
    with _workdir() as work:
        source = _duckdb_path(path, work)
        described = con.execute("SELECT * FROM read_parquet($source) LIMIT 0", {"source": source}).description
        assert described is not None
        names = [d[0] for d in described]
        for index, (column, kind) in enumerate(((d[0], d[1]) for d in described), start=1):
            type_id = getattr(kind, "id", str(kind)).lower()
            if type_id in _NESTED_TYPES:
                raise InputError(
                    f"{name}: column {index} ({_short(column)!r}) holds nested values ({type_id}); only flat tables are supported"
                )
            if type_id == "blob":
                raise InputError(f"{name}: column {index} ({_short(column)!r}) holds binary values; only text and numbers are supported")
        # DuckDB renames duplicate names; check the file's own names (all top-level, since nesting was refused).
        raw = [r[0] for r in con.execute("SELECT name FROM parquet_schema($source)", {"source": source}).fetchall()[1:]]
        columns = _check_header(name, raw if len(raw) == len(names) else names)
        casts = ",\n                ".join(
            f"CAST({quote_ident(src)} AS VARCHAR) AS c{i}" for i, src in enumerate(names)
        )
        con.execute(
            f"""
            CREATE OR REPLACE TEMP TABLE {quote_ident(_STAGE)} AS
            SELECT file_row_number + 1 AS __row,
                {casts}
            FROM read_parquet($source, file_row_number = true)
            """,
            {"source": source},
        )
    rows = _finish(con, name, table, columns, "__row", empty="has no records")
    return ReadInfo(path=name, format="parquet", encoding=None, delimiter=None, rows=rows, columns=columns)


# ---------------------------------------------------------------- JSON


def read_json(con: duckdb.DuckDBPyConnection, path: Path, options: FileOptions | None, table: str) -> ReadInfo:
    import duckdb

    name = path.name
    sample = _read_sample(path)
    _refuse_binary(name, sample.raw)
    encoding, text = _detect_encoding(name, sample, options.encoding if options is not None else None)
    stripped = text.lstrip()
    if not stripped:
        raise InputError(f"{name}: the file is empty")
    if stripped[0] == "[":
        json_format = "array"
    elif stripped[0] == "{":
        json_format = "unstructured"  # JSON lines, or objects spread over several lines
    else:
        raise InputError(f"{name}: is not JSON lines or a JSON array of objects")

    with _workdir() as work:
        if encoding in ("utf-8", "utf-8-sig"):
            source = _duckdb_path(path, work)
        else:
            source = str(work / "transcoded.json")
            _transcode(name, path, encoding, Path(source))
        try:
            con.execute(
                f"""
                CREATE OR REPLACE TEMP TABLE {quote_ident(_STAGE + '_objects')} AS
                SELECT json FROM read_json_objects($source, format = $format)
                """,
                {"source": source, "format": json_format},
            )
        except duckdb.Error:  # DuckDB's record numbers here are unreliable and its text may quote the file
            raise InputError(f"{name}: is not valid JSON lines or a JSON array of objects") from None
    objects = quote_ident(_STAGE + "_objects")
    try:
        return _json_columns(con, name, objects, table, encoding)
    finally:
        try:
            con.execute(f"DROP TABLE IF EXISTS {objects}")
        except duckdb.Error:  # the caller's transaction was aborted; never hide the real error
            pass


def _json_columns(con: duckdb.DuckDBPyConnection, name: str, objects: str, table: str, encoding: str) -> ReadInfo:
    bad = con.execute(f"SELECT min(rowid) FROM {objects} WHERE json_type(json) <> 'OBJECT'").fetchone()
    if bad is not None and bad[0] is not None:
        raise InputError(f"{name}: record {bad[0] + 1} is not a JSON object")
    keys = [
        r[0]
        for r in con.execute(
            f"""
            SELECT k FROM (
                SELECT rowid AS r, unnest(json_keys(json)) AS k, generate_subscripts(json_keys(json), 1) AS i
                FROM {objects}
            )
            GROUP BY k
            ORDER BY min(r * 100000 + i)
            LIMIT {MAX_COLUMNS + 1}
            """
        ).fetchall()
    ]
    if not keys:
        raise InputError(f"{name}: has no records")
    columns = _check_header(name, keys, where="key")
    # RFC 6901 JSON pointers: no quoting rules to get wrong, whatever the key.
    paths = ["/" + k.replace("~", "~0").replace("/", "~1") for k in keys]
    nested = con.execute(
        f"""
        SELECT r + 1, t
        FROM (SELECT rowid AS r, json_type(json, $paths) AS t FROM {objects})
        WHERE list_has_any(t, ['OBJECT', 'ARRAY'])
        ORDER BY r
        LIMIT 1
        """,
        {"paths": paths},
    ).fetchone()
    if nested is not None:
        index = next(i for i, kind in enumerate(nested[1]) if kind in ("OBJECT", "ARRAY"))
        raise InputError(
            f"{name}: record {nested[0]}, key {_short(columns[index])!r} holds a nested object or list; "
            "only flat records are supported"
        )
    extracted = ", ".join(f"v[{i + 1}] AS c{i}" for i in range(len(columns)))
    con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE {quote_ident(_STAGE)} AS
        SELECT r + 1 AS __row, {extracted}
        FROM (SELECT rowid AS r, json_extract_string(json, $paths) AS v FROM {objects})
        """,
        {"paths": paths},
    )
    rows = _finish(con, name, table, columns, "__row", empty="has no records")
    return ReadInfo(path=name, format="json", encoding=encoding, delimiter=None, rows=rows, columns=columns)


