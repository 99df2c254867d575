"""The coordinator's store: one DuckDB file, its migrations, the registry, merge rules, budget and ledger.

Layout next to the database file `national.duckdb`:
  national.duckdb            derived state: registry, bundles, records, noisy cells, withdrawals, ledger
  national.archive/          every accepted bundle byte for byte as `<sha256>.bundle.json`: the source of truth
  national.evidence/         bundles refused as equivocation, kept as signed proof (never merged)

Merge rules, per bundle, in this order (a refusal names its reason and changes nothing):
  read + open envelope        not-found, oversized, malformed-json, not-an-envelope, bad-signature, ...
  same digest as accepted     duplicate: changes nothing, spends nothing
  key lookup by keyid         unknown-key (organisation or key not registered)
  signature                   bad-signature
  key / organisation state    revoked; retired-key (rotated-out key, bundle received after the rotation)
  payload                     unknown-schema-version, malformed-payload, key-mismatch, org-mismatch,
                              kind-mismatch, reporter-type-mismatch, statutory-from-non-investigative,
                              created-in-future, lifetime-too-long, expired, malformed-release,
                              scale-too-small; records sharing a pseudonym are kept as one person (a note)
  replay / rollback           equivocation (same org, period, sequence, other digest), stale-sequence
                              (lower than the latest accepted sequence)
  budget                      over-budget (exact fractions: spent + this bundle <= cap)
Bundles of one run are checked first and then ingested sorted by (organisation, period, sequence), so the
order of the files on the command line does not matter.

How a merge run works (fast for thousands of bundles, same outcome as merging them one by one in that order):
  1. the state the rules need is read once: accepted digests, (org, period, sequence) -> digest, latest sequence
     and exact epsilon spent per (org, period), bundles not yet superseded, the registry keys, the ledger head;
  2. every bundle is read, opened, verified and parsed ("verify" progress; plain records and cells are checked
     directly and kept as columns, anything else goes through the Payload model: payload.py), then the replay,
     rollback and budget rules run in Python in (org, period, sequence) order against that state, which each
     accepted bundle updates (so later bundles of the run see it), and its ledger entry is chained in memory
     ("ingest" progress);
  3. all accepted bundles are written in ONE transaction, one set insert per table (UNNEST of column lists; the
     records, marginals and cells as one row per bundle of joined columns: batch.py), superseded_by and the
     withdrawal flags by one UPDATE each;
  4. still inside the transaction, the archive files are written in a background thread while DuckDB inserts
     the rows (temp file written and fsynced through its descriptor, the fsyncs in parallel threads, rename, one
     fsync of the folder); COMMIT only after both.
A refused bundle is never written. If anything fails before COMMIT (archive full, a database error) the
transaction rolls back and the archive files this run created are removed: nothing of the run is merged and the
error says so. If the process dies between the archive writes and COMMIT, archive files without a bundle row
can remain; the audit's `archive-coverage` check reports them, and merging the same bundles again adopts them
(an existing archive file is kept as it is). They are deliberately NOT deleted automatically at the start of
the next merge: the archive is the source of truth, and a merge that deleted archive files without rows could
destroy the archive of a store whose database file was lost and is being rebuilt from that archive.

Every accepted bundle, and every registry change, appends a ledger entry whose hash covers the previous
entry's hash (sha256 over RFC 8785 canonical JSON of the entry including `prev_hash`).
"""


from __future__ import annotations

import datetime as dt
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import duckdb

from ..errors import ConfigError, InputError, StoreBusy
from ..util.clock import store_now
from .migrations import MIGRATIONS, SCHEMA_VERSION_SQL


def archive_dir(db_path: Path) -> Path:
    return db_path.parent / f"{db_path.stem}.archive"


def evidence_dir(db_path: Path) -> Path:
    return db_path.parent / f"{db_path.stem}.evidence"


def _connect(db_path: Path, read_only: bool) -> duckdb.DuckDBPyConnection:
    try:
        con = duckdb.connect(str(db_path), read_only=read_only)
        con.execute("SET enable_progress_bar = false")  # DuckDB's own bars on long queries would clutter stderr
        return con
    except duckdb.IOException as exc:
        if "lock" in str(exc).lower():
            raise StoreBusy(f"store is busy: another aggregator process is using {db_path.name}") from None
        raise InputError(f"cannot open the store {db_path.name}: not a readable DuckDB database") from None
    except duckdb.Error:
        raise InputError(f"cannot open the store {db_path.name}: not a readable DuckDB database") from None


def _version(con: duckdb.DuckDBPyConnection) -> int:
    con.execute(SCHEMA_VERSION_SQL)
    return int(con.execute("SELECT coalesce(max(version), 0) FROM schema_version").fetchone()[0])


def migrate(con: duckdb.DuckDBPyConnection, now: dt.datetime | None = None) -> int:
    """Apply the migrations this store lacks, each in its own transaction; returns the schema version."""
    current = _version(con)
    if current > len(MIGRATIONS):
        raise ConfigError(
            f"the store has schema version {current}, newer than this aggregator knows ({len(MIGRATIONS)}); upgrade aggregator"
        )
    for version, sql in enumerate(MIGRATIONS[current:], start=current + 1):
        with atomic(con):
            con.execute(sql)
            con.execute("INSERT INTO schema_version VALUES (?, ?)", [version, store_now(now)])
    return len(MIGRATIONS)


# The one definition of the bundles that count in the tables: the current (not superseded) bundle of each
# organisation and period, with its organisation's attributes. A CTE named `live`; `$period` NULL means every period.
CURRENT_BUNDLES_SQL = """
live AS (
    SELECT b.digest, b.org_id, b.period, b.sequence, b.created_at, o.kind, o.reporter_type
    FROM bundles AS b JOIN organisations AS o ON o.id = b.org_id
    WHERE b.superseded_by IS NULL AND ($period IS NULL OR b.period = $period)
)"""


@contextmanager
def atomic(con: duckdb.DuckDBPyConnection) -> Iterator[duckdb.DuckDBPyConnection]:
    """The one place a store transaction begins and ends: COMMIT when the block succeeds, else ROLLBACK and re-raise."""
    con.execute("BEGIN TRANSACTION")
    try:
        yield con
    except BaseException:
        try:
            con.execute("ROLLBACK")
        except duckdb.Error:  # the failure may already have ended the transaction
            pass
        raise
    con.execute("COMMIT")


def require_store(db_path: Path) -> None:
    """Refuse to work on a store that does not exist yet: only `registry add` (or an explicit --create) makes one,
    so a mistyped --db is an error instead of a new, empty store that refuses every bundle."""
    if not Path(db_path).exists():
        raise ConfigError(
            f"no coordinator store at {db_path}; check the path, or start one with `aggregator registry add` "
            "(merge --create makes an empty one)"
        )


@contextmanager
def open_store(db_path: Path, *, write: bool = True) -> Iterator[duckdb.DuckDBPyConnection]:
    """A connection to the coordinator store, migrated to the current schema.

    Writing creates the file on first use. Reading needs an existing store and opens it read-only, so several
    readers can work at once; DuckDB allows one writing process, and a second one gets StoreBusy.
    """
    db_path = Path(db_path)
    if not write and not db_path.exists():
        raise ConfigError(f"no coordinator store at {db_path}; start one with `aggregator registry add`")
    if write:
        db_path.parent.mkdir(parents=True, exist_ok=True)
    con = _connect(db_path, read_only=not write)
    try:
        if write:
            migrate(con)
        else:
            version = int(
                con.execute(
                    "SELECT coalesce(max(version), 0) FROM schema_version"
                ).fetchone()[0]
            ) if _has_table(con, "schema_version") else 0
            if version != len(MIGRATIONS):
                con.close()
                if version > len(MIGRATIONS):
                    raise ConfigError(
                        f"the store has schema version {version}, newer than this aggregator knows ({len(MIGRATIONS)})"
                    )
                upgrade = _connect(db_path, read_only=False)
                try:
                    migrate(upgrade)
                finally:
                    upgrade.close()
                con = _connect(db_path, read_only=True)
        yield con
    finally:
        con.close()


def _has_table(con: duckdb.DuckDBPyConnection, name: str) -> bool:
    return bool(
        con.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_name = ? AND table_schema = 'main'", [name]
        ).fetchone()[0]
    )


def schema_version(db_path: Path) -> int:
    with open_store(db_path, write=False) as con:
        return int(con.execute("SELECT max(version) FROM schema_version").fetchone()[0])
