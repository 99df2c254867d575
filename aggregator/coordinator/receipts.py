"""Receipts for accepted bundles (signed by `merge --receipts`) and their check against today's ledger (`audit
--receipts`). The receipt format is in contract/receipt.py.

Why: the ledger's hash chain only shows that the store agrees with itself. A coordinator can drop an archived
bundle and rebuild the store (audit.rebuild_store) into a new chain that passes `audit` and `budget --verify`, and
then accept another bundle on the freed budget. A receipt is the coordinator's signature over a bundle's ledger
position and the chain head at that time, held by the organisation, outside the coordinator's reach; a rewritten
chain cannot match it.

The coordinator's key is a file outside the store (default `coordinator.key` beside the database, made on first use,
mode 0600, the public key as `coordinator.pub` beside it: the same key `plan create --key` signs plans with). The
public key reaches organisations and auditors out of band, like the plan's key: a key the store itself vouched
for would prove nothing about the store.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Iterable

import duckdb

from ..contract.receipt import Receipt, read_receipt_file, receipt_filename, receipt_files, sign_receipt
from ..errors import AggregatorError, InputError, ReceiptRefused
from ..util.clock import iso
from .ledger import GENESIS_HASH, entry_hash
from .store import open_store

COORDINATOR_KEY = "coordinator.key"


def default_key_path(db_path: Path) -> Path:
    """The coordinator's signing key when none is named: `coordinator.key` in the store's folder (never in the store)."""
    return Path(db_path).parent / COORDINATOR_KEY


def coordinator_signer(db_path: Path, key: Path | None = None):
    """The coordinator's Ed25519 signing key (made on first use, with its public `.pub` file beside it)."""
    from ..contract.keys import load_or_create_key

    return load_or_create_key(Path(key) if key is not None else default_key_path(db_path))


def store_id(con: duckdb.DuckDBPyConnection) -> str:
    """Which store a receipt is about: the hash of its first ledger entry (the same after an honest rebuild)."""
    row = con.execute("SELECT hash FROM ledger WHERE idx = 1").fetchone()
    return row[0] if row else GENESIS_HASH


def issue_receipts(con: duckdb.DuckDBPyConnection, digests: Iterable[str], signer, folder: Path,
                   now: dt.datetime) -> dict[str, str]:
    """Sign and write one receipt per accepted bundle (by digest) into `folder` as `<digest>.receipt.json`, under the
    ledger head as it is now; returns digest -> file. A bundle merged again (a duplicate) gets its receipt again."""
    from ..util.files import write_output

    wanted = sorted(set(digests))
    if not wanted:
        return {}
    rows = con.execute(
        """
        SELECT l.digest, l.idx, l.hash, l.org_id, l.period, b.sequence
        FROM ledger AS l JOIN bundles AS b ON b.digest = l.digest
        WHERE l.event = 'accept' AND l.digest IN (SELECT UNNEST($digests::VARCHAR[]))
        ORDER BY l.idx
        """,
        {"digests": wanted},
    ).fetchall()
    head_index, head_hash = con.execute("SELECT idx, hash FROM ledger ORDER BY idx DESC LIMIT 1").fetchone()
    store = store_id(con)
    written: dict[str, str] = {}
    for digest, index, hash_, org, period, sequence in rows:
        receipt = Receipt(store, digest, org, int(period), int(sequence), int(index), hash_, int(head_index),
                          head_hash, iso(now) or "")
        path = Path(folder) / receipt_filename(digest)
        write_output(path, sign_receipt(receipt, signer))
        written[digest] = str(path)
    return written


def _intact_upto(rows: list[tuple]) -> int:
    """The last index up to which today's ledger recomputes: each entry's hash covers its content and the previous
    entry's hash, and the indices run 1, 2, 3, ..."""
    prev = GENESIS_HASH
    for expected, (idx, _event, _digest, text, hash_) in enumerate(rows, start=1):
        try:
            entry = json.loads(text)
            good = (idx == expected and isinstance(entry, dict) and entry.get("index") == idx
                    and entry.get("prev_hash") == prev and entry_hash(entry) == hash_)
        except (ValueError, TypeError, AggregatorError):  # an unreadable entry ends the intact part
            good = False
        if not good:
            return expected - 1
        prev = hash_
    return len(rows)


def check_receipts(db_path: Path, paths: list[Path], coordinator_key: bytes) -> tuple[int, list[str]]:
    """Check receipts against today's ledger; returns (receipt files checked, problems naming each failing receipt).

    Each receipt must verify with the coordinator's key and be about this store; the entry at its index must still
    be the accept of its bundle with the same hash; the entry at its head index must still have the head's hash;
    and today's chain must recompute up to that head. A dropped bundle and a rebuilt chain fail the receipts signed
    under a head after the drop."""
    files = receipt_files(paths)
    if not files:
        raise InputError("no receipt files (*.receipt.json) in the paths given")
    with open_store(Path(db_path), write=False) as con:
        rows = con.execute("SELECT idx, event, digest, entry, hash FROM ledger ORDER BY idx").fetchall()
    store = rows[0][4] if rows else GENESIS_HASH
    by_index = {row[0]: row for row in rows}
    accepted_at = {row[2]: row[0] for row in rows if row[1] == "accept"}
    intact = _intact_upto(rows)
    problems: list[str] = []
    for path in files:
        try:
            r = read_receipt_file(path, coordinator_key)
        except ReceiptRefused as exc:
            problems.append(f"refused {exc.message}")
            continue
        what = f"receipt {path.name} (bundle {r.digest[:12]} of {r.org} {r.period}, ledger entry {r.index})"
        if r.store != store:
            problems.append(f"{what}: is for another store (first ledger entry {r.store[:12]}, this store's "
                            f"{store[:12]})")
            continue
        entry = by_index.get(r.index)
        now_at = accepted_at.get(r.digest)
        reasons: list[str] = []
        if entry is None:
            reasons.append(f"the ledger has no entry {r.index} any more ({len(rows)} entries)")
        elif entry[1] != "accept" or entry[2] != r.digest:
            reasons.append(f"ledger entry {r.index} is no longer the accept of this bundle")
        elif entry[4] != r.entry_hash:
            reasons.append(f"ledger entry {r.index} has another hash than the receipt (the chain before it was "
                           "rewritten)")
        if reasons:
            reasons.append("the bundle is no longer in the ledger" if now_at is None
                           else f"the bundle is now at entry {now_at}")
        head = by_index.get(r.head_index)
        if head is None:
            reasons.append(f"the ledger ends before entry {r.head_index}, the head the receipt was signed under: "
                           "entries were removed")
        elif head[4] != r.head_hash:
            reasons.append(f"ledger entry {r.head_index}, the receipt's chain head, has another hash: the chain up "
                           "to it was rewritten (a bundle dropped, moved or changed)")
        elif intact < r.head_index:
            reasons.append(f"today's ledger does not recompute up to the receipt's head (entry {r.head_index})")
        if reasons:
            problems.append(f"{what}: " + "; ".join(reasons))
    return len(files), problems
