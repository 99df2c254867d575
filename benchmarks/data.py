"""Benchmark inputs, made with a fixed seed in a scratch folder (never committed).

- `make_export`: an N-row CSV export of a non-investigative organisation with low consent, written by DuckDB COPY,
  with identity-like column names so the mapping is (almost) one to one; every row is valid.
- `make_bundles`: N signed bundles of fictional organisations (records with consent + the default noisy marginals)
  and a coordinator database with those organisations already registered.
"""

from __future__ import annotations

import datetime as dt
import itertools
import math
import random
from fractions import Fraction
from pathlib import Path

EXPORT_DATE = "2026-01-15"
PERIOD = 2025
COLUMNS = (
    "record_id", "person_id", "family_name", "given_names", "date_of_birth", "age", "report_date", "form", "gender",
    "nationality", "province", "consent", "consent_date", "consent_withdrawn_date", "notes",
)
CONSENT_SHARE = 0.03  # low consent: most people may not be reported individually
PEOPLE_PER_ROW = 0.8  # some people have more than one registration row

MAPPING = f"""# Benchmark mapping: the export already uses the schema's field names.
date_formats = ["%Y-%m-%d"]

[file]
format = "csv"
delimiter = ","
encoding = "utf-8"

[columns]
{chr(10).join(f'{c} = "{c}"' for c in COLUMNS)}
"""

# Release dimensions as they appear in the export; the SQL below picks among them with a seeded hash.
FORMS = ["sexual", "labour", "criminal", "organ_removal", "other_unknown"]
GENDERS = ["female", "male", "other", "unknown"]
NATIONALITIES = ["NL", "PL", "RO", "BG", "NG", "UA", "MA", "VN", "CN", "ER"]
PROVINCES = ["NL-DR", "NL-FL", "NL-FR", "NL-GE", "NL-GR", "NL-LI", "NL-NB", "NL-NH", "NL-OV", "NL-UT", "NL-ZE", "NL-ZH"]


def _sql_list(values: list[str]) -> str:
    return "[" + ", ".join(f"'{v}'" for v in values) + "]"


def make_export(folder: Path, rows: int, seed: int = 20251231) -> tuple[Path, Path]:
    """Write export.csv (rows rows) and mapping.toml into folder; returns (export, mapping)."""
    import duckdb

    folder.mkdir(parents=True, exist_ok=True)
    export = folder / f"export-{rows}.csv"
    mapping = folder / "mapping.toml"
    mapping.write_text(MAPPING, encoding="utf-8")
    if export.exists():
        return export, mapping
    people = max(1, int(rows * PEOPLE_PER_ROW))
    consent_per_mille = int(CONSENT_SHARE * 1000)
    # h(i, k): a seeded pseudo-random integer per row and purpose; deterministic for a given seed.
    h = lambda k: f"hash(i, {seed}, {k})"  # noqa: E731
    con = duckdb.connect()
    con.execute("SET preserve_insertion_order = true")
    tmp = export.with_suffix(".tmp")
    con.execute(
        f"""
        COPY (
            WITH base AS (
                SELECT i, (({h(1)}) % {people}) AS p FROM range({rows}) t(i)
            )
            SELECT
                'R' || lpad(CAST(i AS VARCHAR), 9, '0') AS record_id,
                'P' || lpad(CAST(p AS VARCHAR), 9, '0') AS person_id,
                'Family' || CAST(p AS VARCHAR) AS family_name,
                'Given' || CAST(p % 9973 AS VARCHAR) AS given_names,
                CASE WHEN hash(p, {seed}, 2) % 10 = 0 THEN NULL
                     ELSE DATE '1960-01-01' + CAST(hash(p, {seed}, 3) % 16000 AS INTEGER) END AS date_of_birth,
                CASE WHEN hash(p, {seed}, 2) % 10 = 0 THEN CAST(hash(p, {seed}, 4) % 60 + 12 AS INTEGER) END AS age,
                DATE '{PERIOD}-01-01' + CAST({h(5)} % 365 AS INTEGER) AS report_date,
                {_sql_list(FORMS)}[1 + CAST({h(6)} % 5 AS INTEGER)] AS form,
                {_sql_list(GENDERS)}[1 + CAST({h(7)} % 4 AS INTEGER)] AS gender,
                CASE WHEN {h(8)} % 20 = 0 THEN NULL
                     ELSE {_sql_list(NATIONALITIES)}[1 + CAST({h(9)} % {len(NATIONALITIES)} AS INTEGER)] END AS nationality,
                CASE WHEN {h(10)} % 25 = 0 THEN NULL
                     ELSE {_sql_list(PROVINCES)}[1 + CAST({h(11)} % {len(PROVINCES)} AS INTEGER)] END AS province,
                CASE WHEN hash(p, {seed}, 12) % 1000 < {consent_per_mille} THEN 'true' ELSE 'false' END AS consent,
                CASE WHEN hash(p, {seed}, 12) % 1000 < {consent_per_mille}
                     THEN DATE '{PERIOD}-01-01' + CAST(hash(p, {seed}, 13) % 300 AS INTEGER) END AS consent_date,
                CAST(NULL AS DATE) AS consent_withdrawn_date,
                CASE WHEN {h(14)} % 3 = 0 THEN 'free text note ' || CAST(i AS VARCHAR) END AS notes
            FROM base
            ORDER BY i
        ) TO '{tmp}' (FORMAT csv, HEADER true, DELIMITER ',')
        """
    )
    con.close()
    tmp.rename(export)
    return export, mapping


# ------------------------------------------------------------------ bundles


def _marginals(rng: random.Random):
    from aggregator.contract.codelists import codes
    from aggregator.privacy.workload import DEFAULT_WORKLOAD, split_epsilon
    from aggregator.privacy.mechanism import discrete_laplace_quantile, discrete_laplace_variance
    from aggregator.contract.schema import Cell, Marginal

    out = []
    for dims, eps in zip(DEFAULT_WORKLOAD, split_epsilon(Fraction(1), DEFAULT_WORKLOAD)):
        scale = float(1 / eps)
        variance = discrete_laplace_variance(scale)
        cells = [Cell(key=list(key), count=rng.randint(-5, 40)) for key in itertools.product(*(codes(d) for d in dims))]
        out.append(
            Marginal(
                dimensions=list(dims), epsilon=str(eps), scale=scale, variance=variance,
                expected_error_95=float(discrete_laplace_quantile(scale)), cells=cells,
            )
        )
    return out


def make_bundles(folder: Path, n: int, *, records_per_bundle: int = 20, periods: int = 5, seed: int = 7) -> tuple[list[Path], Path]:
    """n signed bundles from ceil(n / periods) organisations (one bundle per org and period) and a registry DB.

    Returns (bundle files, registry database). Copy the database before merging into it.
    """
    from cryptography.hazmat.primitives import serialization

    from aggregator.contract.envelope import bundle_filename, canonical_json, sha256_hex, sign_payload
    from aggregator.contract.keys import generate_keypair, key_id
    from aggregator.contract.codelists import codes
    from aggregator.privacy.epsilon import PRIVACY_UNIT
    from aggregator.contract.schema import OrgRef, Payload, Record, Release
    from aggregator.coordinator.registry import register_org

    rng = random.Random(seed)
    folder.mkdir(parents=True, exist_ok=True)
    inbox = folder / "inbox"
    registry = folder / "registry.duckdb"
    marker = folder / f"done-{n}-{records_per_bundle}"
    if marker.exists():
        return sorted(inbox.glob("*.bundle.json")), registry
    for old in list(inbox.glob("*.bundle.json")) + [registry, Path(str(registry) + ".wal")]:
        old.unlink(missing_ok=True)
    inbox.mkdir(exist_ok=True)
    orgs = math.ceil(n / periods)
    created = dt.datetime.now(dt.timezone.utc).replace(microsecond=0) - dt.timedelta(minutes=10)
    files = []
    dims = {d: codes(d) for d in ("form", "age_band", "gender", "nationality_group", "province")}
    for o in range(orgs):
        org_id = f"bench-org-{o:04d}"
        pem, raw_public = generate_keypair()
        private_key = serialization.load_pem_private_key(pem, password=None)
        register_org(registry, org_id, kind="non_investigative", reporter_type="shelter", public_key=raw_public, cap="1")
        for k in range(periods):
            if len(files) == n:
                break
            period = PERIOD - k
            records = [
                Record(
                    pseudonym=f"{rng.getrandbits(256):064x}", basis="consent",
                    **{d: rng.choice(values) for d, values in dims.items()},
                )
                for _ in range(records_per_bundle)
            ]
            payload = Payload(
                organisation=OrgRef(id=org_id, kind="non_investigative", reporter_type="shelter"),
                key_id=key_id(raw_public), period=period, sequence=1, created_at=created,
                expires_at=created + dt.timedelta(days=90), records=records, withdrawals=[],
                release=Release(privacy_unit=PRIVACY_UNIT, library="benchmark", epsilon="1", marginals=_marginals(rng)),
            )
            envelope = sign_payload(canonical_json(payload.model_dump(mode="json")), private_key)
            path = inbox / bundle_filename(sha256_hex(envelope))
            path.write_bytes(envelope)
            files.append(path)
    marker.write_text("ok")
    return sorted(files), registry


def main() -> None:
    """`python benchmarks/data.py export FOLDER ROWS` or `... bundles FOLDER N`: print the paths as JSON.

    run_all.py calls this in a child process so that its own memory stays small: on Linux a child's ru_maxrss
    starts from the RSS of the parent it was forked from.
    """
    import json
    import sys

    what, folder, n = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3])
    if what == "export":
        export, mapping = make_export(folder, n)
        print(json.dumps({"export": str(export), "mapping": str(mapping)}))
    elif what == "bundles":
        files, registry = make_bundles(folder, n)
        print(json.dumps({"files": [str(f) for f in files], "registry": str(registry)}))
    else:
        sys.exit(f"unknown input kind {what!r}")


if __name__ == "__main__":
    main()
