"""The registry of organisations and their keys; every change is one transaction with its ledger entry."""

from __future__ import annotations

import base64
import datetime as dt
import re
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Iterator

import duckdb

from ..contract.codelists import INVESTIGATIVE_REPORTERS, OrgKind, ReporterType
from ..contract.keys import key_id
from ..errors import ConfigError, UsageError
from ..privacy.epsilon import exact_text, parse_epsilon
from ..util.clock import iso, store_now
from .ledger import append_entry
from .store import atomic, open_store

_ORG_ID = re.compile(r"[a-z0-9][a-z0-9-]{1,62}")


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
        raise UsageError(f"organisation kind must be one of: {', '.join(kinds)}", "kind")
    reporters = [r.value for r in ReporterType]
    if reporter_type not in reporters:
        raise UsageError(f"reporter type must be one of: {', '.join(reporters)}", "reporter_type")
    if (kind == "investigative") != (reporter_type in INVESTIGATIVE_REPORTERS):
        raise UsageError(f"reporter type {reporter_type!r} does not fit organisation kind {kind!r}")
    cap_value = parse_epsilon(cap, what="the epsilon cap", error=lambda m: UsageError(m, "cap"), bounded=False)
    if len(public_key) != 32:
        raise ConfigError("public key must be 32 bytes of Ed25519")
    keyid = key_id(public_key)
    now = store_now(now)
    with open_store(db_path) as con:
        with atomic(con):
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
            append_entry(
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
        return _org_entry(con, org_id)  # type: ignore[return-value]


@contextmanager
def registered_org_change(db_path: Path, org_id: str, *, revoked_message: str) -> Iterator[tuple[Any, OrgEntry]]:
    """One registry transaction on an active, registered organisation: commits on success, rolls back on error."""
    with open_store(db_path) as con, atomic(con):
        org = _org_entry(con, org_id)
        if org is None:
            raise ConfigError(f"organisation {org_id} is not registered")
        if org.status == "revoked":
            raise ConfigError(revoked_message.format(org=org_id))
        yield con, org


def rotate_key(db_path: Path, org_id: str, public_key: bytes, *, now: dt.datetime | None = None) -> OrgEntry:
    """Give an organisation a new key. Old keys stay in the registry (retired) so old bundles remain verifiable;
    a bundle signed with a retired key still merges only if it was created before the rotation."""
    if len(public_key) != 32:
        raise ConfigError("public key must be 32 bytes of Ed25519")
    keyid = key_id(public_key)
    now = store_now(now)
    encoded = base64.b64encode(public_key).decode("ascii")
    revoked = "organisation {org} is revoked; register it again under a new id"
    with registered_org_change(db_path, org_id, revoked_message=revoked) as (con, org):
        _check_key_free(con, keyid)
        retired = [k.keyid for k in org.keys if k.status == "active"]
        con.execute(
            "UPDATE org_keys SET retired_at = ? WHERE org_id = ? AND retired_at IS NULL AND revoked_at IS NULL",
            [now, org_id],
        )
        con.execute("INSERT INTO org_keys VALUES (?, ?, ?, ?, NULL, NULL)", [keyid, org_id, encoded, now])
        append_entry(con, "rotate", {"org": org_id, "keyid": keyid, "public_key": encoded, "retired": retired}, now)
    return _current_entry(db_path, org_id)


def revoke_org(db_path: Path, org_id: str, *, now: dt.datetime | None = None) -> OrgEntry:
    """Revoke an organisation and all its keys: none of its bundles merge any more. Bundles already accepted
    stay in the table and the budget (they were valid when they arrived)."""
    now = store_now(now)
    with registered_org_change(db_path, org_id, revoked_message="organisation {org} is already revoked") as (con, org):
        con.execute("UPDATE organisations SET status = 'revoked', revoked_at = ? WHERE id = ?", [now, org_id])
        con.execute("UPDATE org_keys SET revoked_at = ? WHERE org_id = ? AND revoked_at IS NULL", [now, org_id])
        append_entry(con, "revoke", {"org": org_id, "keyids": [k.keyid for k in org.keys]}, now)
    return _current_entry(db_path, org_id)


def _current_entry(db_path: Path, org_id: str) -> OrgEntry:
    with open_store(db_path, write=False) as con:
        return _org_entry(con, org_id)  # type: ignore[return-value]


def list_orgs(db_path: Path) -> list[OrgEntry]:
    with open_store(db_path, write=False) as con:
        ids = [row[0] for row in con.execute("SELECT id FROM organisations ORDER BY id").fetchall()]
        return [_org_entry(con, org_id) for org_id in ids]  # type: ignore[misc]
