"""The auditor's check of a coordinator store: trust nothing derived, rebuild it from the signed archive.

`audit_store(db_path)` runs these checks and gives a verdict for each (all of them run, also after a failure):

  ledger-chain        the ledger's hash chain recomputes, its columns agree with the hashed entries, every bundle
                      row has its accept entry, each joint result's refunds are the ones joint_refunds derives, and
                      spending (less the joint epsilon given back) stays within the caps (store.verify_ledger)
  archive-signatures  every archived bundle: file name = sha256 of its bytes, the envelope opens, its key id is in the
                      registry, the Ed25519 signature verifies with that key, the payload parses, the organisation it
                      claims is the key's organisation, and (when it has a bundle row) the row says the same
  archive-coverage    every bundle row has its archive file and every archive file has its bundle row
  rebuild             a fresh temporary store, built by replaying the ledger in order (register / rotate / revoke
                      with the recorded keys, caps and times; accept = merge of the archived bundle at the time it
                      was received; joint = the co-signed result stored again, its refunds recomputed), accepts every
                      bundle again
  rebuild-registry    the rebuilt organisations and keys equal the live ones
  rebuild-ledger      the rebuilt ledger equals the live one entry for entry (same canonical text, same hashes)
  rebuild-store       the rebuilt bundles, records, marginals, noisy cells and withdrawals equal the live ones
  rebuild-national    the national table (every period with its totals; each dimension, the workloads' two-way
                      breakdowns, the organisation attributes and the full product of all dimensions) equals the live one
  receipts            (with organisations' receipts and the coordinator's public key) each receipt verifies, is
                      about this store, and its accept entry and chain head are still in today's chain: the one
                      check that finds a bundle dropped from the archive and the store rebuilt without it

Problems name digests by their first 12 characters and never carry record content.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..contract.envelope import open_envelope, parse_payload, sha256_hex, verify_envelope
from ..contract.codelists import DIMENSIONS
from ..errors import AggregatorError, ConfigError
from ..util.clock import parse_iso

CHECKS = (
    "ledger-chain",
    "archive-signatures",
    "archive-coverage",
    "rebuild",
    "rebuild-registry",
    "rebuild-ledger",
    "rebuild-store",
    "rebuild-national",
)
RECEIPTS_CHECK = "receipts"  # only with receipts: each still in today's chain (coordinator/receipts.py)
MAX_PROBLEMS = 50  # per check; the count says how many there were

# Tables compared between the live store and the rebuild (all columns, as multisets).
STORE_TABLES = ("bundles", "records", "marginals", "noisy_cells", "withdrawals", "plans", "joint_results")
REGISTRY_TABLES = ("organisations", "org_keys")

# Breakdowns of the national table compared (each table has its total rows too): each dimension, the two-way
# marginals of the workloads, the organisation attributes and the full product (which shows every individual cell).
NATIONAL_BREAKDOWNS: tuple[tuple[str, ...], ...] = (
    *((d,) for d in DIMENSIONS),
    ("form", "age_band"),
    ("form", "nationality_group"),
    ("kind", "reporter_type"),
    tuple(DIMENSIONS),
)


@dataclass
class CheckResult:
    name: str
    ok: bool
    summary: str
    problems: list[str] = field(default_factory=list)
    problem_count: int = 0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class AuditReport:
    db: str
    checks: list[CheckResult]
    bundles: int = 0
    archive_files: int = 0
    ledger_entries: int = 0

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks)

    @property
    def failed(self) -> list[str]:
        return [c.name for c in self.checks if not c.ok]

    def check(self, name: str) -> CheckResult:
        return next(c for c in self.checks if c.name == name)

    def as_dict(self) -> dict[str, Any]:
        return {
            "db": self.db,
            "ok": self.ok,
            "failed": self.failed,
            "bundles": self.bundles,
            "archive_files": self.archive_files,
            "ledger_entries": self.ledger_entries,
            "checks": [c.as_dict() for c in self.checks],
        }


def _result(name: str, problems: list[str], summary_ok: str) -> CheckResult:
    shown = problems[:MAX_PROBLEMS]
    if problems:
        summary = problems[0] if len(problems) == 1 else f"{len(problems)} problems, first: {problems[0]}"
    else:
        summary = summary_ok
    return CheckResult(name, not problems, summary, shown, len(problems))


def _short(digest: Any) -> str:
    return str(digest)[:12]


# ------------------------------------------------------------------ reading the live store

@dataclass
class _Live:
    bundles: dict[str, tuple]  # digest -> (org_id, period, sequence, keyid, ledger_index)
    keys: dict[str, tuple[str, bytes]]  # keyid -> (org_id, raw public key)
    ledger: list[tuple]  # (idx, event, entry text, hash)


def _read_live(db_path: Path) -> _Live:
    import base64

    from ..coordinator.store import open_store

    with open_store(db_path, write=False) as con:
        bundles = {
            r[0]: r[1:]
            for r in con.execute(
                "SELECT digest, org_id, period, sequence, keyid, ledger_index FROM bundles ORDER BY ledger_index"
            ).fetchall()
        }
        keys = {
            keyid: (org_id, base64.b64decode(public_key))
            for keyid, org_id, public_key in con.execute("SELECT keyid, org_id, public_key FROM org_keys").fetchall()
        }
        ledger = con.execute("SELECT idx, event, entry, hash FROM ledger ORDER BY idx").fetchall()
    return _Live(bundles, keys, ledger)


def _archive_files(db_path: Path) -> dict[str, Path]:
    """Archive file name stem (the claimed digest) -> path; temp files of an interrupted write are ignored."""
    from ..coordinator.store import archive_dir

    folder = archive_dir(db_path)
    if not folder.is_dir():
        return {}
    suffix = ".bundle.json"
    return {
        p.name[: -len(suffix)]: p
        for p in sorted(folder.iterdir())
        if p.is_file() and p.name.endswith(suffix) and not p.name.startswith(".")
    }


# ------------------------------------------------------------------ checks on the live store

def check_ledger(db_path: Path) -> CheckResult:
    from ..coordinator.ledger import verify_ledger

    result = verify_ledger(db_path, check_archive=False)
    return _result("ledger-chain", list(result.problems), f"{result.entries} entries, head {result.head[:12]}")


def check_archive_signatures(live: _Live, files: dict[str, Path]) -> CheckResult:
    from ..errors import BundleRejected

    problems: list[str] = []
    for name, path in files.items():
        data = path.read_bytes()
        digest = sha256_hex(data)
        if digest != name:
            problems.append(f"archived bundle {_short(name)}: its bytes hash to {_short(digest)}, not its name")
        try:
            opened = open_envelope(data)
            key = live.keys.get(opened.keyid)
            if key is None:
                problems.append(f"archived bundle {_short(name)}: key {opened.keyid} is not in the registry")
                continue
            org_id, raw = key
            verify_envelope(opened, raw)
            payload = parse_payload(opened)
        except BundleRejected as exc:
            problems.append(f"archived bundle {_short(name)}: {exc.reason}")
            continue
        if payload.organisation.id != org_id:
            problems.append(
                f"archived bundle {_short(name)}: claims organisation {payload.organisation.id}, "
                f"signed with a key of {org_id}"
            )
        if payload.key_id != opened.keyid:
            problems.append(f"archived bundle {_short(name)}: payload key_id differs from the signing key")
        row = live.bundles.get(name)
        if row is not None:
            row_org, row_period, row_sequence, row_keyid, _ = row
            signed = (payload.organisation.id, payload.period, payload.sequence, opened.keyid)
            if (row_org, row_period, row_sequence, row_keyid) != signed:
                problems.append(f"bundle row {_short(name)} differs from its signed archive file")
    return _result("archive-signatures", problems, f"{len(files)} archived bundles verify with registered keys")


def check_archive_coverage(live: _Live, files: dict[str, Path]) -> CheckResult:
    problems = [f"bundle {_short(d)} is in the store but missing from the archive" for d in live.bundles if d not in files]
    problems += [f"archive file {_short(d)} has no bundle in the store" for d in files if d not in live.bundles]
    return _result("archive-coverage", problems, f"{len(live.bundles)} bundle rows, {len(files)} archive files, one to one")


# ------------------------------------------------------------------ the rebuild

def rebuild_store(db_path: Path, target: Path) -> list[str]:
    """Replay the live ledger into a fresh store at `target`, merging bundles from the live archive.

    Registry events are replayed with the keys, caps and times the ledger recorded; each run of accept entries
    with the same time is one merge of their archived files at that time (as the original merge run was).
    Archive files no accept entry names are merged at the end. Returns problems (empty when every step replayed).
    """
    import base64

    from ..errors import BundleRejected
    from ..coordinator.merge import merge_bundles
    from ..coordinator.store import open_store
    from ..coordinator.joint import register_plan, store_joint_result
    from ..coordinator.registry import register_org, revoke_org, rotate_key

    db_path, target = Path(db_path), Path(target)
    live = _read_live(db_path)
    files = _archive_files(db_path)
    problems: list[str] = []
    with open_store(target):  # an empty, migrated store even when the ledger is empty
        pass

    pending: list[tuple[int, str]] = []  # (ledger index, digest) of one merge run
    pending_at: dt.datetime | None = None
    pending_key: tuple = ()  # merge sorts a run by (organisation, period, sequence, digest)
    merged: set[str] = set()

    def flush() -> None:
        nonlocal pending, pending_at
        if not pending:
            return
        paths = []
        for index, digest in pending:
            path = files.get(digest)
            if path is None:
                problems.append(f"ledger entry {index}: archived bundle {_short(digest)} is missing; cannot replay")
                continue
            paths.append((index, digest, path))
        result = merge_bundles(target, [p for _, _, p in paths], now=pending_at)
        for (index, digest, _), outcome in zip(paths, result.bundles):
            merged.add(digest)
            if outcome.status != "accepted":
                problems.append(
                    f"ledger entry {index}: bundle {_short(digest)} replays as {outcome.status}"
                    + (f" ({outcome.reason})" if outcome.reason else "")
                )
        pending, pending_at = [], None

    for idx, event, text, _hash in live.ledger:
        try:
            entry = json.loads(text)
            at = parse_iso(entry["at"])
        except (ValueError, KeyError, TypeError):
            flush()
            problems.append(f"ledger entry {idx}: cannot be read for replay")
            continue
        if event == "accept":
            key = (str(entry.get("org")), entry.get("period") or 0, entry.get("sequence") or 0, str(entry.get("digest")))
            if pending and (at != pending_at or key < pending_key):  # another run: replay it as its own merge
                flush()
            pending.append((idx, str(entry.get("digest"))))
            pending_at, pending_key = at, key
            continue
        flush()
        try:
            if event == "register":
                register_org(
                    target, entry["org"], kind=entry["kind"], reporter_type=entry["reporter_type"],
                    public_key=base64.b64decode(entry["public_key"]), cap=entry["cap"], now=at,
                )
            elif event == "rotate":
                rotate_key(target, entry["org"], base64.b64decode(entry["public_key"]), now=at)
            elif event == "revoke":
                revoke_org(target, entry["org"], now=at)
            elif event == "plan":
                register_plan(target, entry["document"], now=at)
            elif event == "joint":
                store_joint_result(target, entry["plan"], entry["result"], entry["signatures"], entry["bundles"], now=at)
            else:
                problems.append(f"ledger entry {idx}: unknown event {event!r}")
        except (AggregatorError, KeyError, TypeError, ValueError) as exc:
            message = exc.message if isinstance(exc, AggregatorError) else type(exc).__name__
            problems.append(f"ledger entry {idx}: {event} does not replay: {message}")
    flush()

    extra = [(d, p) for d, p in files.items() if d not in merged]
    if extra:
        try:
            result = merge_bundles(target, [p for _, p in extra])
        except BundleRejected as exc:  # pragma: no cover - merge reports refusals per bundle
            problems.append(f"archive files without ledger entries do not merge: {exc.reason}")
        else:
            for (digest, _), outcome in zip(extra, result.bundles):
                problems.append(f"archive file {_short(digest)} has no accept entry in the ledger ({outcome.status})")
    return problems


def _compare_tables(live_db: Path, rebuilt_db: Path, tables: tuple[str, ...]) -> list[str]:
    """Multiset differences of whole tables between the live store and the rebuild, via DuckDB EXCEPT ALL."""
    from ..coordinator.store import open_store
    from ..util.engine import quote_ident

    problems: list[str] = []
    with open_store(live_db, write=False) as con:
        con.execute("ATTACH ? AS rebuilt (READ_ONLY)", [str(rebuilt_db)])
        try:
            for table in tables:
                t = quote_ident(table)
                only_live = con.execute(f"SELECT count(*) FROM (FROM main.{t} EXCEPT ALL FROM rebuilt.{t})").fetchone()[0]
                only_rebuilt = con.execute(f"SELECT count(*) FROM (FROM rebuilt.{t} EXCEPT ALL FROM main.{t})").fetchone()[0]
                if only_live or only_rebuilt:
                    problems.append(
                        f"table {table}: {only_live} live row(s) not in the rebuild, "
                        f"{only_rebuilt} rebuilt row(s) not in the live store"
                    )
        finally:
            con.execute("DETACH rebuilt")
    return problems


def _compare_ledgers(live_db: Path, rebuilt_db: Path) -> list[str]:
    from ..coordinator.store import open_store

    def rows(db: Path) -> list[tuple]:
        with open_store(db, write=False) as con:
            return con.execute("SELECT idx, entry, hash FROM ledger ORDER BY idx").fetchall()

    live, rebuilt = rows(live_db), rows(rebuilt_db)
    problems = []
    for (idx, entry, hash_), other in zip(live, rebuilt):
        if (entry, hash_) != other[1:]:
            problems.append(f"ledger entry {idx} differs from the rebuild")
    if len(live) != len(rebuilt):
        problems.append(f"the live ledger has {len(live)} entries, the rebuild {len(rebuilt)}")
    return problems


def national_snapshot(db_path: Path) -> dict[tuple[str, ...], dict[tuple, tuple]]:
    """Every national table the audit compares: breakdown -> {(period, cell codes, total): (individual, noisy, variance)}."""
    from ..coordinator.national import national_table

    snapshot: dict[tuple[str, ...], dict[tuple, tuple]] = {}
    for by in NATIONAL_BREAKDOWNS:
        table = national_table(db_path, None, list(by), refuse_uncovered=False)  # compare every breakdown
        snapshot[by] = {
            (row.period, tuple(row.dims.get(n) for n in by), row.total): (row.individual, row.noisy, row.variance)
            for row in table.rows
        }
    return snapshot


def _compare_national(live_db: Path, rebuilt_db: Path) -> list[str]:
    live, rebuilt = national_snapshot(live_db), national_snapshot(rebuilt_db)
    problems: list[str] = []
    for by in NATIONAL_BREAKDOWNS:
        name = " x ".join(by)
        a, b = live[by], rebuilt[by]
        differing = [k for k in a.keys() | b.keys() if not _same_cell(a.get(k), b.get(k))]
        if differing:
            periods = sorted({k[0] for k in differing})
            problems.append(
                f"national table by {name}: {len(differing)} cell(s) differ from the rebuild "
                f"(periods {', '.join(map(str, periods))})"
            )
    return problems


def _same_cell(a: tuple | None, b: tuple | None) -> bool:
    if a is None or b is None:
        return a is b
    return a[0] == b[0] and a[1] == b[1] and math.isclose(a[2], b[2], rel_tol=1e-9, abs_tol=1e-9)


# ------------------------------------------------------------------ the audit

def check_receipts(db_path: Path, receipts: list[Path], coordinator_key: bytes) -> CheckResult:
    from ..contract.keys import key_id
    from ..coordinator.receipts import check_receipts as check

    count, problems = check(db_path, receipts, coordinator_key)
    return _result(RECEIPTS_CHECK, problems, f"{count} receipt(s) signed by coordinator key "
                   f"{key_id(coordinator_key)} are in today's chain")


def audit_store(db_path: Path, *, receipts: list[Path] | None = None,
                coordinator_key: bytes | None = None) -> AuditReport:
    """Run every check on the store at `db_path` (read-only; the rebuild goes to a temporary folder).

    With `receipts` (files or folders of organisations' receipts) and the coordinator's raw public key, the
    `receipts` check also runs: it finds a bundle dropped and the store rebuilt, which the other checks cannot."""
    db_path = Path(db_path)
    if not db_path.exists():
        raise ConfigError(f"no coordinator store at {db_path}")
    if receipts and coordinator_key is None:
        raise ConfigError("checking receipts needs the coordinator's public key (coordinator.pub)")
    receipt_check = check_receipts(db_path, receipts, coordinator_key) if receipts else None
    live = _read_live(db_path)
    files = _archive_files(db_path)
    checks = [
        check_ledger(db_path),
        check_archive_signatures(live, files),
        check_archive_coverage(live, files),
    ]
    with tempfile.TemporaryDirectory(prefix="aggregator-audit-") as tmp:
        rebuilt = Path(tmp) / "rebuild.duckdb"
        try:
            replay_problems = rebuild_store(db_path, rebuilt)
        except AggregatorError as exc:
            replay_problems = [f"the rebuild stopped: {exc.message}"]
        checks.append(_result("rebuild", replay_problems, f"{len(live.bundles)} bundles replayed from the archive"))
        if rebuilt.exists():
            checks.append(_result(
                "rebuild-registry", _compare_tables(db_path, rebuilt, REGISTRY_TABLES),
                "organisations and keys equal the rebuild",
            ))
            checks.append(_result(
                "rebuild-ledger", _compare_ledgers(db_path, rebuilt), f"{len(live.ledger)} ledger entries equal the rebuild"
            ))
            checks.append(_result(
                "rebuild-store", _compare_tables(db_path, rebuilt, STORE_TABLES),
                "bundles, records, marginals, noisy cells, withdrawals, plans and joint results equal the rebuild",
            ))
            checks.append(_result(
                "rebuild-national", _compare_national(db_path, rebuilt),
                f"national table ({len(NATIONAL_BREAKDOWNS)} breakdowns, every period) equals the rebuild",
            ))
        else:  # pragma: no cover - rebuild_store always creates the store first
            for name in CHECKS[4:]:
                checks.append(CheckResult(name, False, "no rebuild to compare with", [], 0))
    if receipt_check is not None:
        checks.append(receipt_check)
    return AuditReport(str(db_path), checks, len(live.bundles), len(files), len(live.ledger))


__all__ = ["AuditReport", "CHECKS", "CheckResult", "RECEIPTS_CHECK", "audit_store", "check_receipts", "national_snapshot",
           "rebuild_store"]
