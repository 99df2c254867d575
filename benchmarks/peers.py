"""Baselines and peers, each run as its own process by run_all.py: `python benchmarks/peers.py NAME ARGS...`.

duckdb-csv      EXPORT          bare DuckDB: read_csv + group by the four release dimensions (today's baseline)
duckdb-floor    EXPORT [MAP]    bare DuckDB: read_csv of every column the mapping maps, each cast to its type (dates
                                with try_strptime in the mapping's formats, integers, booleans, codes as text) and
                                counted, in one query: the least work that validate and submit cannot avoid
duckdb-bundles  LISTFILE DB     bare DuckDB: read_json of the bundle files, decode payloads, insert envelopes and records
frictionless    EXPORT          frictionless-py: Table Schema with the field rules + row_constraint checks
pandera         EXPORT          pandas read_csv + pandera DataFrameSchema (pandas backend)
pandera-polars  EXPORT          polars read_csv + pandera DataFrameSchema (polars backend)
patito          EXPORT          polars read_csv + a patito Model (pydantic model over polars)
dataframely     EXPORT          polars read_csv + a dataframely Schema with @rule row rules
opendp          EXPORT          OpenDP's own transformation chain: split_dataframe -> select_column ->
                                count_by_categories -> laplace, for the marginals on raw columns (form, gender, province)
selfcheck       [FOLDER]        each validating peer (and the aggregator) on a small valid export and on one copy per
                                rule kind with a single bad row: a peer must reject every rule kind it claims

Every validating peer checks the same rules as `aggregator validate` (see RULE_KINDS): the same fields, types, lengths,
ranges, codelists (from aggregator.contract.codelists), date bounds (1900-01-01 .. the export date) and the two row
rules; what a peer cannot express is listed in its CANNOT entry and printed by run_all.py. The export's column names
are the schema's field names (benchmarks/data.py), so the peers need no column mapping; none of them applies the
mapping's value aliases ("ja" -> true, "vrouw" -> female): the benchmark export holds only canonical codes.
A timed peer run exits 1 when it finds the (valid) benchmark export invalid, so a broken peer cannot look fast.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

EXPORT_DATE = "2026-01-15"  # data.EXPORT_DATE: run_all.py passes --export-date this to the aggregator too
EARLIEST_DATE = "1900-01-01"
DEFAULT_DATE_FORMAT = "%Y-%m-%d"


def _codelists():
    from aggregator.contract.codelists import ISO_3166_ALPHA2, Form, Gender, Province

    return ([m.value for m in Form], [m.value for m in Gender], [m.value for m in Province], sorted(ISO_3166_ALPHA2))


FORMS, GENDERS, PROVINCES, ISO_CODES = _codelists()

RULES = {
    # field: (type, required, extra constraints) - the rules aggregator.organisation.validate compiles from
    # contract.schema.Registration (its field_specs plus MODEL_RULES)
    "record_id": ("string", True, {"maxLength": 64}),
    "person_id": ("string", True, {"maxLength": 64}),
    "family_name": ("string", False, {"maxLength": 200}),
    "given_names": ("string", False, {"maxLength": 200}),
    "date_of_birth": ("date", False, {}),
    "age": ("integer", False, {"minimum": 0, "maximum": 120}),
    "report_date": ("date", True, {}),
    "form": ("string", True, {"enum": FORMS}),
    "gender": ("string", False, {"enum": GENDERS}),
    "nationality": ("string", False, {"enum": ISO_CODES}),  # ISO 3166-1 alpha-2, not just [A-Z]{2}
    "province": ("string", False, {"enum": PROVINCES}),
    "consent": ("boolean", False, {}),
    "consent_date": ("date", False, {}),
    "consent_withdrawn_date": ("date", False, {}),
    "notes": ("string", False, {"maxLength": 4000}),
}
DATES = [f for f, (kind, _, _) in RULES.items() if kind == "date"]

# The rule kinds of aggregator validate (validate.compiled_rules + MODEL_RULES); selfcheck has one bad row for each.
RULE_KINDS = (
    "required", "too-long", "not-a-date", "not-an-integer", "out-of-range", "not-yes-no", "unknown-code",
    "not-iso-3166", "date-too-early", "after-export-date", "birth-after-report", "withdrawn-before-consent",
)


# ------------------------------------------------------------------ mapping (for the floor)


def read_mapping(export: str, mapping: str | None = None) -> tuple[dict[str, str], list[str]]:
    """(field -> source column, date formats) of the mapping; by default mapping.toml beside the export."""
    import tomllib

    path = Path(mapping) if mapping else Path(export).resolve().parent / "mapping.toml"
    data = tomllib.loads(path.read_text(encoding="utf-8"))
    formats = list(dict.fromkeys([*data.get("date_formats", []), DEFAULT_DATE_FORMAT]))  # as validate does
    return dict(data["columns"]), formats


def date_format(export: str) -> str:
    """The mapping's first date format: the one format the peers parse (the benchmark mapping has only one)."""
    try:
        return read_mapping(export)[1][0]
    except (FileNotFoundError, KeyError):
        return DEFAULT_DATE_FORMAT


# ------------------------------------------------------------------ bare DuckDB


def duckdb_csv(export: str) -> None:
    import duckdb

    con = duckdb.connect()
    rows = con.execute(
        """
        SELECT form, gender, nationality, province, count(*) AS n
        FROM read_csv($path, header = true, delim = ',', all_varchar = true)
        GROUP BY ALL
        """,
        {"path": export},
    ).fetchall()
    print(len(rows))


def floor_sql(columns: dict[str, str], formats: list[str]) -> str:
    """One query: every mapped column cast to its type and counted (count(x) makes DuckDB compute every cast)."""
    def q(name: str) -> str:
        return '"' + name.replace('"', '""') + '"'

    def lit(text: str) -> str:
        return "'" + text.replace("'", "''") + "'"

    counts = ["count(*)"]
    for fname, source in columns.items():
        kind = RULES.get(fname, ("string",))[0]
        col = q(source)
        if kind == "date":
            parsed = ", ".join(f"try_strptime({col}, {lit(f)})" for f in formats)
            expr = f"CAST(COALESCE({parsed}) AS DATE)" if len(formats) > 1 else f"CAST({parsed} AS DATE)"
        elif kind == "integer":
            expr = f"TRY_CAST({col} AS INTEGER)"
        elif kind == "boolean":
            expr = f"TRY_CAST({col} AS BOOLEAN)"
        else:  # text and codes stay text
            expr = col
        counts.append(f"count({expr}) AS {q(fname)}")
    return f"SELECT {', '.join(counts)}\nFROM read_csv($path, header = true, delim = ',', all_varchar = true)"


def duckdb_floor(export: str, mapping: str | None = None) -> None:
    import duckdb

    columns, formats = read_mapping(export, mapping)
    con = duckdb.connect()
    print(con.execute(floor_sql(columns, formats), {"path": export}).fetchone())


def duckdb_bundles(listfile: str, db: str) -> None:
    import duckdb

    files = [line for line in open(listfile, encoding="utf-8").read().splitlines() if line]
    con = duckdb.connect(db)
    con.execute(
        """
        CREATE TABLE envelopes AS
        SELECT filename, payloadType, payload, signatures,
               CAST(decode(from_base64(payload)) AS JSON) AS body
        FROM read_json($files, filename = true, format = 'auto')
        """,
        {"files": files},
    )
    con.execute(
        """
        CREATE TABLE records AS
        SELECT filename, r.pseudonym, r.basis, r.form, r.age_band, r.gender, r.nationality_group, r.province
        FROM (
            SELECT filename, unnest(from_json(body -> 'records',
                '[{"pseudonym":"VARCHAR","basis":"VARCHAR","form":"VARCHAR","age_band":"VARCHAR","gender":"VARCHAR",
                   "nationality_group":"VARCHAR","province":"VARCHAR"}]')) AS r
            FROM envelopes
        )
        """
    )
    print(con.execute("SELECT count(*) FROM records").fetchone()[0])
    con.close()


# ------------------------------------------------------------------ validating peers
# Each check_<peer>(export) returns (valid, detail) and raises only on a fault of its own.


@dataclass(frozen=True)
class Peer:
    name: str
    what: str
    check: "callable"
    cannot: dict[str, str]  # rule kind -> why this peer cannot express it
    notes: str = ""


def check_frictionless(export: str) -> tuple[bool, str]:
    import os

    from frictionless import Checklist, Schema, checks, validate

    fmt = date_format(export)
    descriptor = {"fields": []}
    for name, (kind, required, extra) in RULES.items():
        field = {"name": name, "type": kind}
        constraints = dict(extra)
        if required:
            constraints["required"] = True
        if kind == "date":
            field["format"] = fmt
            constraints["minimum"] = EARLIEST_DATE
            constraints["maximum"] = EXPORT_DATE
        if kind == "boolean":
            field.update(trueValues=["true"], falseValues=["false"])
        field["constraints"] = constraints
        descriptor["fields"].append(field)
    checklist = Checklist(checks=[
        checks.row_constraint(formula="date_of_birth == None or date_of_birth <= report_date"),
        checks.row_constraint(formula="consent_withdrawn_date == None or consent_date == None "
                                      "or consent_withdrawn_date >= consent_date"),
    ])
    # frictionless refuses absolute paths as unsafe: validate the file by name from its own folder.
    folder, name = os.path.split(os.path.abspath(export))
    here = os.getcwd()
    os.chdir(folder)
    try:
        report = validate(name, schema=Schema.from_descriptor(descriptor), checklist=checklist, limit_errors=1000)
    finally:
        os.chdir(here)
    if report.valid:
        return True, f"{report.tasks[0].stats.get('rows')} rows"
    errors = [e for task in report.tasks for e in task.errors]
    return False, "; ".join(sorted({e.type for e in errors}))


def _pandera_checks(pa, kind: str, extra: dict, earliest, latest) -> list:
    """One field's column checks in pandera (`pa`: its pandas or polars module): length, codelist, bounds, and for
    dates the window `earliest`..`latest` in that backend's date type."""
    checks = []
    if "maxLength" in extra:
        checks.append(pa.Check.str_length(max_value=extra["maxLength"]))
    if "enum" in extra:
        checks.append(pa.Check.isin(extra["enum"]))
    if "minimum" in extra:
        checks.append(pa.Check.in_range(extra["minimum"], extra["maximum"]))
    if kind == "date":
        checks.append(pa.Check.in_range(earliest, latest))
    return checks


def check_pandera(export: str) -> tuple[bool, str]:
    import pandas as pd
    import pandera.pandas as pa
    from pandera.engines import pandas_engine

    fmt = date_format(export)
    columns = {}
    for name, (kind, required, extra) in RULES.items():
        c = _pandera_checks(pa, kind, extra, pd.Timestamp(EARLIEST_DATE), pd.Timestamp(EXPORT_DATE))
        if kind == "boolean":  # kept as text: pandas has no strict "true"/"false" coercion from strings
            c.append(pa.Check.isin(["true", "false"]))
        dtype = {
            "string": str, "boolean": str, "integer": "Int64",
            "date": pandas_engine.DateTime(to_datetime_kwargs={"format": fmt}),
        }[kind]
        columns[name] = pa.Column(dtype, checks=c, nullable=not required, coerce=True)
    schema = pa.DataFrameSchema(
        columns,
        checks=[
            pa.Check(lambda df: df["date_of_birth"].isna() | (df["date_of_birth"] <= df["report_date"]),
                     name="birth-after-report"),
            pa.Check(lambda df: df["consent_withdrawn_date"].isna() | df["consent_date"].isna()
                     | (df["consent_withdrawn_date"] >= df["consent_date"]), name="withdrawn-before-consent"),
        ],
    )
    frame = pd.read_csv(export, dtype=str, keep_default_na=False, na_values=[""])
    try:
        schema.validate(frame, lazy=True)
    except pa.errors.SchemaErrors as exc:
        return False, "; ".join(sorted({str(c) for c in exc.failure_cases["check"].head(20)}))
    return True, f"{len(frame)} rows"


def _polars_frame(export: str):
    """The export read as text (like DuckDB's all_varchar), then typed in polars with strict=False, keeping each
    typed field's text beside it as <field>__raw so the peer's own rules can tell a bad value from a missing one.
    (Polars 2 removed string -> date casts, so neither pandera's coerce, patito's cast nor dataframely's cast=True
    can parse the dates themselves.)"""
    import polars as pl

    fmt = date_format(export)
    raw = pl.read_csv(export, infer_schema=False)
    typed = []
    for name, (kind, _, _) in RULES.items():
        col = pl.col(name)
        if kind == "date":
            typed += [col.alias(f"{name}__raw"), col.str.to_date(fmt, strict=False)]
        elif kind == "integer":
            typed += [col.alias(f"{name}__raw"), col.cast(pl.Int64, strict=False)]
        elif kind == "boolean":
            typed += [col.alias(f"{name}__raw"),
                      col.replace_strict({"true": True, "false": False}, default=None, return_dtype=pl.Boolean)]
    return raw.with_columns(typed)


def _parses(name: str):
    """Polars expression, true when the field's text is missing or parsed: the not-a-date/integer/yes-no rules."""
    import polars as pl

    return pl.col(f"{name}__raw").is_null() | pl.col(name).is_not_null()


def _row_rules():
    import polars as pl

    return {
        "birth-after-report": pl.col("date_of_birth").is_null() | (pl.col("date_of_birth") <= pl.col("report_date")),
        "withdrawn-before-consent": pl.col("consent_withdrawn_date").is_null() | pl.col("consent_date").is_null()
        | (pl.col("consent_withdrawn_date") >= pl.col("consent_date")),
    }


def _date(text: str):
    import datetime as dt

    return dt.date.fromisoformat(text)


def check_pandera_polars(export: str) -> tuple[bool, str]:
    import polars as pl
    import pandera.polars as pa

    frame = _polars_frame(export)
    columns = {}
    dtypes = {"string": pl.String, "integer": pl.Int64, "boolean": pl.Boolean, "date": pl.Date}
    frame_checks = []
    for name, (kind, required, extra) in RULES.items():
        c = _pandera_checks(pa, kind, extra, _date(EARLIEST_DATE), _date(EXPORT_DATE))
        columns[name] = pa.Column(dtypes[kind], checks=c, nullable=not required)
        if kind != "string":
            columns[f"{name}__raw"] = pa.Column(pl.String, nullable=True)
            frame_checks.append(pa.Check(lambda data, n=name: data.lazyframe.select(_parses(n)), name=f"parses-{name}"))
    for rule, expr in _row_rules().items():
        frame_checks.append(pa.Check(lambda data, e=expr: data.lazyframe.select(e), name=rule))
    schema = pa.DataFrameSchema(columns, checks=frame_checks)
    try:
        schema.validate(frame, lazy=True)
    except pa.errors.SchemaErrors as exc:
        return False, "; ".join(sorted({str(c) for c in exc.failure_cases["check"].head(20).to_list()}))
    return True, f"{frame.height} rows"


def check_patito(export: str) -> tuple[bool, str]:
    import datetime as dt
    from typing import Literal, Optional

    import patito as pt
    import polars as pl

    frame = _polars_frame(export)
    annotations: dict = {}
    fields: dict = {}
    rules = _row_rules()
    pytypes = {"string": str, "integer": int, "boolean": bool, "date": dt.date}
    for name, (kind, required, extra) in RULES.items():
        kwargs: dict = {}
        constraints = []
        base = pytypes[kind]
        if "enum" in extra:
            base = Literal[tuple(extra["enum"])]
        if "maxLength" in extra:
            kwargs["max_length"] = extra["maxLength"]
        if "minimum" in extra:
            kwargs.update(ge=extra["minimum"], le=extra["maximum"])
        if kind == "date":  # patito drops ge/le on dates without a word (they are not in the JSON schema)
            constraints.append(pl.col(name).is_between(_date(EARLIEST_DATE), _date(EXPORT_DATE)))
        if kind == "integer":
            kwargs["dtype"] = pl.Int64
        if name == "date_of_birth":
            constraints.append(rules["birth-after-report"])
        if name == "consent_withdrawn_date":
            constraints.append(rules["withdrawn-before-consent"])
        if constraints:
            kwargs["constraints"] = constraints
        annotations[name] = base if required else Optional[base]
        fields[name] = pt.Field(**kwargs) if required else pt.Field(default=None, **kwargs)
        if kind != "string":
            annotations[f"{name}__raw"] = Optional[str]
            fields[f"{name}__raw"] = pt.Field(default=None, constraints=[_parses(name)])
    model = type("Registration", (pt.Model,), {"__annotations__": annotations, **fields})
    try:
        model.validate(frame)
    except pt.exceptions.DataFrameValidationError as exc:
        return False, "; ".join(sorted({str(e["loc"][0]) + ": " + e["msg"] for e in exc.errors()}))[:300]
    return True, f"{frame.height} rows"


def check_dataframely(export: str) -> tuple[bool, str]:
    import dataframely as dy
    import polars as pl

    frame = _polars_frame(export)
    attrs: dict = {}
    for name, (kind, required, extra) in RULES.items():
        nullable = not required
        if kind == "string":
            check = None
            if "enum" in extra:
                check = {"in-codelist": (lambda col, codes=extra["enum"]: col.is_in(codes))}
            attrs[name] = dy.String(nullable=nullable, max_length=extra.get("maxLength"), check=check)
        elif kind == "date":
            attrs[name] = dy.Date(nullable=nullable, min=_date(EARLIEST_DATE), max=_date(EXPORT_DATE))
        elif kind == "integer":
            attrs[name] = dy.Int64(nullable=nullable, min=extra.get("minimum"), max=extra.get("maximum"))
        elif kind == "boolean":
            attrs[name] = dy.Bool(nullable=nullable)
        if kind != "string":
            attrs[f"{name}__raw"] = dy.String(nullable=True)
            attrs[f"parses_{name}"] = dy.rule()(lambda cls, n=name: _parses(n))
    for rule, expr in _row_rules().items():
        attrs[rule.replace("-", "_")] = dy.rule()(lambda cls, e=expr: e)
    schema = type("Registration", (dy.Schema,), attrs)
    try:
        schema.validate(frame)
    except dy.exc.ValidationError as exc:
        return False, " ".join(line.strip() for line in str(exc).splitlines())[:300]
    return True, f"{frame.height} rows"


PARSE_IN_POLARS = ("the text is parsed by polars before the library sees it (str.to_date / cast, strict=False); "
                   "the library's own rule then flags text that did not parse")
PEERS = {
    p.name: p
    for p in (
        Peer("frictionless", "frictionless-py validate: Table Schema (types, required, lengths, ranges, enums, "
             "date bounds) + row_constraint checks for the two row rules", check_frictionless, {}),
        Peer("pandera", "pandas read_csv + pandera DataFrameSchema (pandas backend), coerce=True, wide checks for "
             "the row rules", check_pandera, {}),
        Peer("pandera-polars", "polars read_csv + pandera DataFrameSchema (polars backend), dataframe-level checks",
             check_pandera_polars, {}, PARSE_IN_POLARS),
        Peer("patito", "polars read_csv + patito Model (pydantic field constraints, Literal codelists, "
             "polars-expression constraints for the row rules)", check_patito, {},
             PARSE_IN_POLARS + "; date bounds as polars-expression constraints, since patito silently ignores "
             "pydantic ge/le on date fields"),
        Peer("dataframely", "polars read_csv + dataframely Schema (column rules, @dy.rule row rules)",
             check_dataframely, {}, PARSE_IN_POLARS),
    )
}


def run_peer(name: str, export: str) -> None:
    valid, detail = PEERS[name].check(export)
    if not valid:
        sys.exit(f"{name} found the file invalid (expected valid): {detail}")
    print(name, "valid", detail)


# ------------------------------------------------------------------ OpenDP


def opendp(export: str) -> None:
    import warnings

    import opendp.prelude as dp

    warnings.simplefilter("ignore")  # make_split_dataframe is deprecated in favour of the Polars API
    dp.enable_features("contrib")
    text = open(export, encoding="utf-8").read()
    header, _, body = text.partition("\n")
    columns = header.split(",")
    epsilon_each = 1.0 / 7  # the default workload has 7 marginals; here only the 3 on raw columns
    for key, categories in (("form", FORMS), ("gender", GENDERS), ("province", PROVINCES)):
        chain = (
            dp.t.make_split_dataframe(",", columns)
            >> dp.t.make_select_column(key, str)
            >> dp.t.then_count_by_categories(categories, null_category=True)
            >> dp.m.then_laplace(1.0 / epsilon_each)
        )
        print(key, chain(body)[:3])


# ------------------------------------------------------------------ selfcheck

# (rule kind, field shown, changes to one row): each makes exactly one rule of aggregator validate fail.
BAD_ROWS = [
    ("required", "form", {"form": ""}),
    ("required", "report_date", {"report_date": ""}),
    ("too-long", "person_id", {"person_id": "P" * 65}),
    ("too-long", "notes", {"notes": "n" * 4001}),
    ("not-a-date", "report_date", {"report_date": "2025-02-30"}),
    ("not-a-date", "consent_date", {"consent": "true", "consent_date": "15/03/2025"}),
    ("not-an-integer", "age", {"age": "twelve"}),
    ("out-of-range", "age", {"age": "121"}),
    ("not-yes-no", "consent", {"consent": "maybe"}),
    ("unknown-code", "form", {"form": "smuggling"}),
    ("unknown-code", "province", {"province": "NL-XX"}),
    ("not-iso-3166", "nationality", {"nationality": "XX"}),
    ("date-too-early", "date_of_birth", {"date_of_birth": "1899-12-31", "age": ""}),
    ("after-export-date", "report_date", {"report_date": "2026-01-16"}),
    ("after-export-date", "consent_date", {"consent": "true", "consent_date": "2026-02-01"}),
    ("birth-after-report", "date_of_birth", {"date_of_birth": "2025-03-02", "report_date": "2025-03-01", "age": ""}),
    ("withdrawn-before-consent", "consent_withdrawn_date",
     {"consent": "true", "consent_date": "2025-03-02", "consent_withdrawn_date": "2025-03-01"}),
]
# the aggregator's own rule name for each kind (both row rules are `date-order` there)
AGGREGATOR_RULE = {"birth-after-report": "date-order", "withdrawn-before-consent": "date-order"}


def _write_case(base: Path, out: Path, changes: dict[str, str], row_index: int = 3) -> None:
    import csv

    with base.open(newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        header = list(reader.fieldnames or [])
        rows = list(reader)
    rows[row_index].update(changes)
    with out.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=header)
        writer.writeheader()
        writer.writerows(rows)


def check_aggregator(export: str) -> tuple[bool, str]:
    """The reference: aggregator.organisation.validate on the same file (in process)."""
    import datetime as dt

    from aggregator.organisation.validate import validate_export

    report, con = validate_export(Path(export), Path(export).parent / "mapping.toml",
                                  export_date=dt.date.fromisoformat(EXPORT_DATE))
    con.close()
    return report.valid, ", ".join(report.errors_by_rule) or f"{report.rows_read} rows"


def selfcheck(*argv: str) -> None:
    """Every validating peer must accept the clean file and reject each bad row of a rule kind it claims.

    `selfcheck [FOLDER] [--verbose] [--json]`: --verbose prints each peer's reason for every rejection, --json ends
    with one line of JSON per peer (run_all.py reads it); exit 1 when a peer misses a rule it claims.
    """
    import json
    import shutil
    import tempfile

    flags = {a for a in argv if a.startswith("--")}
    folder = next((a for a in argv if not a.startswith("--")), None)
    here = Path(__file__).resolve().parent
    sys.path.insert(0, str(here))
    import data

    work = Path(folder) if folder else Path(tempfile.mkdtemp(prefix="peers-selfcheck-"))
    base, mapping = data.make_export(work / "clean", 40)
    cases = []
    for i, (kind, fname, changes) in enumerate(BAD_ROWS):
        case_dir = work / f"case-{i:02d}"
        case_dir.mkdir(parents=True, exist_ok=True)
        shutil.copy(mapping, case_dir / "mapping.toml")
        _write_case(base, case_dir / "export.csv", changes)
        cases.append((kind, fname, case_dir / "export.csv"))
    checkers = {"aggregator": (check_aggregator, {})} | {n: (p.check, p.cannot) for n, p in PEERS.items()}
    failures: list[str] = []
    summary = {name: {"clean": "", "rejects": 0, "misses": [], "declared_misses": [], "errors": []}
               for name in checkers}
    out = sys.stderr if "--json" in flags else sys.stdout
    width = max(len(f"{k} ({f})") for k, f, _ in cases)
    print(f"{'case':<{width}}  " + "  ".join(f"{n:<14}" for n in checkers), file=out)

    def verdict(check, path) -> tuple[bool | None, str]:
        try:
            return check(str(path))
        except ImportError as exc:
            return None, f"not installed ({exc.name})"
        except Exception as exc:  # a fault of the peer script, not a verdict
            return None, f"{type(exc).__name__}: {str(exc)[:200]}"

    line = f"{'clean file (must pass)':<{width}}  "
    for name, (check, _) in checkers.items():
        ok, detail = verdict(check, base)
        cell = "accepts" if ok else "ERROR" if ok is None else "REJECTS"
        summary[name]["clean"] = cell
        line += f"{cell:<14}  "
        if not ok:
            failures.append(f"{name}: clean file: {detail}")
    print(line, file=out, flush=True)
    reasons = []
    for kind, fname, path in cases:
        label = f"{kind} ({fname})"
        line = f"{label:<{width}}  "
        for name, (check, cannot) in checkers.items():
            ok, detail = verdict(check, path)
            if ok is None:
                cell = "ERROR"
                failures.append(f"{name}: {label}: {detail}")
                summary[name]["errors"].append(label)
            elif not ok:
                cell = "rejects"
                summary[name]["rejects"] += 1
                reasons.append(f"  {label} / {name}: {detail[:160]}")
                if name == "aggregator" and AGGREGATOR_RULE.get(kind, kind) not in detail:
                    cell = "WRONG RULE"
                    failures.append(f"aggregator: {label} rejected for {detail}")
            elif kind in cannot:
                cell = "misses (decl.)"
                summary[name]["declared_misses"].append(label)
            else:
                cell = "MISSES"
                failures.append(f"{name}: accepts a bad row of rule {label}")
                summary[name]["misses"].append(label)
            line += f"{cell:<14}  "
        print(line, file=out, flush=True)
    if "--verbose" in flags:
        print("\nwhy each bad row was rejected:\n" + "\n".join(reasons), file=out)
    for name, peer in PEERS.items():
        if peer.cannot:
            print(f"{name} cannot express: " + "; ".join(f"{k} ({why})" for k, why in peer.cannot.items()), file=out)
    if failures:
        print("\nselfcheck FAILED:\n  " + "\n  ".join(failures), file=out)
    else:
        print(f"\nselfcheck passed: {len(cases)} bad rows over {len(set(k for k, _, _ in cases))} rule kinds; "
              f"every peer accepts the clean file and rejects each rule kind it claims", file=out)
    if "--json" in flags:
        for name, entry in summary.items():
            entry["cases"] = len(cases)
        print(json.dumps(summary))
    if not folder:
        shutil.rmtree(work, ignore_errors=True)
    if failures:
        sys.exit(1)


def describe() -> None:
    """The peers as JSON for run_all.py (which stays small by not importing this module)."""
    import json

    out = {name: {"what": p.what, "cannot": p.cannot, "notes": p.notes, "validates": True} for name, p in PEERS.items()}
    out["opendp"] = {"what": "OpenDP split_dataframe >> select_column >> count_by_categories >> laplace for the 3 "
                             "marginals on raw columns (form, gender, province); no validation, no dedupe",
                     "cannot": {}, "notes": "", "validates": False}
    print(json.dumps(out))


def main() -> None:
    name, *args = sys.argv[1:]
    commands = {
        "describe": describe,
        "duckdb-csv": duckdb_csv,
        "duckdb-floor": duckdb_floor,
        "duckdb-bundles": duckdb_bundles,
        "opendp": opendp,
        "selfcheck": selfcheck,
    }
    if name in PEERS:
        run_peer(name, *args)
    elif name in commands:
        commands[name](*args)
    else:
        sys.exit(f"unknown peer {name!r}; one of {', '.join([*commands, *PEERS])}")


if __name__ == "__main__":
    main()
