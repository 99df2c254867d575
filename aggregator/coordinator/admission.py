"""The admission rules a bundle must pass before it is merged, in the order the store's docstring lists them."""

from __future__ import annotations

import base64
import datetime as dt
import itertools
import math
from dataclasses import asdict, dataclass, field
from fractions import Fraction
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb

from ..contract.codelists import DIMENSIONS, codes
from ..contract.envelope import open_envelope, read_bundle_file, verify_envelope
from ..contract.validity import check_times
from ..errors import BundleRejected
from ..privacy.epsilon import exact_text, parse_epsilon
from ..privacy.mechanism import discrete_laplace_variance
from ..util.clock import iso, utc_naive  # noqa: F401
from .ledger import GENESIS_HASH, chain_entry
from .payload import RecordColumns, parse_staged_payload

if TYPE_CHECKING:
    from .batch import Batch

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
    linked: int = 0  # records folded into another record of the bundle with the same pseudonym

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class KeyInfo:
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
class Staged:
    position: int
    file: str
    data: bytes
    digest: str
    keyid: str
    payload: Any  # schema.Payload without its records (see `records`) and, when they were plain, its cells (`counts`)
    key: KeyInfo
    epsilon: Fraction
    linked: int = 0  # records that shared a pseudonym with an earlier record of the bundle (kept as one person)
    marginal_epsilons: list[str] = field(default_factory=list)  # each marginal's exact epsilon text, in order
    counts: list[list[int]] = field(default_factory=list)  # each marginal's noisy counts, in codelist cell order
    records: RecordColumns = field(default_factory=lambda: RecordColumns([], [], [], [], [], [], []))


def _key_info(con: duckdb.DuckDBPyConnection, keyid: str) -> KeyInfo | None:
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
    return KeyInfo(row[0], row[1], base64.b64decode(row[2]), row[3], row[4], row[5], row[6], Fraction(row[7]), row[8])


@lru_cache(maxsize=64)
def cell_keys(dims: tuple[str, ...]) -> list[tuple[str, ...]]:
    """Every codelist cell of these dimensions, in order."""
    return list(itertools.product(*(codes(d) for d in dims)))


def malformed(message: str) -> BundleRejected:
    return BundleRejected(message, "malformed-release")


def _release_epsilon(
    payload: Any, counts: list[list[int]] | None = None
) -> tuple[Fraction, list[str], list[list[int]]]:
    """Check the release's marginals: its exact epsilon (0 without a release), each marginal's exact epsilon text
    and its counts. `counts` are those of cells already found to be every codelist cell in order (see
    parse_staged_payload; the marginals then carry no cells), None when the marginals' cells are still to check."""
    release = payload.release
    if release is None:
        return Fraction(0), [], []

    def frac(text: str, where: str) -> Fraction:
        return parse_epsilon(text, what=f"{where} epsilon", error=malformed, bounded=False)

    total = frac(release.epsilon, "release")
    if not release.marginals:
        raise BundleRejected("release has no marginals", "malformed-release")
    parts = Fraction(0)
    texts: list[str] = []
    for index, marginal in enumerate(release.marginals):
        where = f"marginal {index}"
        eps = frac(marginal.epsilon, where)
        parts += eps
        texts.append(exact_text(eps))
        dims = marginal.dimensions
        unknown = [d for d in dims if d not in DIMENSIONS]
        if unknown or len(set(dims)) != len(dims):
            raise BundleRejected(f"{where} has unknown or repeated dimensions", "malformed-release")
        if counts is None:
            expected = cell_keys(tuple(dims))
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
    if counts is None:
        counts = [[cell.count for cell in marginal.cells] for marginal in release.marginals]
    return total, texts, counts


def _joint_epsilon(payload: Any, state: MergeState, now: dt.datetime) -> Fraction:
    """Check the bundle's joint contribution against its plan; returns the joint epsilon it spends (0 without)."""
    import base64
    import binascii

    joint = payload.joint
    if joint is None:
        return Fraction(0)
    if joint.plan not in state.plans:
        raise BundleRejected(f"bundle carries shares for plan {joint.plan[:12]}, which is not registered", "unknown-plan")
    plan, done = state.plans[joint.plan]
    if plan.period != payload.period or Fraction(joint.epsilon) != plan.epsilon:
        raise BundleRejected(f"bundle's joint section does not match plan {joint.plan[:12]} (period or epsilon)",
                             "plan-mismatch")
    if done or now > plan.deadline:
        raise BundleRejected(f"plan {joint.plan[:12]} is closed (deadline passed or result computed)", "plan-closed")
    try:
        for share in joint.shares:
            base64.b64decode(share, validate=True)
    except (binascii.Error, ValueError):
        raise BundleRejected("bundle's joint shares are not base64", "malformed-payload") from None
    return plan.epsilon


def _check_payload(
    payload: Any, records: RecordColumns, opened: Any, key: KeyInfo, now: dt.datetime, counts: list[list[int]] | None
) -> tuple[Fraction, list[str], list[list[int]]]:
    """Rules that need only the payload and the registry; what _release_epsilon returns."""
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
    check_times(payload.created_at, payload.expires_at, now, key_retired_at=key.retired_at, keyid=key.keyid)
    if key.kind != "investigative" and "statutory" in records.basis:
        raise BundleRejected(
            f"{org.id} is not an investigative organisation and cannot send records on a statutory basis",
            "statutory-from-non-investigative",
        )
    return _release_epsilon(payload, counts)


def link_shared_pseudonyms(records: RecordColumns) -> int:
    """One pseudonym is one person nationally: keep the first record of each pseudonym (two people with the same
    names and date of birth cannot be told apart); returns how many records were folded into an earlier one."""
    return records.keep_first_of_each_pseudonym()


def linked_note(linked: int) -> str:
    return f"{linked} record(s) share a pseudonym with another record of this bundle; each kept as one person"


@dataclass
class MergeState:
    """What the merge rules need from the store, read once per run and kept up to date as bundles are accepted."""

    digests: set[str]  # every accepted bundle
    by_sequence: dict[tuple[str, int, int], str]  # (org, period, sequence) -> digest
    latest: dict[tuple[str, int], int]  # highest accepted sequence per (org, period)
    spent: dict[tuple[str, int], Fraction]  # exact epsilon spent per (org, period)
    current: dict[tuple[str, int], list[str]]  # bundles not superseded yet, by sequence
    keys: dict[str, KeyInfo]  # the registry by keyid
    ledger_index: int  # the ledger head
    ledger_hash: str
    plans: dict[str, Any] = field(default_factory=dict)  # digest -> (Plan, joint result already in)


def load_state(con: duckdb.DuckDBPyConnection) -> MergeState:
    from .joint import load_plans, stored_refunds

    state = MergeState(set(), {}, {}, {}, {}, {}, 0, GENESIS_HASH, load_plans(con))
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
    for org_id, period, _digest, epsilon, _reason in stored_refunds(con):  # joint epsilon given back
        state.spent[(org_id, period)] = state.spent.get((org_id, period), Fraction(0)) - epsilon
    for row in con.execute(
        """
        SELECT k.keyid, k.org_id, k.public_key, k.retired_at, k.revoked_at, o.kind, o.reporter_type, o.cap, o.status
        FROM org_keys AS k JOIN organisations AS o ON o.id = k.org_id
        """
    ).fetchall():
        state.keys[row[0]] = KeyInfo(
            row[0], row[1], base64.b64decode(row[2]), row[3], row[4], row[5], row[6], Fraction(row[7]), row[8]
        )
    head = con.execute("SELECT idx, hash FROM ledger ORDER BY idx DESC LIMIT 1").fetchone()
    if head is not None:
        state.ledger_index, state.ledger_hash = int(head[0]), head[1]
    return state


def _unknown_key_message(state: MergeState, opened) -> str:
    """Name the organisation the (unverified) bundle claims, when it claims a well-formed id, and what is missing."""
    import json
    import re

    try:
        claimed = json.loads(opened.payload_bytes)["organisation"]["id"]
    except (ValueError, KeyError, TypeError):
        claimed = None
    if not isinstance(claimed, str) or not re.fullmatch(r"[a-z0-9][a-z0-9-]{1,62}", claimed):
        return f"bundle is signed with key {opened.keyid}, which is not in the registry (unknown organisation or key)"
    if claimed in {k.org_id for k in state.keys.values()}:
        return (f"bundle claims to be from {claimed}, which is registered, but is signed with key {opened.keyid}, "
                f"which is not one of its keys (register a new key with `aggregator registry rotate {claimed}`)")
    return (f"bundle claims to be from {claimed}, which is not registered in this store (key {opened.keyid}); "
            f"register it with `aggregator registry add {claimed} ...`, or check that this is the right store")


def stage(state: MergeState, position: int, path: Path, now: dt.datetime) -> Staged | BundleOutcome:
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
        raise BundleRejected(_unknown_key_message(state, opened), "unknown-key")
    verify_envelope(opened, key.raw)
    if key.revoked_at is not None or key.status == "revoked":
        raise BundleRejected(f"the key {key.keyid} of {key.org_id} is revoked", "revoked")
    payload, checked, records = parse_staged_payload(opened)
    release_epsilon, marginal_epsilons, counts = _check_payload(payload, records, opened, key, now, checked)
    epsilon = release_epsilon + _joint_epsilon(payload, state, now)
    linked = link_shared_pseudonyms(records)
    return Staged(position, name, data, opened.digest, opened.keyid, payload, key, epsilon, linked, marginal_epsilons,
                  counts, records)


def outcome(staged: Staged, status: str, **extra: Any) -> BundleOutcome:
    p = staged.payload
    return BundleOutcome(
        staged.file,
        status,
        digest=staged.digest,
        org=p.organisation.id,
        period=p.period,
        sequence=p.sequence,
        epsilon=exact_text(staged.epsilon),
        records=len(staged.records),
        withdrawals=len(p.withdrawals),
        marginals=len(p.release.marginals) if p.release else 0,
        **extra,
    )


def check_rules(state: MergeState, staged: Staged, batch: Batch, now: dt.datetime) -> BundleOutcome:
    """Apply the replay, rollback and budget rules against the in-memory state; an accepted bundle joins the batch."""
    p = staged.payload
    org_id, period, sequence = p.organisation.id, p.period, p.sequence
    key = (org_id, period)
    if staged.digest in state.digests:
        return outcome(staged, "duplicate", message="already merged; nothing changed")
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
        [{"dimensions": m.dimensions, "epsilon": eps} for m, eps in zip(p.release.marginals, staged.marginal_epsilons)]
        if p.release
        else []
    )
    chained = chain_entry(
        state.ledger_index + 1,
        "accept",
        now,
        {
            "org": org_id,
            "period": period,
            "digest": staged.digest,
            "sequence": sequence,
            "keyid": staged.keyid,
            "epsilon": exact_text(staged.epsilon),
            "spent": exact_text(spent + staged.epsilon),
            "cap": exact_text(staged.key.cap),
            "marginals": marginals,
            "records": len(staged.records),
            "withdrawals": len(p.withdrawals),
            "supersedes": superseded,
        },
        state.ledger_hash,
    )
    batch.add(staged, chained)
    state.digests.add(staged.digest)
    state.by_sequence[(org_id, period, sequence)] = staged.digest
    state.latest[key] = sequence if latest is None else max(latest, sequence)
    state.spent[key] = spent + staged.epsilon
    state.current[key] = [staged.digest]
    for digest in superseded:
        batch.superseded_by[digest] = staged.digest
    state.ledger_index, state.ledger_hash = chained.index, chained.hash
    message = "accepted"
    if superseded:
        message = f"accepted; replaces {len(superseded)} earlier bundle(s) of {org_id} {period} in the table"
    note = linked_note(staged.linked) if staged.linked else None
    if note:
        message = f"{message}; {note}"
    return outcome(staged, "accepted", message=message, supersedes=superseded, flagged=note,
                   linked=staged.linked)


