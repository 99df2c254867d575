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
  key / organisation state    revoked; retired-key (rotated-out key, bundle created after the rotation)
  payload                     unknown-schema-version, malformed-payload, key-mismatch, org-mismatch,
                              kind-mismatch, reporter-type-mismatch, statutory-from-non-investigative,
                              duplicate-record, malformed-release, scale-too-small, expired
  replay / rollback           equivocation (same org, period, sequence, other digest), stale-sequence
                              (lower than the latest accepted sequence)
  budget                      over-budget (exact fractions: spent + this bundle <= cap)
Bundles of one run are checked first and then ingested sorted by (organisation, period, sequence), so the
order of the files on the command line does not matter.

How a merge run works (fast for thousands of bundles, same outcome as merging them one by one in that order):
  1. the state the rules need is read once: accepted digests, (org, period, sequence) -> digest, latest sequence
     and exact epsilon spent per (org, period), bundles not yet superseded, the registry keys, the ledger head;
  2. every bundle is read, opened, verified and parsed ("verify" progress), then the replay, rollback and budget
     rules run in Python in (org, period, sequence) order against that state, which each accepted bundle updates
     (so later bundles of the run see it), and its ledger entry is chained in memory ("ingest" progress);
  3. all accepted bundles are written in ONE transaction, one set insert per table (UNNEST of column lists),
     superseded_by and the withdrawal flags by one UPDATE each;
  4. still inside the transaction, the archive files are written in a background thread while DuckDB inserts
     the rows (temp file, fsync in parallel threads, rename, one fsync of the folder); COMMIT only after both.
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

import base64
import datetime as dt
import itertools
import json
import math
import os
import re
import tempfile
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from fractions import Fraction
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Sequence

import duckdb

from .bundle import (
    atomic_write,
    bundle_filename,
    canonical_json,
    key_id,
    open_envelope,
    parse_payload,
    read_public_key_file,
    read_bundle_file,
    sha256_hex,
    verify_envelope,
)
from .engine import quote_ident
from .privacy import decimal_text, discrete_laplace_variance, exact_text
from .codelists import DIMENSIONS, INVESTIGATIVE_REPORTERS, OrgKind, ReporterType, codes
from .errors import BundleRejected, ConfigError, InputError, StoreBusy, UsageError

GENESIS_HASH = "0" * 64
UTC = dt.timezone.utc
_ORG_ID = re.compile(r"[a-z0-9][a-z0-9-]{1,62}")

# ------------------------------------------------------------------ schema migrations
# Ordered; never edit a released migration, append a new one. `schema_version` records what was applied.

MIGRATIONS: list[str] = [
    # 1: initial schema
    """
    CREATE TABLE organisations (
        id            VARCHAR PRIMARY KEY,
        kind          VARCHAR NOT NULL,          -- investigative | non_investigative
        reporter_type VARCHAR NOT NULL,
        cap           VARCHAR NOT NULL,          -- exact epsilon cap per period, e.g. '1' or '1/2'
        status        VARCHAR NOT NULL,          -- active | revoked
        registered_at TIMESTAMP NOT NULL,        -- UTC
        revoked_at    TIMESTAMP
    );
    CREATE TABLE org_keys (
        keyid      VARCHAR PRIMARY KEY,          -- bundle.key_id(raw public key)
        org_id     VARCHAR NOT NULL,
        public_key VARCHAR NOT NULL,             -- base64 of the raw 32-byte Ed25519 key
        valid_from TIMESTAMP NOT NULL,
        retired_at TIMESTAMP,                    -- replaced by a rotation: bundles created before still merge
        revoked_at TIMESTAMP                     -- revoked: nothing signed with it merges any more
    );
    CREATE TABLE bundles (
        digest        VARCHAR PRIMARY KEY,       -- sha256 of the envelope file = its archive name
        org_id        VARCHAR NOT NULL,
        period        INTEGER NOT NULL,
        sequence      INTEGER NOT NULL,
        keyid         VARCHAR NOT NULL,
        created_at    TIMESTAMP NOT NULL,
        expires_at    TIMESTAMP NOT NULL,
        received_at   TIMESTAMP NOT NULL,
        ledger_index  BIGINT NOT NULL,           -- the ledger entry that accepted it
        epsilon       VARCHAR NOT NULL,          -- exact; '0' when the bundle has no release
        n_records     INTEGER NOT NULL,
        n_withdrawals INTEGER NOT NULL,
        superseded_by VARCHAR,                   -- digest of the higher sequence that replaced it in the table
        flagged       VARCHAR,                   -- a note for auditors on an accepted bundle
        UNIQUE (org_id, period, sequence)
    );
    CREATE TABLE records (
        digest            VARCHAR NOT NULL,
        org_id            VARCHAR NOT NULL,
        period            INTEGER NOT NULL,
        pseudonym         VARCHAR NOT NULL,
        basis             VARCHAR NOT NULL,
        form              VARCHAR NOT NULL,
        age_band          VARCHAR NOT NULL,
        gender            VARCHAR NOT NULL,
        nationality_group VARCHAR NOT NULL,
        province          VARCHAR NOT NULL,
        PRIMARY KEY (digest, pseudonym)
    );
    CREATE TABLE marginals (
        digest            VARCHAR NOT NULL,
        marginal_index    INTEGER NOT NULL,
        dimensions        VARCHAR[] NOT NULL,
        epsilon           VARCHAR NOT NULL,
        scale             DOUBLE NOT NULL,
        variance          DOUBLE NOT NULL,       -- discrete Laplace variance of one cell
        expected_error_95 DOUBLE NOT NULL,
        PRIMARY KEY (digest, marginal_index)
    );
    CREATE TABLE noisy_cells (
        digest            VARCHAR NOT NULL,
        marginal_index    INTEGER NOT NULL,
        form              VARCHAR,               -- NULL: not a dimension of this marginal
        age_band          VARCHAR,
        gender            VARCHAR,
        nationality_group VARCHAR,
        province          VARCHAR,
        count             BIGINT NOT NULL
    );
    CREATE TABLE withdrawals (
        digest    VARCHAR NOT NULL,
        org_id    VARCHAR NOT NULL,
        period    INTEGER NOT NULL,
        pseudonym VARCHAR NOT NULL,
        PRIMARY KEY (digest, period, pseudonym)
    );
    CREATE TABLE ledger (
        idx       BIGINT PRIMARY KEY,            -- 1, 2, 3, ...
        event     VARCHAR NOT NULL,              -- register | rotate | revoke | accept
        org_id    VARCHAR NOT NULL,
        period    INTEGER,
        digest    VARCHAR,
        epsilon   VARCHAR,
        entry     VARCHAR NOT NULL,              -- canonical JSON of the entry, including prev_hash
        prev_hash VARCHAR NOT NULL,
        hash      VARCHAR NOT NULL               -- sha256 of `entry`
    );
    """,
]
SCHEMA_VERSION_SQL = """
CREATE TABLE IF NOT EXISTS schema_version (
    version    INTEGER PRIMARY KEY,
    applied_at TIMESTAMP NOT NULL
)
"""


# ------------------------------------------------------------------ small helpers

def utc_naive(value: dt.datetime) -> dt.datetime:
    """A datetime as naive UTC (how the store keeps time); naive input is taken to be UTC already."""
    if value.tzinfo is None:
        return value
    return value.astimezone(UTC).replace(tzinfo=None)


def iso(value: dt.datetime | None) -> str | None:
    """Naive-UTC datetime -> 'YYYY-MM-DDTHH:MM:SS.ffffffZ'."""
    if value is None:
        return None
    return utc_naive(value).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _now(now: dt.datetime | None) -> dt.datetime:
    # Microsecond precision is what DuckDB's TIMESTAMP keeps.
    return utc_naive(now if now is not None else dt.datetime.now(UTC))


def exact(text: str, what: str = "epsilon") -> Fraction:
    """Exact rational from '1', '0.25' or '1/7'; never through a float."""
    try:
        value = Fraction(str(text).strip())
    except (ValueError, ZeroDivisionError):
        raise InputError(f"{what} must be an exact number such as 1, 0.5 or 1/7") from None
    return value




def archive_dir(db_path: Path) -> Path:
    return db_path.parent / f"{db_path.stem}.archive"


def evidence_dir(db_path: Path) -> Path:
    return db_path.parent / f"{db_path.stem}.evidence"


# ------------------------------------------------------------------ opening the store

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
        con.execute("BEGIN TRANSACTION")
        try:
            con.execute(sql)
            con.execute("INSERT INTO schema_version VALUES (?, ?)", [version, _now(now)])
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
    return len(MIGRATIONS)


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


# ------------------------------------------------------------------ the hash-chained ledger

def entry_hash(entry: dict[str, Any]) -> str:
    """sha256 over the canonical JSON of the entry (which includes prev_hash, never its own hash)."""
    return sha256_hex(canonical_json(entry))


def _append_ledger(con: duckdb.DuckDBPyConnection, event: str, body: dict[str, Any], now: dt.datetime) -> int:
    """Append one entry inside the caller's transaction; returns its index."""
    last = con.execute("SELECT idx, hash FROM ledger ORDER BY idx DESC LIMIT 1").fetchone()
    index = (last[0] + 1) if last else 1
    prev_hash = last[1] if last else GENESIS_HASH
    entry = {"index": index, "event": event, "at": iso(now), **body, "prev_hash": prev_hash}
    text = canonical_json(entry).decode("utf-8")
    con.execute(
        """
        INSERT INTO ledger (idx, event, org_id, period, digest, epsilon, entry, prev_hash, hash)
        VALUES ($idx, $event, $org, $period, $digest, $epsilon, $entry, $prev_hash, $hash)
        """,
        {
            "idx": index,
            "event": event,
            "org": body["org"],
            "period": body.get("period"),
            "digest": body.get("digest"),
            "epsilon": body.get("epsilon"),
            "entry": text,
            "prev_hash": prev_hash,
            "hash": entry_hash(entry),
        },
    )
    return index


def verify_chain(entries: Iterable[dict[str, Any]]) -> list[str]:
    """Problems in a sequence of exported ledger entries (each with its `hash`); empty when the chain holds."""
    problems: list[str] = []
    prev = GENESIS_HASH
    expected_index = 1
    for item in entries:
        entry = {k: v for k, v in item.items() if k != "hash"}
        index = entry.get("index")
        if index != expected_index:
            problems.append(f"ledger entry {expected_index}: index is {index!r}")
        if entry.get("prev_hash") != prev:
            problems.append(f"ledger entry {index}: prev_hash does not match the previous entry's hash")
        try:
            computed = entry_hash(entry)
        except BundleRejected:
            computed = ""
        if item.get("hash") != computed:
            problems.append(f"ledger entry {index}: hash does not match its content")
        prev = str(item.get("hash"))
        expected_index += 1
    return problems


@dataclass
class LedgerCheck:
    """Result of `budget --verify`: the hash chain and its agreement with the bundles it accounts for."""

    ok: bool
    entries: int
    head: str
    problems: list[str]

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _ledger_rows(con: duckdb.DuckDBPyConnection) -> list[tuple]:
    return con.execute(
        "SELECT idx, event, org_id, period, digest, epsilon, entry, prev_hash, hash FROM ledger ORDER BY idx"
    ).fetchall()


def verify_ledger(db_path: Path, *, check_archive: bool = True) -> LedgerCheck:
    """Recompute the hash chain and check it against the bundles table (and the archive files)."""
    with open_store(db_path, write=False) as con:
        rows = _ledger_rows(con)
        bundles = con.execute(
            "SELECT digest, org_id, period, epsilon, ledger_index FROM bundles ORDER BY ledger_index"
        ).fetchall()
        caps = dict(con.execute("SELECT id, cap FROM organisations").fetchall())
    problems: list[str] = []
    entries: list[dict[str, Any]] = []
    for idx, event, org_id, period, digest, epsilon, text, prev_hash, hash_ in rows:
        try:
            entry = json.loads(text)
        except ValueError:
            problems.append(f"ledger entry {idx}: stored entry is not JSON")
            entry = {}
        if not isinstance(entry, dict):
            entry = {}
        if entry.get("prev_hash") != prev_hash:
            problems.append(f"ledger entry {idx}: prev_hash column differs from the entry")
        columns = {"index": idx, "event": event, "org": org_id, "period": period, "digest": digest, "epsilon": epsilon}
        for name, value in columns.items():
            if entry.get(name) != value:
                problems.append(f"ledger entry {idx}: column {name} differs from the hashed entry")
        entries.append({**entry, "hash": hash_})
    problems.extend(verify_chain(entries))

    # Every accepted bundle has exactly one accept entry that agrees with it; spending stays within the cap.
    accepts = {e.get("digest"): e for e in entries if e.get("event") == "accept"}
    seen_bundles = set()
    for digest, org_id, period, epsilon, ledger_index in bundles:
        seen_bundles.add(digest)
        entry = accepts.get(digest)
        if entry is None:
            problems.append(f"bundle {digest[:12]} has no ledger entry")
            continue
        if (entry.get("org"), entry.get("period"), entry.get("epsilon"), entry.get("index")) != (
            org_id, period, epsilon, ledger_index
        ):
            problems.append(f"bundle {digest[:12]} differs from its ledger entry")
    for digest in accepts:
        if digest not in seen_bundles:
            problems.append(f"ledger entry for bundle {str(digest)[:12]} has no bundle in the store")
    spent: dict[tuple[str, int], Fraction] = {}
    for entry in entries:
        if entry.get("event") != "accept":
            continue
        key = (entry.get("org"), entry.get("period"))
        try:
            spent[key] = spent.get(key, Fraction(0)) + Fraction(str(entry.get("epsilon")))
            if Fraction(str(entry.get("spent"))) != spent[key]:
                problems.append(f"ledger entry {entry.get('index')}: running total does not add up")
            if spent[key] > Fraction(str(caps.get(entry.get("org"), entry.get("cap")))):
                problems.append(f"ledger entry {entry.get('index')}: spending exceeds the cap")
        except (ValueError, ZeroDivisionError):
            problems.append(f"ledger entry {entry.get('index')}: epsilon is not an exact number")
    if check_archive:
        folder = archive_dir(Path(db_path))
        for digest in sorted(seen_bundles):
            path = folder / bundle_filename(digest)
            if not path.exists():
                problems.append(f"bundle {digest[:12]} is missing from the archive")
            elif sha256_hex(path.read_bytes()) != digest:
                problems.append(f"archived bundle {digest[:12]} does not match its digest")
    head = entries[-1]["hash"] if entries else GENESIS_HASH
    return LedgerCheck(ok=not problems, entries=len(entries), head=head, problems=problems)


def ledger_entries(db_path: Path) -> list[dict[str, Any]]:
    """The ledger as a list of entries, each with its `hash`, in order."""
    with open_store(db_path, write=False) as con:
        rows = _ledger_rows(con)
    return [{**json.loads(row[6]), "hash": row[8]} for row in rows]


def export_ledger(db_path: Path, out: Path) -> int:
    """Write the ledger as JSON lines (canonical JSON per line, hash included); returns the number of entries."""
    entries = ledger_entries(db_path)
    data = b"".join(canonical_json(e) + b"\n" for e in entries)
    write_output(Path(out), data)
    return len(entries)


def write_output(path: Path, data: bytes) -> None:
    """Atomic write of a file the user named; an unwritable place is an InputError, not a traceback."""
    try:
        atomic_write(Path(path), data)
    except OSError as exc:
        raise InputError(f"cannot write {Path(path).name or path}: {exc.strerror or type(exc).__name__}") from None


def verify_ledger_file(path: Path) -> LedgerCheck:
    """Check the hash chain of an exported ledger (JSON lines) without the store."""
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError):
        raise InputError(f"cannot read ledger file {Path(path).name}") from None
    entries: list[dict[str, Any]] = []
    problems: list[str] = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except ValueError:
            problems.append(f"line {number} is not JSON")
            continue
        entries.append(item if isinstance(item, dict) else {})
    problems.extend(verify_chain(entries))
    head = str(entries[-1].get("hash")) if entries else GENESIS_HASH
    return LedgerCheck(ok=not problems, entries=len(entries), head=head, problems=problems)


# ------------------------------------------------------------------ registry

@dataclass
class KeyEntry:
    keyid: str
    valid_from: str
    retired_at: str | None
    revoked_at: str | None

    @property
    def status(self) -> str:
        if self.revoked_at:
            return "revoked"
        if self.retired_at:
            return "retired"
        return "active"

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "status": self.status}


@dataclass
class OrgEntry:
    id: str
    kind: str
    reporter_type: str
    cap: str
    status: str
    registered_at: str
    revoked_at: str | None
    keys: list[KeyEntry]

    def as_dict(self) -> dict[str, Any]:
        return {**{k: v for k, v in asdict(self).items() if k != "keys"}, "keys": [k.as_dict() for k in self.keys]}



def _org_entry(con: duckdb.DuckDBPyConnection, org_id: str) -> OrgEntry | None:
    row = con.execute(
        "SELECT id, kind, reporter_type, cap, status, registered_at, revoked_at FROM organisations WHERE id = ?",
        [org_id],
    ).fetchone()
    if row is None:
        return None
    keys = [
        KeyEntry(keyid, iso(valid_from), iso(retired_at), iso(revoked_at))
        for keyid, valid_from, retired_at, revoked_at in con.execute(
            "SELECT keyid, valid_from, retired_at, revoked_at FROM org_keys WHERE org_id = ? ORDER BY valid_from, keyid",
            [org_id],
        ).fetchall()
    ]
    return OrgEntry(row[0], row[1], row[2], row[3], row[4], iso(row[5]), iso(row[6]), keys)


def _check_key_free(con: duckdb.DuckDBPyConnection, keyid: str) -> None:
    owner = con.execute("SELECT org_id FROM org_keys WHERE keyid = ?", [keyid]).fetchone()
    if owner is not None:
        raise ConfigError(f"public key {keyid} is already registered (organisation {owner[0]})")


def register_org(
    db_path: Path,
    org_id: str,
    *,
    kind: str,
    reporter_type: str,
    public_key: bytes,
    cap: str = "1",
    now: dt.datetime | None = None,
) -> OrgEntry:
    """Add an organisation with its first public key and its epsilon cap per period."""
    if not _ORG_ID.fullmatch(org_id):
        raise UsageError("organisation id must be 2-63 characters of a-z, 0-9 and '-', starting with a letter or digit")
    kinds = [k.value for k in OrgKind]
    if kind not in kinds:
        raise UsageError(f"--kind must be one of: {', '.join(kinds)}")
    reporters = [r.value for r in ReporterType]
    if reporter_type not in reporters:
        raise UsageError(f"--reporter-type must be one of: {', '.join(reporters)}")
    if (kind == "investigative") != (reporter_type in INVESTIGATIVE_REPORTERS):
        raise UsageError(f"reporter type {reporter_type!r} does not fit organisation kind {kind!r}")
    try:
        cap_value = exact(cap, "--cap")
    except InputError as exc:
        raise UsageError(exc.message) from None
    if cap_value <= 0:
        raise UsageError("--cap must be greater than zero")
    if len(public_key) != 32:
        raise ConfigError("public key must be 32 bytes of Ed25519")
    keyid = key_id(public_key)
    now = _now(now)
    with open_store(db_path) as con:
        con.execute("BEGIN TRANSACTION")
        try:
            if con.execute("SELECT 1 FROM organisations WHERE id = ?", [org_id]).fetchone():
                raise ConfigError(f"organisation {org_id} is already registered; use `registry rotate` for a new key")
            _check_key_free(con, keyid)
            con.execute(
                "INSERT INTO organisations VALUES (?, ?, ?, ?, 'active', ?, NULL)",
                [org_id, kind, reporter_type, exact_text(cap_value), now],
            )
            con.execute(
                "INSERT INTO org_keys VALUES (?, ?, ?, ?, NULL, NULL)",
                [keyid, org_id, base64.b64encode(public_key).decode("ascii"), now],
            )
            _append_ledger(
                con,
                "register",
                {
                    "org": org_id,
                    "kind": kind,
                    "reporter_type": reporter_type,
                    "cap": exact_text(cap_value),
                    "keyid": keyid,
                    "public_key": base64.b64encode(public_key).decode("ascii"),
                },
                now,
            )
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
        return _org_entry(con, org_id)  # type: ignore[return-value]


@contextmanager
def _registered_org_change(db_path: Path, org_id: str, *, revoked_message: str) -> Iterator[tuple[Any, OrgEntry]]:
    """One registry transaction on an active, registered organisation: commits on success, rolls back on error."""
    with open_store(db_path) as con:
        con.execute("BEGIN TRANSACTION")
        try:
            org = _org_entry(con, org_id)
            if org is None:
                raise ConfigError(f"organisation {org_id} is not registered")
            if org.status == "revoked":
                raise ConfigError(revoked_message.format(org=org_id))
            yield con, org
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise


def rotate_key(db_path: Path, org_id: str, public_key: bytes, *, now: dt.datetime | None = None) -> OrgEntry:
    """Give an organisation a new key. Old keys stay in the registry (retired) so old bundles remain verifiable;
    a bundle signed with a retired key still merges only if it was created before the rotation."""
    if len(public_key) != 32:
        raise ConfigError("public key must be 32 bytes of Ed25519")
    keyid = key_id(public_key)
    now = _now(now)
    encoded = base64.b64encode(public_key).decode("ascii")
    revoked = "organisation {org} is revoked; register it again under a new id"
    with _registered_org_change(db_path, org_id, revoked_message=revoked) as (con, org):
        _check_key_free(con, keyid)
        retired = [k.keyid for k in org.keys if k.status == "active"]
        con.execute(
            "UPDATE org_keys SET retired_at = ? WHERE org_id = ? AND retired_at IS NULL AND revoked_at IS NULL",
            [now, org_id],
        )
        con.execute("INSERT INTO org_keys VALUES (?, ?, ?, ?, NULL, NULL)", [keyid, org_id, encoded, now])
        _append_ledger(con, "rotate", {"org": org_id, "keyid": keyid, "public_key": encoded, "retired": retired}, now)
    return _current_entry(db_path, org_id)


def revoke_org(db_path: Path, org_id: str, *, now: dt.datetime | None = None) -> OrgEntry:
    """Revoke an organisation and all its keys: none of its bundles merge any more. Bundles already accepted
    stay in the table and the budget (they were valid when they arrived)."""
    now = _now(now)
    with _registered_org_change(db_path, org_id, revoked_message="organisation {org} is already revoked") as (con, org):
        con.execute("UPDATE organisations SET status = 'revoked', revoked_at = ? WHERE id = ?", [now, org_id])
        con.execute("UPDATE org_keys SET revoked_at = ? WHERE org_id = ? AND revoked_at IS NULL", [now, org_id])
        _append_ledger(con, "revoke", {"org": org_id, "keyids": [k.keyid for k in org.keys]}, now)
    return _current_entry(db_path, org_id)


def _current_entry(db_path: Path, org_id: str) -> OrgEntry:
    with open_store(db_path, write=False) as con:
        return _org_entry(con, org_id)  # type: ignore[return-value]


def list_orgs(db_path: Path) -> list[OrgEntry]:
    with open_store(db_path, write=False) as con:
        ids = [row[0] for row in con.execute("SELECT id FROM organisations ORDER BY id").fetchall()]
        return [_org_entry(con, org_id) for org_id in ids]  # type: ignore[misc]


# ------------------------------------------------------------------ merge

@dataclass
class BundleOutcome:
    """What happened to one bundle file in a merge run."""

    file: str
    status: str  # accepted | duplicate | refused
    reason: str | None = None
    message: str = ""
    digest: str | None = None
    org: str | None = None
    period: int | None = None
    sequence: int | None = None
    epsilon: str | None = None
    records: int = 0
    withdrawals: int = 0
    marginals: int = 0
    supersedes: list[str] = field(default_factory=list)
    flagged: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class MergeResult:
    db: str
    bundles: list[BundleOutcome]

    def count(self, status: str) -> int:
        return sum(1 for b in self.bundles if b.status == status)

    @property
    def accepted(self) -> int:
        return self.count("accepted")

    @property
    def duplicate(self) -> int:
        return self.count("duplicate")

    @property
    def refused(self) -> int:
        return self.count("refused")

    @property
    def superseded(self) -> int:
        """Earlier bundles that this run replaced in the national table."""
        return sum(len(b.supersedes) for b in self.bundles)

    @property
    def reasons(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for b in self.bundles:
            if b.status == "refused" and b.reason:
                out[b.reason] = out.get(b.reason, 0) + 1
        return dict(sorted(out.items()))

    @property
    def ok(self) -> bool:
        return self.refused == 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "db": self.db,
            "accepted": self.accepted,
            "duplicate": self.duplicate,
            "superseded": self.superseded,
            "refused": self.refused,
            "reasons": self.reasons,
            "bundles": [b.as_dict() for b in self.bundles],
        }


@dataclass
class _KeyInfo:
    keyid: str
    org_id: str
    raw: bytes
    retired_at: dt.datetime | None
    revoked_at: dt.datetime | None
    kind: str
    reporter_type: str
    cap: Fraction
    status: str


@dataclass
class _Staged:
    position: int
    file: str
    data: bytes
    digest: str
    keyid: str
    payload: Any  # schema.Payload
    key: _KeyInfo
    epsilon: Fraction


def _key_info(con: duckdb.DuckDBPyConnection, keyid: str) -> _KeyInfo | None:
    row = con.execute(
        """
        SELECT k.keyid, k.org_id, k.public_key, k.retired_at, k.revoked_at, o.kind, o.reporter_type, o.cap, o.status
        FROM org_keys AS k JOIN organisations AS o ON o.id = k.org_id
        WHERE k.keyid = ?
        """,
        [keyid],
    ).fetchone()
    if row is None:
        return None
    return _KeyInfo(row[0], row[1], base64.b64decode(row[2]), row[3], row[4], row[5], row[6], Fraction(row[7]), row[8])


@lru_cache(maxsize=64)
def _cell_keys(dims: tuple[str, ...]) -> list[tuple[str, ...]]:
    """Every codelist cell of these dimensions, in order."""
    return list(itertools.product(*(codes(d) for d in dims)))


def _release_epsilon(payload: Any) -> Fraction:
    """Check the release's marginals and return its exact epsilon (0 without a release)."""
    release = payload.release
    if release is None:
        return Fraction(0)

    def frac(text: str, where: str) -> Fraction:
        try:
            value = Fraction(text)
        except (ValueError, ZeroDivisionError):
            raise BundleRejected(f"{where} epsilon is not an exact number", "malformed-release") from None
        if value <= 0:
            raise BundleRejected(f"{where} epsilon must be greater than zero", "malformed-release")
        return value

    total = frac(release.epsilon, "release")
    if not release.marginals:
        raise BundleRejected("release has no marginals", "malformed-release")
    parts = Fraction(0)
    for index, marginal in enumerate(release.marginals):
        where = f"marginal {index}"
        eps = frac(marginal.epsilon, where)
        parts += eps
        dims = marginal.dimensions
        unknown = [d for d in dims if d not in DIMENSIONS]
        if unknown or len(set(dims)) != len(dims):
            raise BundleRejected(f"{where} has unknown or repeated dimensions", "malformed-release")
        expected = _cell_keys(tuple(dims))
        if len(marginal.cells) != len(expected) or any(
            tuple(cell.key) != key for cell, key in zip(marginal.cells, expected)
        ):
            raise BundleRejected(f"{where} does not list every codelist cell in order", "malformed-release")
        if not (math.isfinite(marginal.scale) and math.isfinite(marginal.variance)):
            raise BundleRejected(f"{where} has a non-finite scale or variance", "malformed-release")
        # Pure DP with sensitivity 1: epsilon = 1/scale. A smaller scale than the claimed epsilon allows
        # would spend more privacy than the ledger records.
        if 1.0 / marginal.scale > float(eps) * (1 + 1e-9):
            raise BundleRejected(f"{where} noise scale is too small for its epsilon", "scale-too-small")
        expected_variance = discrete_laplace_variance(marginal.scale)
        if not math.isclose(marginal.variance, expected_variance, rel_tol=1e-6):
            raise BundleRejected(f"{where} variance does not match its discrete Laplace scale", "malformed-release")
    if parts != total:
        raise BundleRejected("release epsilon is not the sum of its marginals' epsilons", "malformed-release")
    return total


def _check_payload(payload: Any, opened: Any, key: _KeyInfo, now: dt.datetime) -> Fraction:
    """Rules that need only the payload and the registry; returns the bundle's exact epsilon."""
    org = payload.organisation
    if payload.key_id != opened.keyid:
        raise BundleRejected("payload key_id differs from the key that signed the envelope", "key-mismatch")
    if org.id != key.org_id:
        raise BundleRejected(
            f"bundle claims organisation {org.id} but is signed with a key of {key.org_id}", "org-mismatch"
        )
    if org.kind.value != key.kind:
        raise BundleRejected(
            f"bundle says {org.id} is {org.kind.value}; the registry says {key.kind}", "kind-mismatch"
        )
    if org.reporter_type.value != key.reporter_type:
        raise BundleRejected(
            f"bundle says {org.id} is a {org.reporter_type.value}; the registry says {key.reporter_type}",
            "reporter-type-mismatch",
        )
    created = utc_naive(payload.created_at)
    expires = utc_naive(payload.expires_at)
    if key.retired_at is not None and created >= key.retired_at:
        raise BundleRejected(
            f"bundle was signed with key {key.keyid}, which {org.id} replaced before the bundle was created",
            "retired-key",
        )
    if key.kind != "investigative" and any(r.basis == "statutory" for r in payload.records):
        raise BundleRejected(
            f"{org.id} is not an investigative organisation and cannot send records on a statutory basis",
            "statutory-from-non-investigative",
        )
    if expires < created:
        raise BundleRejected("bundle expires before it was created", "malformed-payload")
    if expires < now:
        raise BundleRejected(f"bundle expired at {iso(expires)}", "expired")
    pseudonyms = [r.pseudonym for r in payload.records]
    if len(set(pseudonyms)) != len(pseudonyms):
        raise BundleRejected("bundle carries more than one record for the same pseudonym", "duplicate-record")
    return _release_epsilon(payload)


@dataclass
class _MergeState:
    """What the merge rules need from the store, read once per run and kept up to date as bundles are accepted."""

    digests: set[str]  # every accepted bundle
    by_sequence: dict[tuple[str, int, int], str]  # (org, period, sequence) -> digest
    latest: dict[tuple[str, int], int]  # highest accepted sequence per (org, period)
    spent: dict[tuple[str, int], Fraction]  # exact epsilon spent per (org, period)
    current: dict[tuple[str, int], list[str]]  # bundles not superseded yet, by sequence
    keys: dict[str, _KeyInfo]  # the registry by keyid
    ledger_index: int  # the ledger head
    ledger_hash: str


def _load_state(con: duckdb.DuckDBPyConnection) -> _MergeState:
    state = _MergeState(set(), {}, {}, {}, {}, {}, 0, GENESIS_HASH)
    for digest, org_id, period, sequence, epsilon, superseded_by in con.execute(
        "SELECT digest, org_id, period, sequence, epsilon, superseded_by FROM bundles ORDER BY org_id, period, sequence"
    ).fetchall():
        key = (org_id, period)
        state.digests.add(digest)
        state.by_sequence[(org_id, period, sequence)] = digest
        state.latest[key] = max(state.latest.get(key, sequence), sequence)
        state.spent[key] = state.spent.get(key, Fraction(0)) + Fraction(epsilon)
        if superseded_by is None:
            state.current.setdefault(key, []).append(digest)
    for row in con.execute(
        """
        SELECT k.keyid, k.org_id, k.public_key, k.retired_at, k.revoked_at, o.kind, o.reporter_type, o.cap, o.status
        FROM org_keys AS k JOIN organisations AS o ON o.id = k.org_id
        """
    ).fetchall():
        state.keys[row[0]] = _KeyInfo(
            row[0], row[1], base64.b64decode(row[2]), row[3], row[4], row[5], row[6], Fraction(row[7]), row[8]
        )
    head = con.execute("SELECT idx, hash FROM ledger ORDER BY idx DESC LIMIT 1").fetchone()
    if head is not None:
        state.ledger_index, state.ledger_hash = int(head[0]), head[1]
    return state


def _stage(state: _MergeState, position: int, path: Path, now: dt.datetime) -> _Staged | BundleOutcome:
    """Read, open, verify and parse one bundle; nothing is written."""
    name = Path(path).name
    try:
        data = read_bundle_file(Path(path))
    except OSError:  # permissions, a vanished mount, ...: refused like any unreadable bundle
        raise BundleRejected(f"bundle file cannot be read: {name}", "not-found") from None
    opened = open_envelope(data)
    if opened.digest in state.digests:
        return BundleOutcome(name, "duplicate", message="already merged; nothing changed", digest=opened.digest)
    key = state.keys.get(opened.keyid)
    if key is None:
        raise BundleRejected(
            f"bundle is signed with key {opened.keyid}, which is not in the registry (unknown organisation or key)",
            "unknown-key",
        )
    verify_envelope(opened, key.raw)
    if key.revoked_at is not None or key.status == "revoked":
        raise BundleRejected(f"the key {key.keyid} of {key.org_id} is revoked", "revoked")
    payload = parse_payload(opened)
    epsilon = _check_payload(payload, opened, key, now)
    return _Staged(position, name, data, opened.digest, opened.keyid, payload, key, epsilon)


def _outcome(staged: _Staged, status: str, **extra: Any) -> BundleOutcome:
    p = staged.payload
    return BundleOutcome(
        staged.file,
        status,
        digest=staged.digest,
        org=p.organisation.id,
        period=p.period,
        sequence=p.sequence,
        epsilon=exact_text(staged.epsilon),
        records=len(p.records),
        withdrawals=len(p.withdrawals),
        marginals=len(p.release.marginals) if p.release else 0,
        **extra,
    )


# One set insert per table for all bundles of a run: parallel lists, one element per row, zipped by UNNEST.
_INSERT_BUNDLES = """
INSERT INTO bundles (digest, org_id, period, sequence, keyid, created_at, expires_at, received_at,
                     ledger_index, epsilon, n_records, n_withdrawals, superseded_by, flagged)
SELECT UNNEST($digest::VARCHAR[]), UNNEST($org::VARCHAR[]), UNNEST($period::INTEGER[]),
       UNNEST($sequence::INTEGER[]), UNNEST($keyid::VARCHAR[]), UNNEST($created_at::TIMESTAMP[]),
       UNNEST($expires_at::TIMESTAMP[]), $received_at::TIMESTAMP, UNNEST($ledger_index::BIGINT[]),
       UNNEST($epsilon::VARCHAR[]), UNNEST($n_records::INTEGER[]), UNNEST($n_withdrawals::INTEGER[]),
       UNNEST($superseded_by::VARCHAR[]), NULL
"""
_INSERT_LEDGER = """
INSERT INTO ledger (idx, event, org_id, period, digest, epsilon, entry, prev_hash, hash)
SELECT UNNEST($idx::BIGINT[]), 'accept', UNNEST($org::VARCHAR[]), UNNEST($period::INTEGER[]),
       UNNEST($digest::VARCHAR[]), UNNEST($epsilon::VARCHAR[]), UNNEST($entry::VARCHAR[]),
       UNNEST($prev_hash::VARCHAR[]), UNNEST($hash::VARCHAR[])
"""
_INSERT_RECORDS = """
INSERT INTO records (digest, org_id, period, pseudonym, basis, form, age_band, gender, nationality_group, province)
SELECT UNNEST($digest::VARCHAR[]), UNNEST($org::VARCHAR[]), UNNEST($period::INTEGER[]),
       UNNEST($pseudonym::VARCHAR[]), UNNEST($basis::VARCHAR[]), UNNEST($form::VARCHAR[]),
       UNNEST($age_band::VARCHAR[]), UNNEST($gender::VARCHAR[]), UNNEST($nationality_group::VARCHAR[]),
       UNNEST($province::VARCHAR[])
"""
_INSERT_MARGINALS = """
INSERT INTO marginals (digest, marginal_index, dimensions, epsilon, scale, variance, expected_error_95)
SELECT UNNEST($digest::VARCHAR[]), UNNEST($index::INTEGER[]), UNNEST($dimensions::VARCHAR[][]),
       UNNEST($epsilon::VARCHAR[]), UNNEST($scale::DOUBLE[]), UNNEST($variance::DOUBLE[]), UNNEST($error::DOUBLE[])
"""
# The cells of a marginal are every codelist cell of its dimensions in order (checked when staged), so they
# come from one template per dimension set (`shape`) joined to the marginal's list of counts.
_INSERT_CELLS = """
INSERT INTO noisy_cells (digest, marginal_index, form, age_band, gender, nationality_group, province, count)
SELECT m.digest, m.marginal_index, t.form, t.age_band, t.gender, t.nationality_group, t.province, m.counts[t.pos]
FROM (
    SELECT UNNEST($ord::INTEGER[]) AS ord, UNNEST($digest::VARCHAR[]) AS digest,
           UNNEST($index::INTEGER[]) AS marginal_index, UNNEST($shape::VARCHAR[]) AS shape,
           UNNEST($counts::BIGINT[][]) AS counts
) AS m
JOIN (
    SELECT UNNEST($t_shape::VARCHAR[]) AS shape, UNNEST($t_pos::INTEGER[]) AS pos,
           UNNEST($t_form::VARCHAR[]) AS form, UNNEST($t_age_band::VARCHAR[]) AS age_band,
           UNNEST($t_gender::VARCHAR[]) AS gender, UNNEST($t_nationality_group::VARCHAR[]) AS nationality_group,
           UNNEST($t_province::VARCHAR[]) AS province
) AS t ON t.shape = m.shape
ORDER BY m.ord, t.pos
"""
_INSERT_WITHDRAWALS = """
INSERT INTO withdrawals (digest, org_id, period, pseudonym)
SELECT DISTINCT digest, org_id, period, pseudonym
FROM (
    SELECT UNNEST($digest::VARCHAR[]) AS digest, UNNEST($org::VARCHAR[]) AS org_id,
           UNNEST($period::INTEGER[]) AS period, UNNEST($pseudonym::VARCHAR[]) AS pseudonym
)
"""
# Earlier bundles this run replaced in the national table.
_SUPERSEDE = """
UPDATE bundles SET superseded_by = s.superseded_by
FROM (SELECT UNNEST($digest::VARCHAR[]) AS digest, UNNEST($superseded_by::VARCHAR[]) AS superseded_by) AS s
WHERE bundles.digest = s.digest
"""
# Withdrawals of this run's bundles that match no record the organisation sent for that period in a bundle
# accepted up to and including the withdrawing one (a note for auditors).
_UNMATCHED_WITHDRAWALS = """
SELECT w.digest, count(*) AS unmatched
FROM withdrawals AS w JOIN bundles AS wb ON wb.digest = w.digest
WHERE w.digest IN (SELECT UNNEST($digests::VARCHAR[]))
  AND NOT EXISTS (
      SELECT 1 FROM records AS r JOIN bundles AS rb ON rb.digest = r.digest
      WHERE r.org_id = w.org_id AND r.period = w.period AND r.pseudonym = w.pseudonym
        AND rb.ledger_index <= wb.ledger_index
  )
GROUP BY w.digest
"""
_FLAG = """
UPDATE bundles SET flagged = f.flagged
FROM (SELECT UNNEST($digest::VARCHAR[]) AS digest, UNNEST($flagged::VARCHAR[]) AS flagged) AS f
WHERE bundles.digest = f.digest
"""


class _Batch:
    """Column lists of every table row the accepted bundles of one run add, for one set insert per table."""

    def __init__(self) -> None:
        self.accepted: list[_Staged] = []
        self.bundles: dict[str, list[Any]] = {
            name: []
            for name in ("digest", "org", "period", "sequence", "keyid", "created_at", "expires_at", "ledger_index",
                         "epsilon", "n_records", "n_withdrawals")
        }
        self.ledger: dict[str, list[Any]] = {
            name: [] for name in ("idx", "org", "period", "digest", "epsilon", "entry", "prev_hash", "hash")
        }
        self.records: dict[str, list[Any]] = {
            name: []
            for name in ("digest", "org", "period", "pseudonym", "basis", "form", "age_band", "gender",
                         "nationality_group", "province")
        }
        self.marginals: dict[str, list[Any]] = {
            name: [] for name in ("digest", "index", "dimensions", "epsilon", "scale", "variance", "error")
        }
        self.cells: dict[str, list[Any]] = {name: [] for name in ("ord", "digest", "index", "shape", "counts")}
        self.withdrawals: dict[str, list[Any]] = {name: [] for name in ("digest", "org", "period", "pseudonym")}
        self.superseded_by: dict[str, str] = {}  # digest -> the digest that replaced it, old and new bundles

    def add(self, staged: _Staged, ledger: dict[str, Any]) -> None:
        p = staged.payload
        digest, org_id, period = staged.digest, p.organisation.id, p.period
        self.accepted.append(staged)
        b = self.bundles
        b["digest"].append(digest)
        b["org"].append(org_id)
        b["period"].append(period)
        b["sequence"].append(p.sequence)
        b["keyid"].append(staged.keyid)
        b["created_at"].append(utc_naive(p.created_at))
        b["expires_at"].append(utc_naive(p.expires_at))
        b["ledger_index"].append(ledger["idx"])
        b["epsilon"].append(exact_text(staged.epsilon))
        b["n_records"].append(len(p.records))
        b["n_withdrawals"].append(len(p.withdrawals))
        for name, value in ledger.items():
            self.ledger[name].append(value)
        records = p.records
        if records:
            r = self.records
            n = len(records)
            r["digest"].extend([digest] * n)
            r["org"].extend([org_id] * n)
            r["period"].extend([period] * n)
            r["pseudonym"].extend([rec.pseudonym for rec in records])
            r["basis"].extend([rec.basis for rec in records])
            for column in ("form", "age_band", "gender", "nationality_group", "province"):  # codelist enums
                r[column].extend([getattr(rec, column).value for rec in records])
        if p.release:
            m, c = self.marginals, self.cells
            for index, marginal in enumerate(p.release.marginals):
                m["digest"].append(digest)
                m["index"].append(index)
                m["dimensions"].append(list(marginal.dimensions))
                m["epsilon"].append(exact_text(Fraction(marginal.epsilon)))
                m["scale"].append(marginal.scale)
                m["variance"].append(marginal.variance)
                m["error"].append(marginal.expected_error_95)
                c["ord"].append(len(c["ord"]))
                c["digest"].append(digest)
                c["index"].append(index)
                c["shape"].append(",".join(marginal.dimensions))
                c["counts"].append([cell.count for cell in marginal.cells])
        withdrawals = p.withdrawals
        if withdrawals:
            w = self.withdrawals
            n = len(withdrawals)
            w["digest"].extend([digest] * n)
            w["org"].extend([org_id] * n)
            w["period"].extend([x.period for x in withdrawals])
            w["pseudonym"].extend([x.pseudonym for x in withdrawals])

    def write(self, con: duckdb.DuckDBPyConnection, now: dt.datetime) -> dict[str, str]:
        """Insert everything inside the caller's transaction; returns the flag note per flagged new bundle."""
        new = set(self.bundles["digest"])
        con.execute(
            _INSERT_BUNDLES,
            {**self.bundles, "received_at": now,
             "superseded_by": [self.superseded_by.get(d) for d in self.bundles["digest"]]},
        )
        con.execute(_INSERT_LEDGER, self.ledger)
        if self.records["digest"]:
            con.execute(_INSERT_RECORDS, self.records)
        if self.marginals["digest"]:
            con.execute(_INSERT_MARGINALS, self.marginals)
            con.execute(_INSERT_CELLS, {**self.cells, **_cell_templates(set(self.cells["shape"]))})
        old = {d: by for d, by in self.superseded_by.items() if d not in new}
        if old:
            con.execute(_SUPERSEDE, {"digest": list(old), "superseded_by": list(old.values())})
        flags: dict[str, str] = {}
        if self.withdrawals["digest"]:
            con.execute(_INSERT_WITHDRAWALS, self.withdrawals)
            withdrawing = sorted(set(self.withdrawals["digest"]))
            flags = {
                digest: f"{unmatched} withdrawal(s) match no record this organisation sent"
                for digest, unmatched in con.execute(_UNMATCHED_WITHDRAWALS, {"digests": withdrawing}).fetchall()
                if unmatched
            }
            if flags:
                con.execute(_FLAG, {"digest": list(flags), "flagged": list(flags.values())})
        return flags


def _cell_templates(shapes: Iterable[str]) -> dict[str, list[Any]]:
    """Every codelist cell of each dimension set ('form,gender'), numbered from 1 in order, as column lists."""
    out: dict[str, list[Any]] = {"t_shape": [], "t_pos": [], **{f"t_{dim}": [] for dim in DIMENSIONS}}
    for shape in sorted(shapes):
        dims = shape.split(",")
        for pos, key in enumerate(_cell_keys(tuple(dims)), start=1):
            out["t_shape"].append(shape)
            out["t_pos"].append(pos)
            for dim in DIMENSIONS:
                out[f"t_{dim}"].append(key[dims.index(dim)] if dim in dims else None)
    return out


def _check_rules(state: _MergeState, staged: _Staged, batch: _Batch, now: dt.datetime) -> BundleOutcome:
    """Apply the replay, rollback and budget rules against the in-memory state; an accepted bundle joins the batch."""
    p = staged.payload
    org_id, period, sequence = p.organisation.id, p.period, p.sequence
    key = (org_id, period)
    if staged.digest in state.digests:
        return _outcome(staged, "duplicate", message="already merged; nothing changed")
    same = state.by_sequence.get((org_id, period, sequence))
    if same is not None:
        raise BundleRejected(
            f"EQUIVOCATION: {org_id} signed two different bundles for period {period} with sequence {sequence} "
            f"(accepted {same[:12]}, this one {staged.digest[:12]})",
            "equivocation",
        )
    latest = state.latest.get(key)
    if latest is not None and sequence < latest:
        raise BundleRejected(
            f"sequence {sequence} is lower than the latest accepted sequence {latest} of {org_id} for {period} "
            "(rollback refused)",
            "stale-sequence",
        )
    spent = state.spent.get(key, Fraction(0))
    if spent + staged.epsilon > staged.key.cap:
        raise BundleRejected(
            f"over budget: {org_id} has spent epsilon {spent} of its cap {staged.key.cap} for {period}; "
            f"this bundle needs {staged.epsilon}",
            "over-budget",
        )
    superseded = list(state.current.get(key, []))
    marginals = (
        [{"dimensions": m.dimensions, "epsilon": exact_text(Fraction(m.epsilon))} for m in p.release.marginals]
        if p.release
        else []
    )
    index, prev_hash = state.ledger_index + 1, state.ledger_hash
    entry = {
        "index": index,
        "event": "accept",
        "at": iso(now),
        "org": org_id,
        "period": period,
        "digest": staged.digest,
        "sequence": sequence,
        "keyid": staged.keyid,
        "epsilon": exact_text(staged.epsilon),
        "spent": exact_text(spent + staged.epsilon),
        "cap": exact_text(staged.key.cap),
        "marginals": marginals,
        "records": len(p.records),
        "withdrawals": len(p.withdrawals),
        "supersedes": superseded,
        "prev_hash": prev_hash,
    }
    text = canonical_json(entry)
    entry_hash_ = sha256_hex(text)
    batch.add(
        staged,
        {
            "idx": index, "org": org_id, "period": period, "digest": staged.digest,
            "epsilon": exact_text(staged.epsilon), "entry": text.decode("utf-8"), "prev_hash": prev_hash,
            "hash": entry_hash_,
        },
    )
    state.digests.add(staged.digest)
    state.by_sequence[(org_id, period, sequence)] = staged.digest
    state.latest[key] = sequence if latest is None else max(latest, sequence)
    state.spent[key] = spent + staged.epsilon
    state.current[key] = [staged.digest]
    for digest in superseded:
        batch.superseded_by[digest] = staged.digest
    state.ledger_index, state.ledger_hash = index, entry_hash_
    message = "accepted"
    if superseded:
        message = f"accepted; replaces {len(superseded)} earlier bundle(s) of {org_id} {period} in the table"
    return _outcome(staged, "accepted", message=message, supersedes=superseded)


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_archive(folder: Path, items: Sequence[tuple[str, bytes]]) -> list[Path]:
    """Write archive files (digest, bytes) durably; returns the files it created (existing ones are kept as they are).

    Each file goes to a temp name, is fsynced (in parallel threads: the file system commits them together) and
    renamed; one fsync of the folder at the end makes the renames durable. On failure every file this call
    created is removed and the error raised."""
    folder.mkdir(parents=True, exist_ok=True)
    temps: list[tuple[Path, Path]] = []
    created: list[Path] = []
    try:
        for digest, data in items:
            target = folder / bundle_filename(digest)
            if target.exists():
                continue
            fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=folder)
            temps.append((Path(tmp), target))
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
            os.chmod(tmp, 0o644)
        if temps:
            with ThreadPoolExecutor(max_workers=min(16, len(temps))) as pool:
                list(pool.map(_fsync, [tmp for tmp, _ in temps]))
        for tmp, target in temps:
            os.replace(tmp, target)
            created.append(target)
        if created:
            _fsync(folder)
    except BaseException:
        for tmp, target in temps:
            tmp.unlink(missing_ok=True)
        for target in created:
            target.unlink(missing_ok=True)
        raise
    return created


ProgressCallback = Callable[[str, int, int], None]


def _remove_interrupted_writes(db_path: Path) -> None:
    """Temp files of archive writes that a killed merge left behind (never part of the archive); we hold the lock."""
    folder = archive_dir(db_path)
    if folder.is_dir():
        for leftover in folder.glob(".*.tmp"):
            leftover.unlink(missing_ok=True)


def merge_bundles(
    db_path: Path,
    paths: Sequence[Path | str],
    *,
    now: dt.datetime | None = None,
    progress: ProgressCallback | None = None,
) -> MergeResult:
    """Verify and merge bundle files into the store in one transaction; refused bundles leave no trace in it.

    `progress(stage, done, total)` is called after each bundle of the stages "verify" (read, open, verify,
    parse) and "ingest" (the replay, rollback and budget rules); the accepted bundles are then written at once.
    `now` fixes the clock (expiry check and received_at), e.g. for a rebuild from the archive.
    """
    db_path = Path(db_path)
    now = _now(now)
    outcomes: dict[int, BundleOutcome] = {}
    staged: list[_Staged] = []
    with open_store(db_path) as con:
        _remove_interrupted_writes(db_path)
        state = _load_state(con)
        for position, path in enumerate(paths):
            try:
                result = _stage(state, position, Path(path), now)
            except BundleRejected as exc:
                outcomes[position] = BundleOutcome(Path(path).name, "refused", exc.reason, exc.message)
            else:
                if isinstance(result, BundleOutcome):
                    outcomes[position] = result
                else:
                    staged.append(result)
            if progress:
                progress("verify", position + 1, len(paths))
        staged.sort(key=lambda s: (s.payload.organisation.id, s.payload.period, s.payload.sequence, s.digest))
        batch = _Batch()
        for done, item in enumerate(staged, start=1):
            try:
                outcomes[item.position] = _check_rules(state, item, batch, now)
            except BundleRejected as exc:
                outcomes[item.position] = _outcome(item, "refused", reason=exc.reason, message=exc.message)
                if exc.reason == "equivocation":
                    _keep_evidence(db_path, item)
            if progress:
                progress("ingest", done, len(staged))
        if batch.accepted:
            _commit_batch(con, batch, db_path, now, outcomes)
    return MergeResult(str(db_path), [outcomes[i] for i in range(len(paths))])


def _commit_batch(
    con: duckdb.DuckDBPyConnection, batch: _Batch, db_path: Path, now: dt.datetime, outcomes: dict[int, BundleOutcome]
) -> None:
    """All accepted bundles of a run in one transaction; the archive files are durable before it commits."""
    con.execute("BEGIN TRANSACTION")
    # The archive files are written in a thread while DuckDB inserts the rows (their fsyncs overlap the inserts).
    runner = ThreadPoolExecutor(max_workers=1)
    archiving = runner.submit(_write_archive, archive_dir(db_path), [(s.digest, s.data) for s in batch.accepted])
    try:
        try:
            flags = batch.write(con, now)
        finally:
            runner.shutdown(wait=True)
        try:
            archiving.result()
        except OSError as exc:
            raise InputError(
                f"merge stopped: cannot write to the archive folder {archive_dir(db_path).name} "
                f"({exc.strerror or type(exc).__name__}); nothing of this run was merged"
            ) from None
        con.execute("COMMIT")
    except BaseException:
        try:
            con.execute("ROLLBACK")
        except duckdb.Error:
            pass
        if archiving.done() and archiving.exception() is None:  # (a failed write removed its own files)
            for path in archiving.result():
                path.unlink(missing_ok=True)
        raise
    for item in batch.accepted:
        flagged = flags.get(item.digest)
        if flagged:
            outcomes[item.position].flagged = flagged


def _keep_evidence(db_path: Path, staged: _Staged) -> None:
    """Keep an equivocating bundle as signed proof, outside the store (it is never merged)."""
    target = evidence_dir(db_path) / bundle_filename(staged.digest)
    if not target.exists():
        try:
            atomic_write(target, staged.data)
        except OSError:  # evidence is best effort; the refusal itself is reported regardless
            pass


# ------------------------------------------------------------------ budget for auditors

@dataclass
class ReleaseSpend:
    digest: str
    sequence: int
    epsilon: str
    marginals: list[dict[str, Any]]
    accepted_at: str
    superseded_by: str | None
    ledger_index: int

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class OrgBudget:
    org: str
    period: int
    kind: str
    reporter_type: str
    cap: str
    spent: str
    remaining: str
    releases: list[ReleaseSpend]

    @property
    def spent_decimal(self) -> str:
        return decimal_text(Fraction(self.spent))

    @property
    def cap_decimal(self) -> str:
        return decimal_text(Fraction(self.cap))

    @property
    def remaining_decimal(self) -> str:
        return decimal_text(Fraction(self.remaining))

    def as_dict(self) -> dict[str, Any]:
        return {
            "org": self.org,
            "period": self.period,
            "kind": self.kind,
            "reporter_type": self.reporter_type,
            "cap": self.cap,
            "cap_decimal": self.cap_decimal,
            "spent": self.spent,
            "spent_decimal": self.spent_decimal,
            "remaining": self.remaining,
            "remaining_decimal": self.remaining_decimal,
            "releases": [r.as_dict() for r in self.releases],
        }


@dataclass
class BudgetReport:
    budgets: list[OrgBudget]

    def as_dict(self) -> dict[str, Any]:
        return {"budgets": [b.as_dict() for b in self.budgets]}


def budget_report(db_path: Path, *, org: str | None = None, period: int | None = None) -> BudgetReport:
    """Epsilon spent per organisation and period (exact), cap, remaining and every release in order.

    Every accepted bundle counts, also those a higher sequence superseded (their noise was released)."""
    with open_store(db_path, write=False) as con:
        if org is not None and not con.execute("SELECT 1 FROM organisations WHERE id = ?", [org]).fetchone():
            raise ConfigError(f"organisation {org} is not registered")
        rows = con.execute(
            """
            SELECT b.org_id, b.period, b.digest, b.sequence, b.epsilon, b.received_at, b.superseded_by,
                   b.ledger_index, l.entry
            FROM bundles AS b JOIN ledger AS l ON l.idx = b.ledger_index
            WHERE ($org IS NULL OR b.org_id = $org) AND ($period IS NULL OR b.period = $period)
            ORDER BY b.org_id, b.period, b.ledger_index
            """,
            {"org": org, "period": period},
        ).fetchall()
        orgs = {
            r[0]: r[1:]
            for r in con.execute(
                "SELECT id, kind, reporter_type, cap FROM organisations WHERE ($org IS NULL OR id = $org) ORDER BY id",
                {"org": org},
            ).fetchall()
        }
    grouped: dict[tuple[str, int], list[ReleaseSpend]] = {}
    for org_id, per, digest, sequence, epsilon, received_at, superseded_by, ledger_index, entry in rows:
        grouped.setdefault((org_id, per), []).append(
            ReleaseSpend(
                digest, sequence, epsilon, json.loads(entry).get("marginals", []), iso(received_at) or "",
                superseded_by, ledger_index,
            )
        )
    if period is not None:  # every registered organisation has a budget line for the period asked about
        for org_id in orgs:
            grouped.setdefault((org_id, period), [])
    budgets = []
    for (org_id, per), releases in sorted(grouped.items()):
        kind, reporter_type, cap = orgs[org_id]
        spent = sum((Fraction(r.epsilon) for r in releases), Fraction(0))
        budgets.append(
            OrgBudget(
                org_id, per, kind, reporter_type, cap, exact_text(spent),
                exact_text(Fraction(cap) - spent), releases,
            )
        )
    return BudgetReport(budgets)


__all__ = [
    "BudgetReport",
    "BundleOutcome",
    "LedgerCheck",
    "MergeResult",
    "MIGRATIONS",
    "OrgBudget",
    "OrgEntry",
    "budget_report",
    "discrete_laplace_variance",
    "export_ledger",
    "ledger_entries",
    "list_orgs",
    "merge_bundles",
    "migrate",
    "open_store",
    "register_org",
    "revoke_org",
    "rotate_key",
    "verify_chain",
    "verify_ledger",
    "verify_ledger_file",
]
