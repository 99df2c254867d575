"""The Registration contract checked vectorised in DuckDB; pydantic explains the failing rows.

The rules are compiled from the pydantic model's fields (required, lengths, ranges, codelists, types) plus the
model's own validators, written once more as SQL (rules.py); a property test keeps both verdicts equal.
The report never carries the value of an identifying field, and it never leaves the organisation.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from ..util.engine import quote_ident, quote_literal
from ..errors import InputError
from .mapping import check_columns, load_mapping, mapping_notes, value_map_rows
from .rules import MODEL_RULES, FieldSpec, compiled_rules, field_specs, raw_column, rule_message

MAX_EXPLAINED_ROWS = 1000
CHECKED_ONLY = ("record_id", "notes")  # checked like every field, but nothing after the check reads them: not kept
# What the report itself reads after the check (consent warnings, suggestions for unknown codes): all a pass keeps
# when only the report is wanted (`report_only`), not the names and dates a release needs.
REPORT_FIELDS = ("person_id", "report_date", "form", "gender", "nationality", "province", "consent", "consent_date",
                 "consent_withdrawn_date")

# -------------------------------------------------------------- results


@dataclass(frozen=True)
class RowError:
    """One broken rule in one row: row number, field, rule and a message; never the value of an identifying field."""

    row: int
    field: str
    rule: str
    message: str


@dataclass
class ValidationReport:
    file: dict[str, Any]
    export_date: str
    rows_read: int
    rows_valid: int
    rows_invalid: int
    errors_by_rule: dict[str, int]
    errors_total: int
    errors: list[RowError]
    errors_shown_limit: int
    unknown_values: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    warnings: list[dict[str, Any]] = field(default_factory=list)  # consent.py: counts and field names, no values

    @property
    def valid(self) -> bool:
        return self.rows_invalid == 0

    @property
    def truncated(self) -> bool:
        return len(self.errors) < self.errors_total

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["valid"] = self.valid
        data["truncated"] = self.truncated
        return data


# -------------------------------------------------------------- the SQL


def _source_sql(mapping, spec: FieldSpec) -> str:
    """A field's trimmed text in the export (NULL when empty or unmapped), as SQL over export_raw `r`."""
    from ..contract.schema import ROW_NUMBER_STANDS_IN

    source = mapping.columns.get(spec.name)
    if source is None:
        # no record id column: the row number stands in, locally
        return "CAST(r.__row AS VARCHAR)" if spec.name in ROW_NUMBER_STANDS_IN else "CAST(NULL AS VARCHAR)"
    column = f"r.{quote_ident(source)}"
    # trim() only where there is a space to trim: most values have none, and trimming every value is costly
    return f"NULLIF(CASE WHEN starts_with({column}, ' ') OR ends_with({column}, ' ') THEN trim({column}) ELSE {column} END, '')"


def _mapped_fields(mapping, specs: list[FieldSpec]) -> list[FieldSpec]:
    """The fields whose values go through the value map: codelists, yes/no and nationality, when mapped."""
    return [s for s in specs if (s.kind in ("code", "bool") or s.name == "nationality") and s.name in mapping.columns]


def value_lookups(con, mapping, specs: list[FieldSpec], source: str = "export_raw") -> dict[str, dict[str, str]]:
    """field -> {value as the export has it: code} for the values in export_raw that the value map changes.

    One scan finds the distinct values of every mapped field and DuckDB keeps those the map changes (at most the map's
    size, however many distinct values an export holds); only those go into the SQL, so mapping a row is a small
    lookup (none at all for an export that already uses the codes), never a join over the rows."""
    fields = _mapped_fields(mapping, specs)
    con.execute("CREATE OR REPLACE TEMP TABLE present_values (field VARCHAR, value VARCHAR)")
    if not fields:
        return {}
    fnames, sources, codes = map(list, zip(*value_map_rows(mapping)))
    con.execute(  # one statement, not a round trip per row (executemany took 0.17 s for the ~740 rows)
        "CREATE OR REPLACE TEMP TABLE value_map AS SELECT unnest($f) AS field, unnest($s) AS source, unnest($c) AS code",
        {"f": fnames, "s": sources, "c": codes},
    )
    # The distinct values as written; trimming them (as _source_sql does) is work on a few values, not on every row.
    distinct = ", ".join(f"list(DISTINCT r.{quote_ident(mapping.columns[s.name])}) AS f{i}" for i, s in enumerate(fields))
    present = " UNION ALL ".join(f"SELECT '{s.name}' AS field, unnest(f{i}) AS value FROM d" for i, s in enumerate(fields))
    # kept (field, trimmed value) in `present_values`: _settle_mapped_values maps and checks each of them
    con.execute(
        f"""
        INSERT INTO present_values
        WITH d AS (SELECT {distinct} FROM {source} AS r)
        SELECT DISTINCT field, NULLIF(trim(value), '') AS value FROM ({present})
        """
    )
    changed = con.execute(
        """
        SELECT p.field, p.value, m.code
        FROM present_values AS p JOIN value_map AS m ON m.field = p.field AND m.source = lower(p.value)
        WHERE m.code IS DISTINCT FROM p.value
        """
    ).fetchall()
    lookups: dict[str, dict[str, str]] = {s.name: {} for s in fields}
    for fname, value, code in changed:
        lookups[fname][value] = code
    return lookups


def _typed_view_sql(mapping, specs: list[FieldSpec], lookups: dict[str, dict[str, str]], source: str = "export_raw",
                    carried: tuple[str, ...] = (), mapped: bool = True) -> str:
    """SQL of the view `typed_rows`: each field after value mapping (`<f>`); dates, integers and yes/no also keep
    their text beside the typed value (`<f>__raw`), so a value that does not parse can be told from one that is
    missing. `source` holds the export's text columns and `__row`; `carried` columns of it pass through. With
    `mapped` False the fields the value map covers keep their trimmed text (the pass; _settle_mapped_values)."""
    selects = ["r.__row AS __row", *(f"r.{c} AS {c}" for c in carried)]
    # ISO dates are always understood too: spreadsheet date cells arrive as YYYY-MM-DD whatever their display format.
    date_formats = list(dict.fromkeys([*mapping.date_formats, "%Y-%m-%d"]))
    formats = [quote_literal(f) for f in date_formats]
    for spec in specs:
        raw = _source_sql(mapping, spec)
        lookup = lookups.get(spec.name)
        if lookup:
            pairs = ", ".join(f"{quote_literal(k)}: {quote_literal(v)}" for k, v in sorted(lookup.items()))
            # an empty code maps a value to missing
            raw = f"NULLIF(coalesce(MAP {{{pairs}}}[{raw}], {raw}), '')"
        if spec.name == "nationality" and mapped:
            raw = f"upper({raw})"
        selects.append(f"{raw} AS {spec.name}__raw")
    inner = "SELECT " + ",\n  ".join(selects) + f"\nFROM {source} AS r"

    typed = ["m.__row", *(f"m.{c}" for c in carried)]
    for spec in specs:
        col = f"m.{spec.name}__raw"
        if spec.kind in ("date", "int", "bool"):  # text and codes are their own raw value: stored once
            typed.append(f"{col}")
        if spec.kind == "date":
            parsers = ", ".join(f"try_strptime({col}, {fmt})" for fmt in formats)
            typed.append(f"CAST(COALESCE({parsers}) AS DATE) AS {spec.name}")
        elif spec.kind == "int":
            typed.append(f"TRY_CAST({col} AS INTEGER) AS {spec.name}")
        elif spec.kind == "bool":
            typed.append(f"CASE {col} WHEN 'true' THEN TRUE WHEN 'false' THEN FALSE END AS {spec.name}")
        else:
            typed.append(f"{col} AS {spec.name}")
    return f"SELECT {', '.join(typed)}\nFROM (\n{inner}\n) AS m"


# -------------------------------------------------------------- the check


MAX_MAPPED_IN_SQL = 1000  # distinct values of one field settled through a MAP literal; more go through a join


def _settle_mapped_values(con, mapping, specs: list[FieldSpec], rules: list[tuple[str, str, str]]):
    """Map and check the fields of the value map (codelists, yes/no, nationality) once per distinct value, after
    the pass; returns the value lookups.

    The pass stores their trimmed text and leaves their rules to this step (all of them look at the one field, so
    they depend on the value alone). The same SQL as the pass (the typed view of that one field, with the lookups)
    runs over one row per distinct value, every field in one statement; only rows whose value the map changes or a
    rule rejects are then updated in place (rowids, the row numbers of a scan, stay). An export already in the codes
    needs no update at all: this replaced a scan of the whole export for its distinct values before the pass (0.29 s
    per million rows)."""
    fields = _mapped_fields(mapping, specs)
    if not fields:
        return {}
    stored = {s.name: raw_column(s) for s in fields}  # the pass keeps each one's text in this column
    by_source = {}
    for spec in fields:
        by_source.setdefault(mapping.columns[spec.name], stored[spec.name])
    texts = ", ".join(f"{column} AS {quote_ident(source)}" for source, column in by_source.items())
    lookups = value_lookups(con, mapping, specs, source=f"(SELECT {texts} FROM typed_cells)")
    per_field = []
    for spec in fields:
        conds = [(i, cond) for i, (_, fname, cond) in enumerate(rules) if fname == spec.name]
        bits = " + ".join(f"CASE WHEN coalesce(({c}), FALSE) THEN {1 << i}::UBIGINT ELSE 0::UBIGINT END" for i, c in conds)
        values = f"""(SELECT 0::BIGINT AS __row, value AS __value, value AS {quote_ident(mapping.columns[spec.name])}
                      FROM present_values WHERE field = {quote_literal(spec.name)} AND value IS NOT NULL)"""
        typed = _typed_view_sql(mapping, [spec], lookups, source=values, carried=("__value",))
        as_bool = f"t.{spec.name}" if spec.kind == "bool" else "NULL::BOOLEAN"
        per_field.append(f"""SELECT {quote_literal(spec.name)} AS field, t.__value AS value, {raw_column(spec, 't.')} AS text,
                                    {as_bool} AS flag, {bits or '0::UBIGINT'} AS bits
                             FROM ({typed}) AS t""")
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE settled_values AS
        SELECT * FROM ({' UNION ALL '.join(per_field)}) WHERE text IS DISTINCT FROM value OR bits <> 0
    """)
    counts = dict(con.execute("SELECT field, count(*) FROM settled_values GROUP BY field").fetchall())
    settled: dict[str, list[tuple]] = {s.name: [] for s in fields}
    in_sql = [f for f, n in counts.items() if n <= MAX_MAPPED_IN_SQL]
    if in_sql:
        rows = con.execute("SELECT field, value, text, flag, bits FROM settled_values WHERE list_contains($f, field)",
                           {"f": in_sql}).fetchall()
        for fname, value, text, flag, bits in rows:
            settled[fname].append((value, text, flag, bits))
    sets: list[str] = []
    where: list[str] = []
    flagged: list[str] = []
    for spec in fields:
        column = stored[spec.name]
        if counts.get(spec.name, 0) > MAX_MAPPED_IN_SQL:
            _settle_by_join(con, spec, column)  # too many settled values to write into SQL
            continue
        rows = settled[spec.name]
        changed = [(v, text, flag) for v, text, flag, _ in rows if text != v]
        broken = [(v, b) for v, _, _, b in rows if b]
        if changed:
            texts_map = _map_literal({v: text for v, text, _ in changed}, "VARCHAR")
            sets.append(f"{column} = CASE WHEN map_contains({texts_map}, {column}) THEN {texts_map}[{column}] ELSE {column} END")
            where.append(f"map_contains({texts_map}, {column})")
            if spec.kind == "bool":
                flags_map = _map_literal({v: flag for v, _, flag in changed}, "BOOLEAN")
                sets.append(f"{spec.name} = CASE WHEN map_contains({flags_map}, {column}) THEN {flags_map}[{column}] ELSE {spec.name} END")
        if broken:
            bits_map = _map_literal(dict(broken), "UBIGINT")
            flagged.append(f"coalesce({bits_map}[{column}], 0::UBIGINT)")
            where.append(f"map_contains({bits_map}, {column})")
    if flagged:
        sets.append(f"__violations = __violations | {' | '.join(flagged)}")
    if sets:
        con.execute(f"UPDATE typed_cells SET {', '.join(sets)} WHERE {' OR '.join(where)}")
    return lookups


def _map_literal(entries: dict[str, Any], value_type: str) -> str:
    def value(v: Any) -> str:
        if v is None:
            return "NULL"
        if isinstance(v, bool):
            return "TRUE" if v else "FALSE"
        return str(int(v)) if value_type == "UBIGINT" else quote_literal(v)

    pairs = ", ".join(f"{quote_literal(k)}: {value(v)}" for k, v in entries.items())
    return f"((MAP {{{pairs}}})::MAP(VARCHAR, {value_type}))"


def _settle_by_join(con, spec: FieldSpec, column: str) -> None:
    """_settle_mapped_values for a field with too many settled values to write into SQL: an UPDATE joined to them."""
    flag = f", {spec.name} = s.flag" if spec.kind == "bool" else ""
    con.execute(f"""
        UPDATE typed_cells SET {column} = s.text{flag}, __violations = __violations | s.bits
        FROM settled_values AS s WHERE s.field = {quote_literal(spec.name)} AND typed_cells.{column} = s.value
    """)


class OutOfOrder(Exception):
    """The pass stored the rows out of file order (check_export's `in_file_order` False) and some row fails: its row
    number is unknown, so the staged read (in file order) makes the report."""


def check_export(con, mapping, export_date: dt.date, *, max_explained: int = MAX_EXPLAINED_ROWS,
                 source_columns: list[str], scan=None, report_only: bool = False,
                 in_file_order: bool = True, explain: bool = True) -> ValidationReport:
    """Validate the export in one pass; leaves the view `typed` and the view `valid_rows` for release.

    The one pass maps, types and checks every row and stores each row once, typed, with a bit per broken rule
    (`__violations`, 0 for a valid row) in the TEMP table `typed_cells`. It reads export_raw (read_export's stage),
    or with `scan` (csvfile.CsvScan) the CSV file itself, so a valid CSV export is never copied as text. The texts
    behind a failing row are re-derived from export_raw by row number (the view `typed_rows`) only for the rows the
    report explains; with `scan` the file is staged for that only when a row fails. Raises csvfile.Restage when the
    pass meets what only the staged read handles. With `report_only` the rows keep only REPORT_FIELDS (storing the
    names and dates too took a third of the pass). With `in_file_order` False a scan stores the rows in any order,
    which only a report on a valid export may use (nothing then reads a row number): raises OutOfOrder when a row
    fails, from inside the pass at the first row it sees fail. Keeping the file order cost 0.2 s of a million-row
    pass. With `explain` False failing rows are only counted, per rule: no row, explanation or suggestion is worked
    out, so a scanned file is never staged (submit, which sends the user to `aggregator validate` for those)."""
    specs = field_specs()
    by_name = {s.name: s for s in specs}
    check_columns(con, mapping, source_columns)
    # The export date goes in as a literal (from a date object) so that the views need no parameters.
    rules = [(r, f, c.replace("$export_date", f"DATE '{export_date.isoformat()}'")) for r, f, c in compiled_rules(specs)]
    assert len(rules) <= 64, "one bit per rule in a UBIGINT"
    # The fields of the value map are mapped and checked after the pass, once per distinct value; the pass only
    # sees whether they are there (a missing text is missing whatever the map says).
    mapped = {s.name for s in _mapped_fields(mapping, specs)}
    in_pass = [cond if fname not in mapped or rule == "required" else "FALSE" for rule, fname, cond in rules]
    checks = ", ".join(f"coalesce(({cond}), FALSE) AS __broken{i}" for i, cond in enumerate(in_pass))
    broken = [f"__broken{i}" for i in range(len(rules))]
    bits = " + ".join(f"CASE WHEN {b} THEN {1 << i}::UBIGINT ELSE 0::UBIGINT END" for i, b in enumerate(broken))
    stored = [s for s in specs if s.name not in CHECKED_ONLY and (not report_only or s.name in REPORT_FIELDS)]
    kept = [f"t.{c}" for s in stored for c in ([raw_column(s)] if s.kind == "bool" else []) + [s.name]]
    # Which rules a row breaks is worked out only for rows that break one.
    violations = f"CASE WHEN {' OR '.join(broken)} THEN {bits} ELSE 0::UBIGINT END AS __violations"
    if scan is None:
        con.execute(f"""
            CREATE OR REPLACE TEMP TABLE typed_cells AS
            SELECT t.__row, {', '.join(kept)}, {violations}
            FROM (SELECT *, {checks} FROM ({_typed_view_sql(mapping, specs, {}, mapped=False)}) AS t) AS t
        """)
        con.execute("CREATE OR REPLACE TEMP VIEW typed AS SELECT * FROM typed_cells")
    else:
        _scan_pass(con, mapping, specs, scan, kept, checks, violations, in_file_order=in_file_order)
    lookups = _settle_mapped_values(con, mapping, specs, rules)
    if scan is None:  # what the report's explanations read
        con.execute(f"CREATE OR REPLACE TEMP VIEW typed_rows AS {_typed_view_sql(mapping, specs, lookups)}")
    flags = ",\n  ".join(
        f"CASE WHEN (__violations >> {i}) & 1 = 1 THEN '{rule}|{fname}' END" for i, (rule, fname, _) in enumerate(rules)
    )
    con.execute(
        f"""
        CREATE OR REPLACE TEMP VIEW verdicts AS
        SELECT __row, CASE WHEN __violations = 0 THEN [] ELSE list_filter([{flags}], lambda x: x IS NOT NULL) END AS violations
        FROM typed
        """
    )
    con.execute("CREATE OR REPLACE TEMP VIEW valid_rows AS SELECT * EXCLUDE (__violations) FROM typed WHERE __violations = 0")
    rows_read, rows_invalid = con.execute("SELECT count(*), count(*) FILTER (WHERE __violations <> 0) FROM typed").fetchone()
    if rows_read == 0:
        raise InputError(f"{scan.info.path}: has a header but no data rows")  # only a scan gets here: see _finish
    if rows_invalid and not in_file_order:
        raise OutOfOrder()
    if rows_invalid and scan is not None and explain:
        _stage_for_explanations(con, mapping, specs, scan, lookups)
    errors_by_rule: dict[str, int] = {}
    if rows_invalid:
        per_rule = con.execute(
            f"SELECT {', '.join(f'count(*) FILTER (WHERE (__violations >> {i}) & 1 = 1)' for i in range(len(rules)))} "
            "FROM typed WHERE __violations <> 0"
        ).fetchone()
        for (rule, _, _), n in zip(rules, per_rule):
            if n:
                errors_by_rule[rule] = errors_by_rule.get(rule, 0) + int(n)
    errors_by_rule = dict(sorted(errors_by_rule.items(), key=lambda kv: (-kv[1], kv[0])))

    failing = con.execute(
        """
        SELECT __row, violations FROM verdicts WHERE len(violations) > 0 ORDER BY __row LIMIT $limit
        """,
        {"limit": max_explained},
    ).fetchall() if rows_invalid and explain else []
    explanations = explain_rows(con, [row for row, _ in failing], export_date)
    from .consent import consent_warnings
    from .suggestions import unknown_values

    errors: list[RowError] = []
    for row, violations in failing:
        explained = explanations.get(row, {})
        for item in violations:
            rule, fname = item.split("|", 1)
            # pydantic explains; codelist rules keep the message that says which mapping line to add.
            message = explained.get(fname)
            # not-a-date too: pydantic speaks ISO (YYYY-MM-DD), the mapping's own format is what the export uses.
            if message is None or rule in ("unknown-code", "not-iso-3166", "not-yes-no", "not-a-date"):
                message = rule_message(rule, fname, by_name.get(fname), mapping)
            errors.append(RowError(int(row), fname, rule, message))

    return ValidationReport(
        file={},
        export_date=export_date.isoformat(),
        rows_read=int(rows_read),
        rows_valid=int(rows_read - rows_invalid),
        rows_invalid=int(rows_invalid),
        errors_by_rule=errors_by_rule,
        errors_total=sum(errors_by_rule.values()),
        errors=errors,
        errors_shown_limit=max_explained if explain else 0,
        unknown_values=unknown_values(con, specs, mapping) if rows_invalid and explain else {},
        notes=mapping_notes(mapping),
        warnings=consent_warnings(con, mapping),
    )


def _scan_source(scan) -> str:
    """The rows of a CSV file read in place (csvfile.CsvScan), as the pass reads them.

    The row number is the stored row's position, known only once stored: 0 stands in meanwhile (only the record_id
    that a missing record_id column leaves to the row number reads it, and only to check it is there). All-empty rows
    are kept (so positions stay file positions) and marked; a value over the length limit sends the file to the
    staged read, which names its row and column."""
    from .readers import MAX_FIELD_CHARS

    cells = [quote_ident(c) for c in scan.info.columns]
    return f"""(SELECT 0::BIGINT AS __row,
            coalesce({', '.join(cells)}) IS NULL AS __blank,
            greatest({', '.join(f'strlen({c})' for c in cells)}) > {MAX_FIELD_CHARS} AS __overlong,
            * FROM ({scan.relation}))"""


_FAILING_ROW = "aggregator: a row fails"  # the pass's own error (no value in it), told apart from the reader's


def _scan_pass(con, mapping, specs: list[FieldSpec], scan, kept: list[str], checks: str, violations: str, *,
               in_file_order: bool = True) -> None:
    """The one pass over a CSV file read in place: TEMP table `typed_cells` in file order and the view `typed`
    numbering its rows (with `in_file_order` False, in any order: the numbers mean nothing). No join may run in the
    pass (it would lose the order): the codelists, which are joins, are settled after it (_settle_mapped_values)."""
    import duckdb

    from .csvfile import Restage

    typed = _typed_view_sql(mapping, specs, {}, source=_scan_source(scan), carried=("__blank", "__overlong"), mapped=False)
    # Out of file order, the first failing row stops the pass: its row number is unknown, the staged read takes over.
    stop = "" if in_file_order else f"WHERE CASE WHEN __violations <> 0 AND NOT __blank THEN error('{_FAILING_ROW}') ELSE TRUE END"
    try:
        if not in_file_order:
            con.execute("SET preserve_insertion_order = false")
        con.execute(f"""
            CREATE OR REPLACE TEMP TABLE typed_cells AS
            SELECT * FROM (
                SELECT {', '.join(kept)}, {violations}, t.__blank, t.__overlong
                FROM (SELECT *, {checks} FROM ({typed}) AS t) AS t
            ) {stop}
        """)
    except duckdb.Error as exc:
        if _FAILING_ROW in str(exc):
            raise OutOfOrder() from None
        raise scan.failure(exc) from None
    finally:
        con.execute("RESET preserve_insertion_order")
    scan.check_unchanged()
    if con.execute("SELECT bool_or(__overlong) FROM typed_cells").fetchone()[0]:
        raise Restage()
    con.execute(f"""
        CREATE OR REPLACE TEMP VIEW typed AS
        SELECT (rowid + {scan.first_row})::BIGINT AS __row, * EXCLUDE (__blank, __overlong)
        FROM typed_cells WHERE NOT __blank
    """)


def _stage_for_explanations(con, mapping, specs: list[FieldSpec], scan, lookups) -> None:
    """Read a scanned CSV file staged (export_raw, numbered alike) and build `typed_rows` over it: the report's
    explanations and suggestions re-derive a failing row's texts from it."""
    from .readers import read_export

    read_export(con, scan.path, scan.options)
    scan.check_unchanged()
    con.execute(f"CREATE OR REPLACE TEMP VIEW typed_rows AS {_typed_view_sql(mapping, specs, lookups)}")


def normalised_rows(con, rows: list[int]) -> dict[int, dict[str, Any]]:
    """The mapped values of some rows as JSON-ready dicts (dates as ISO text when they parse, ints when they cast)."""
    if not rows:
        return {}
    specs = field_specs()
    columns = ", ".join(f"{raw_column(s)}, {s.name}" for s in specs)
    cursor = con.execute(
        f"SELECT __row, {columns} FROM typed_rows WHERE list_contains($rows, __row) ORDER BY __row",
        {"rows": rows},
    )
    out: dict[int, dict[str, Any]] = {}
    for record in cursor.fetchall():
        row = record[0]
        values: dict[str, Any] = {}
        for i, spec in enumerate(specs):
            raw, typed_value = record[1 + 2 * i], record[2 + 2 * i]
            if raw is None:
                continue
            if spec.kind == "date":
                values[spec.name] = typed_value.isoformat() if typed_value is not None else raw
            elif spec.kind in ("int", "bool"):
                values[spec.name] = typed_value if typed_value is not None else raw
            else:
                values[spec.name] = raw
        out[int(row)] = values
    return out


def pydantic_verdict(values: dict[str, Any], export_date: dt.date) -> dict[str, str]:
    """field -> pydantic's message for one normalised row; empty when the row is valid."""
    from pydantic import ValidationError

    from ..contract.schema import Registration

    try:
        Registration.model_validate_json(json.dumps(values), context={"export_date": export_date})
    except ValidationError as exc:
        messages: dict[str, str] = {}
        for err in exc.errors(include_input=False, include_url=False):
            fname = str(err["loc"][0]) if err["loc"] else _model_error_field(err["msg"])
            messages.setdefault(fname, err["msg"].removeprefix("Value error, "))
        return messages
    return {}


def _model_error_field(message: str) -> str:
    for _, fname, _, text in MODEL_RULES:
        if text in message and "order" not in fname:
            return fname
    return "date_of_birth" if "birth" in message else "consent_withdrawn_date"


def explain_rows(con, rows: list[int], export_date: dt.date) -> dict[int, dict[str, str]]:
    """pydantic's explanation per failing row and field (only for the rows asked, which are capped)."""
    return {row: pydantic_verdict(values, export_date) for row, values in normalised_rows(con, rows).items()}


def validate_export(
    path: Path,
    mapping_path: Path,
    *,
    export_date: dt.date | None = None,
    con=None,
    max_explained: int = MAX_EXPLAINED_ROWS,
    report_only: bool = False,
    explain: bool = True,
) -> tuple[ValidationReport, Any]:
    """Read, map and validate an export; returns the report and the DuckDB connection holding `valid_rows` (with
    `report_only`, only the fields the report reads: enough for `aggregator validate`, not for a release; with
    `explain` False, failing rows only counted: see check_export)."""
    from ..util.engine import connect
    from .csvfile import Restage, csv_scan
    from .readers import read_export

    mapping = load_mapping(mapping_path)
    export_date = export_date or dt.date.today()
    con = con or connect()
    scan = csv_scan(path, mapping.file)
    if scan is not None:  # a CSV file DuckDB reads as it is: one pass, no copy
        try:
            # A report alone needs the file order only for the row numbers of failing rows: first without it. When a
            # row fails, the staged read below (in file order) makes the report: its stage is what the explanations
            # of failing rows read anyway, and checking the staged rows costs less than a second pass over the file.
            report = check_export(con, mapping, export_date, max_explained=max_explained,
                                  source_columns=list(scan.info.columns), scan=scan, report_only=report_only,
                                  in_file_order=not report_only, explain=explain)
            report.file = replace(scan.info, rows=report.rows_read).as_dict()
            return report, con
        except (Restage, OutOfOrder):
            pass
    info = read_export(con, path, mapping.file)
    report = check_export(con, mapping, export_date, max_explained=max_explained, source_columns=list(info.columns),
                          report_only=report_only, explain=explain)
    report.file = info.as_dict()
    return report, con


def write_errors_csv(report: ValidationReport, path: Path) -> None:
    """Row errors as CSV that is safe to open in Excel."""
    from ..util.files import atomic_write
    from ..util.csvsafe import excel_safe_csv

    from ..errors import UsageError

    rows = ([e.row, e.field, e.rule, e.message] for e in report.errors)
    try:
        atomic_write(path, excel_safe_csv(["row", "field", "rule", "message"], rows))
    except OSError as exc:
        raise UsageError(f"cannot write {path.name}: {exc.strerror or type(exc).__name__}", "errors_out") from None
