"""Baselines and peers, each run as its own process by run_all.py: `python benchmarks/peers.py NAME ARGS...`.

duckdb-csv      EXPORT          bare DuckDB: read_csv + group by the release dimensions (the floor for validate/submit)
duckdb-bundles  LISTFILE DB     bare DuckDB: read_json of the bundle files, decode payloads, insert envelopes and records
frictionless    EXPORT          frictionless-py validating the export against the same field rules
pandera         EXPORT          pandas + pandera validating the export against the same field rules
opendp          EXPORT          OpenDP's own transformation chain: split_dataframe -> select_column ->
                                count_by_categories -> laplace, for the marginals on raw columns (form, gender, province)
"""

from __future__ import annotations

import sys

EXPORT_DATE = "2026-01-15"
FORMS = ["sexual", "labour", "criminal", "organ_removal", "other_unknown"]
GENDERS = ["female", "male", "other", "unknown"]
PROVINCES = ["NL-DR", "NL-FL", "NL-FR", "NL-GE", "NL-GR", "NL-LI", "NL-NB", "NL-NH", "NL-OV", "NL-UT", "NL-ZE", "NL-ZH"]


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


RULES = {
    # field: (type, required, extra constraints) - the same rules aggregator.validate compiles from the schema
    "record_id": ("string", True, {"maxLength": 64}),
    "person_id": ("string", True, {"maxLength": 64}),
    "family_name": ("string", False, {"maxLength": 200}),
    "given_names": ("string", False, {"maxLength": 200}),
    "date_of_birth": ("date", False, {}),
    "age": ("integer", False, {"minimum": 0, "maximum": 120}),
    "report_date": ("date", True, {}),
    "form": ("string", True, {"enum": FORMS}),
    "gender": ("string", False, {"enum": GENDERS}),
    "nationality": ("string", False, {"pattern": "[A-Z]{2}"}),
    "province": ("string", False, {"enum": PROVINCES}),
    "consent": ("boolean", False, {}),
    "consent_date": ("date", False, {}),
    "consent_withdrawn_date": ("date", False, {}),
    "notes": ("string", False, {"maxLength": 4000}),
}


def frictionless(export: str) -> None:
    from frictionless import Resource, Schema, fields  # noqa: F401

    descriptor = {"fields": []}
    for name, (kind, required, extra) in RULES.items():
        constraints = dict(extra)
        if required:
            constraints["required"] = True
        if kind == "date":
            constraints["maximum"] = EXPORT_DATE
            constraints["minimum"] = "1900-01-01"
        descriptor["fields"].append({"name": name, "type": kind, "constraints": constraints})
    import os

    from frictionless import validate

    # frictionless refuses absolute paths as unsafe: validate the file by name from its own folder.
    folder, name = os.path.split(os.path.abspath(export))
    os.chdir(folder)
    report = validate(name, schema=Schema.from_descriptor(descriptor), limit_errors=1000)
    if not report.valid:
        messages = [e.message for task in report.tasks for e in task.errors][:3]
        sys.exit(f"frictionless found the file invalid (expected valid): {messages}")
    print(report.valid, report.stats, report.tasks[0].stats)


def pandera(export: str) -> None:
    import datetime as dt

    import pandas as pd
    import pandera.pandas as pa

    checks = {}
    for name, (kind, required, extra) in RULES.items():
        c = []
        if "maxLength" in extra:
            c.append(pa.Check.str_length(max_value=extra["maxLength"]))
        if "enum" in extra:
            c.append(pa.Check.isin(extra["enum"]))
        if "pattern" in extra:
            c.append(pa.Check.str_matches(extra["pattern"]))
        if "minimum" in extra:
            c.append(pa.Check.in_range(extra["minimum"], extra["maximum"]))
        dtype = {"string": str, "integer": "Int64", "boolean": "boolean", "date": "datetime64[ns]"}[kind]
        if kind == "date":
            c.append(pa.Check.in_range(pd.Timestamp("1900-01-01"), pd.Timestamp(EXPORT_DATE)))
        checks[name] = pa.Column(dtype, checks=c, nullable=not required, coerce=True)
    schema = pa.DataFrameSchema(
        checks,
        checks=[
            pa.Check(lambda df: df["date_of_birth"].isna() | (df["date_of_birth"] <= df["report_date"])),
            pa.Check(lambda df: df["consent_withdrawn_date"].isna() | df["consent_date"].isna()
                     | (df["consent_withdrawn_date"] >= df["consent_date"])),
        ],
    )
    frame = pd.read_csv(export, dtype=str, keep_default_na=True)
    frame["consent"] = frame["consent"].map({"true": True, "false": False})
    validated = schema.validate(frame, lazy=True)
    print(len(validated), dt.date.today().year > 0)


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


def main() -> None:
    name, *args = sys.argv[1:]
    {
        "duckdb-csv": duckdb_csv,
        "duckdb-bundles": duckdb_bundles,
        "frictionless": frictionless,
        "pandera": pandera,
        "opendp": opendp,
    }[name](*args)


if __name__ == "__main__":
    main()
