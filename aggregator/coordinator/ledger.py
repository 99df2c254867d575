"""The coordinator's hash-chained ledger: every accepted bundle and registry change, each entry's hash covering the
previous one (sha256 over RFC 8785 canonical JSON of the entry including `prev_hash`)."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import asdict, dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any, Iterable

import duckdb

from ..contract.envelope import bundle_filename, canonical_json, sha256_hex
from ..errors import BundleRejected, InputError
from ..util.clock import iso
from ..util.files import write_output
from .store import archive_dir, open_store

GENESIS_HASH = "0" * 64


def entry_hash(entry: dict[str, Any]) -> str:
    """sha256 over the canonical JSON of the entry (which includes prev_hash, never its own hash)."""
    return sha256_hex(canonical_json(entry))


@dataclass(frozen=True)
class ChainedEntry:
    """One ledger entry ready to store: its canonical text (which includes prev_hash) and its hash."""

    index: int
    event: str
    body: dict[str, Any]
    text: str
    prev_hash: str
    hash: str


def chain_entry(index: int, event: str, at: dt.datetime, body: dict[str, Any], prev_hash: str) -> ChainedEntry:
    """The one place a ledger entry is built: index, event and time first, the body, then the previous hash."""
    entry = {"index": index, "event": event, "at": iso(at), **body, "prev_hash": prev_hash}
    text = canonical_json(entry)
    return ChainedEntry(index, event, body, text.decode("utf-8"), prev_hash, sha256_hex(text))


def append_entry(con: duckdb.DuckDBPyConnection, event: str, body: dict[str, Any], now: dt.datetime) -> int:
    """Append one entry inside the caller's transaction; returns its index."""
    last = con.execute("SELECT idx, hash FROM ledger ORDER BY idx DESC LIMIT 1").fetchone()
    chained = chain_entry((last[0] + 1) if last else 1, event, now, body, last[1] if last else GENESIS_HASH)
    con.execute(
        """
        INSERT INTO ledger (idx, event, org_id, period, digest, epsilon, entry, prev_hash, hash)
        VALUES ($idx, $event, $org, $period, $digest, $epsilon, $entry, $prev_hash, $hash)
        """,
        {
            "idx": chained.index,
            "event": event,
            "org": body["org"],
            "period": body.get("period"),
            "digest": body.get("digest"),
            "epsilon": body.get("epsilon"),
            "entry": chained.text,
            "prev_hash": chained.prev_hash,
            "hash": chained.hash,
        },
    )
    return chained.index


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
        pinned = _pinned_by_joint_entry(con, rows)
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
    accepted: dict[Any, dict[str, Any]] = {}
    refunded: set[Any] = set()
    plans = {e.get("digest"): e for e in entries if e.get("event") == "plan"}
    for entry in entries:
        if entry.get("event") == "joint":
            problems.extend(_replay_refunds(entry, pinned.get(entry.get("index"), []), plans, accepted, refunded,
                                            spent))
            continue
        if entry.get("event") != "accept":
            continue
        accepted[entry.get("digest")] = entry
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


def _pinned_by_joint_entry(con: duckdb.DuckDBPyConnection, rows: list[tuple]) -> dict[int, list[tuple]]:
    """Ledger index of each joint entry -> the bundles that pinned its plan before it (what its refunds derive from)."""
    from .joint import pinned_bundles

    out: dict[int, list[tuple]] = {}
    for idx, event, *_rest, text, _prev, _hash in rows:
        if event != "joint":
            continue
        try:
            plan = json.loads(text).get("plan")
        except (ValueError, AttributeError):
            continue
        if isinstance(plan, str):
            out[idx] = pinned_bundles(con, plan, before=idx)
    return out


def _replay_refunds(entry: dict[str, Any], pinned: list[tuple], plans: dict[Any, dict[str, Any]],
                    accepted: dict[Any, dict[str, Any]], refunded: set[Any],
                    spent: dict[tuple[str, int], Fraction]) -> list[str]:
    """Check a joint entry's refunds (each an earlier accepted bundle of the period, given back the plan's joint
    epsilon at most once, exactly the ones `joint_refunds` derives) and take them off the running totals."""
    from .joint import joint_refunds

    where = f"ledger entry {entry.get('index')}"
    refunds = entry.get("refunds", [])
    result = entry.get("result") if isinstance(entry.get("result"), dict) else {}
    problems: list[str] = []
    try:
        expected = joint_refunds(pinned, list(entry.get("bundles", [])), list(result.get("included", [])))
    except (TypeError, ValueError, ZeroDivisionError):
        expected = None
    if not isinstance(refunds, list) or refunds != expected:
        problems.append(f"{where}: joint refunds differ from the bundles that pinned the plan and the result's "
                        "included organisations")
    if not isinstance(refunds, list):
        return problems
    plan = plans.get(entry.get("plan"), {})
    for refund in refunds:
        try:
            digest, org, epsilon = refund["digest"], refund["org"], Fraction(str(refund["epsilon"]))
            planned = Fraction(str(plan["epsilon"])) if "epsilon" in plan else epsilon
        except (KeyError, TypeError, ValueError, ZeroDivisionError):
            problems.append(f"{where}: a joint refund is not an organisation, a bundle and an exact epsilon")
            continue
        charged = accepted.get(digest)
        if charged is None or (charged.get("org"), charged.get("period")) != (org, entry.get("period")):
            problems.append(f"{where}: joint refund for bundle {str(digest)[:12]}, which {org} did not send "
                            "earlier for this period")
            continue
        if digest in refunded:
            problems.append(f"{where}: bundle {str(digest)[:12]} gets its joint epsilon back twice")
        if epsilon != planned:
            problems.append(f"{where}: joint refund of {epsilon} for bundle {str(digest)[:12]} is not the plan's "
                            "joint epsilon")
        refunded.add(digest)
        key = (org, entry.get("period"))
        spent[key] = spent.get(key, Fraction(0)) - epsilon
    return problems


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
