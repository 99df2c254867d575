"""Joint releases in the store: computation plans, running the three parties over the merged shares, and the
co-signed result, each a ledger entry so that the audit replays them.

The coordinator never decrypts a share: it hands each party the sealed shares of the current bundles that pinned the
plan, and stores the result only when all three parties' signatures over the same opened counts verify with the
keys the plan names. One computation per plan (a second is refused), so each organisation's joint epsilon is spent
once; a bundle arriving after the result (or after the deadline) is refused at merge.

A bundle's joint epsilon is charged when it is merged (it pins the plan). When the result is stored, every bundle
that pinned the plan but whose shares did not go into the result gets it back (`joint_refunds`): the parties
excluded its organisation, or it was superseded before the computation. The refunds are part of the hashed "joint"
ledger entry, so the budget, the next merges and the audit's replay all apply the same ones.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import math
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..errors import AggregatorError, ConfigError, InputError

# The share of the people contributed under a local pseudonym (no name or no date of birth) whom another organisation
# also knows under a linkable one; it sets only the joint point estimate, never its interval (joint_tables). Chosen;
# the direction is public (docs/figures.md, F9): many of the anonymous chat's victims are known to no one else.
UNLINKED_KNOWN_ELSEWHERE = 0.25
# How uncertain that share is: as if uniform on [0, 1/2] (mean the quarter above). Its variance, times U squared, is
# part of the standard error shown beside the joint point estimate (national_joint.figures), so that the estimate
# +/- its standard error does not claim to know the share; the interval needs no prior (it holds for any share).
UNLINKED_KNOWN_ELSEWHERE_SD = 0.5 / 12 ** 0.5
COORDINATOR = "coordinator"  # the ledger's organisation column for the coordinator's own events


class JointRefused(AggregatorError):
    """A joint computation could not run or its result cannot be accepted; nothing was released or stored."""


def register_plan(db_path: Path, document: dict[str, Any], *, now: dt.datetime | None = None):
    """Record a computation plan (the signed file is published separately); returns the Plan."""
    from ..contract.envelope import canonical_json, sha256_hex
    from ..joint.plan import PLAN_VERSIONS, Plan
    from ..util.clock import parse_iso, store_now
    from .ledger import append_entry
    from .store import atomic, open_store

    if not isinstance(document, dict) or document.get("plan_version") not in PLAN_VERSIONS:
        raise InputError("not a computation plan this aggregator knows")
    plan = Plan(document, sha256_hex(canonical_json(document)))
    now = store_now(now)
    with open_store(db_path) as con, atomic(con):
        if con.execute("SELECT 1 FROM plans WHERE digest = ?", [plan.digest]).fetchone():
            raise ConfigError(f"plan {plan.digest[:12]} is already registered")
        index = append_entry(con, "plan", {"org": COORDINATOR, "period": plan.period, "digest": plan.digest,
                                           "epsilon": document["epsilon"], "document": document}, now)
        con.execute("INSERT INTO plans VALUES (?, ?, ?, ?, ?, ?, ?)",
                    [plan.digest, plan.period, document["epsilon"], parse_iso(document["deadline"]),
                     canonical_json(document).decode("utf-8"), now, index])
    return plan


def publish_plan(db_path: Path, period: int, epsilon, parties: list, *, key: Path, out: Path,
                 deadline: dt.datetime, prior_total: int | None = None, lists: str | None = None,
                 strata: tuple[str, ...] = ()):
    """Build, sign (with the coordinator's key at `key`, made when missing), register and write a plan file for
    organisations to pin; returns the Plan as read back from the written, signed file."""
    from cryptography.hazmat.primitives import serialization

    from ..contract.keys import load_or_create_key
    from ..joint.plan import PRIOR_TOTAL, build_plan, read_plan, sign_plan
    from ..util.files import write_output

    signer = load_or_create_key(Path(key))
    document = build_plan(period, epsilon, parties, deadline=deadline,
                          prior_total=PRIOR_TOTAL if prior_total is None else prior_total, lists=lists,
                          strata=tuple(strata))
    data = sign_plan(document, signer)
    register_plan(db_path, document)
    write_output(Path(out), data)
    raw = signer.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return read_plan(data, raw)


def load_plans(con) -> dict[str, Any]:
    """Every registered plan by digest, with whether its joint result is in (the merge rules need both)."""
    from ..joint.plan import Plan

    done = {row[0] for row in con.execute("SELECT plan FROM joint_results").fetchall()}
    plans = {}
    for digest, document in con.execute("SELECT digest, document FROM plans").fetchall():
        plans[digest] = (Plan(json.loads(document), digest), digest in done)
    return plans


def _plan(con, digest: str):
    plans = load_plans(con)
    if digest not in plans:
        raise JointRefused(f"plan {digest[:12]} is not registered in this store")
    return plans[digest]


def store_joint_result(db_path: Path, plan_digest: str, result: dict[str, Any], signatures: list[str],
                       bundles: list[str], *, now: dt.datetime | None = None) -> list[dict[str, str]]:
    """Accept a joint result only with every party's valid signature, once per plan; `bundles` are the digests
    whose shares the parties were given, which the parties sign as part of the result (plans of version 2 on; older
    results name none). Returns the joint epsilon given back (`joint_refunds`)."""
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    from ..contract.envelope import canonical_json
    from ..joint.party import result_bytes
    from ..util.clock import store_now
    from .ledger import append_entry
    from .store import atomic, open_store

    now = store_now(now)
    with open_store(db_path) as con, atomic(con):
        plan, done = _plan(con, plan_digest)
        if done:
            raise JointRefused(f"plan {plan_digest[:12]} already has its joint result; a second computation "
                               "would spend every organisation's joint epsilon again")
        if len(signatures) != len(plan.parties):
            raise JointRefused("a joint result needs the signature of every computing party")
        signed = result_bytes(result, plan_digest)
        for party, signature in zip(plan.parties, signatures):
            try:
                Ed25519PublicKey.from_public_bytes(base64.b64decode(party.signing_key)).verify(
                    base64.b64decode(signature), signed)
            except (InvalidSignature, ValueError):
                raise JointRefused(f"the signature of computing party {party.name} does not verify; "
                                   "the result was not stored") from None
        signed_bundles = result.get("bundles")
        if signed_bundles is None and plan.version >= 2:  # plans of version 2 on: the parties sign them
            raise JointRefused("the parties' signed result does not name the bundles they used; the result was not "
                               "stored")
        if signed_bundles is not None and sorted(signed_bundles) != sorted(bundles):
            raise JointRefused("the bundles the parties signed for are not the bundles given with the result; the "
                               "result was not stored")
        pinned = pinned_bundles(con, plan_digest)
        known = {digest for digest, _, _ in pinned}
        strangers = [d for d in bundles if d not in known]
        if strangers:
            raise JointRefused(f"bundle {str(strangers[0])[:12]} did not pin plan {plan_digest[:12]}; the result "
                               "was not stored")
        handed = set(bundles)
        used_orgs = {org for digest, org, _ in pinned if digest in handed}
        missing = [o for o in result.get("included", []) if o not in used_orgs]
        if missing:
            raise JointRefused(f"the result includes {missing[0]}, whose bundle was not handed to the parties; "
                               "the result was not stored")
        refunds = joint_refunds(pinned, bundles, result.get("included", []))
        index = append_entry(con, "joint", {"org": COORDINATOR, "period": plan.period, "plan": plan_digest,
                                            "result": result, "signatures": signatures, "bundles": bundles,
                                            "refunds": refunds}, now)
        con.execute("INSERT INTO joint_results VALUES (?, ?, ?, ?, ?, ?, ?)",
                    [plan_digest, plan.period, canonical_json(result).decode("utf-8"), json.dumps(signatures),
                     json.dumps(bundles), now, index])
    return refunds


def pinned_bundles(con, plan_digest: str, *, before: int | None = None) -> list[tuple[str, str, str]]:
    """(digest, organisation, exact joint epsilon charged) of every bundle that pinned the plan, superseded or not
    (`before`: only those accepted before that ledger index)."""
    return [tuple(row) for row in con.execute(
        "SELECT digest, org_id, joint_epsilon FROM bundles WHERE joint_plan = $plan "
        "AND ($before IS NULL OR ledger_index < $before) ORDER BY org_id, digest",
        {"plan": plan_digest, "before": before}).fetchall()]


def joint_refunds(pinned: list[tuple[str, str, Any]], used: list[str], included: list[str]) -> list[dict[str, str]]:
    """The joint epsilon given back when a plan's result is stored: one refund per bundle that pinned the plan
    (`pinned`: digest, organisation, joint epsilon charged at merge) but whose shares are not in the result, either
    because the parties excluded its organisation (not in `included`) or because its shares were never handed to
    them (not in `used`: superseded before the computation). Exact, sorted by organisation and digest."""
    from fractions import Fraction

    from ..privacy.epsilon import exact_text

    handed, kept = set(used), set(included)
    refunds = []
    for digest, org, epsilon in sorted(pinned, key=lambda p: (p[1], p[0])):
        if digest in handed and org in kept:
            continue  # its shares are in the opened counts: the joint epsilon stays spent
        reason = "excluded" if digest in handed else "not used"
        refunds.append({"org": org, "digest": digest, "epsilon": exact_text(Fraction(str(epsilon))),
                        "reason": reason})
    return refunds


def stored_refunds(con) -> list[tuple[str, int, str, Any, str]]:
    """(organisation, period, digest, exact epsilon, reason) of every refund in the stored joint results' ledger
    entries (the hashed text, not a derived column), in ledger order."""
    from fractions import Fraction

    out = []
    for idx, text in con.execute(
            "SELECT l.idx, l.entry FROM joint_results AS j JOIN ledger AS l ON l.idx = j.ledger_index ORDER BY l.idx"
    ).fetchall():
        try:
            entry = json.loads(text)
            for refund in entry.get("refunds", []):
                out.append((str(refund["org"]), int(entry["period"]), str(refund["digest"]),
                            Fraction(str(refund["epsilon"])), str(refund.get("reason", ""))))
        except (ValueError, KeyError, TypeError, AttributeError, ZeroDivisionError):
            raise ConfigError(f"ledger entry {idx}: the joint result's refunds cannot be read; "
                              "check the store with `aggregator audit`") from None
    return out


@dataclass
class JointRun:
    """What `aggregator compute` did: the plan, who took part, who was excluded and why, how long it took."""

    plan: str
    period: int
    organisations: list[str]
    excluded: dict[str, str]
    seconds: float
    counts: dict[str, int] = field(default_factory=dict)
    refunds: list[dict[str, str]] = field(default_factory=list)  # joint epsilon given back (see joint_refunds)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def handed_bundles(db_path: Path, plan_digest: str):
    """What the parties are given for a plan: (Plan, [(bundle digest, organisation)] of the current bundles that
    pinned it, by organisation, organisation -> list index (plans with lists; else empty)). Refused when the plan
    already has its result or no bundle pinned it."""
    from .store import open_store

    with open_store(db_path, write=False) as con:
        plan, done = _plan(con, plan_digest)
        rows = [tuple(r) for r in con.execute(
            "SELECT digest, org_id FROM bundles WHERE joint_plan = ? AND superseded_by IS NULL ORDER BY org_id",
            [plan_digest]).fetchall()]
        reporters = dict(con.execute("SELECT id, reporter_type FROM organisations").fetchall())
    if done:
        raise JointRefused(f"plan {plan_digest[:12]} already has its joint result")
    if not rows:
        raise JointRefused(f"no merged bundle carries shares for plan {plan_digest[:12]}; nothing to compute")
    org_lists = {org: plan.list_index(reporters[org]) for _, org in rows} if plan.lists else {}
    return plan, rows, org_lists


def bundle_shares(db_path: Path, digest: str) -> list[bytes]:
    """The three sealed shares (one per party) of an archived bundle."""
    from ..contract.envelope import bundle_filename, open_envelope, parse_payload, read_bundle_file
    from .store import archive_dir

    payload = parse_payload(open_envelope(read_bundle_file(archive_dir(Path(db_path)) / bundle_filename(digest))))
    return [base64.b64decode(blob) for blob in payload.joint.shares]


def compute_local(db_path: Path, plan_digest: str, party_homes: list[Path], *, timeout: float = 600.0,
                  tls: bool = True) -> JointRun:
    """Run the plan's joint computation with the three parties as local processes (127.0.0.1) and store the result.

    Each party process reads only its own home's private keys; the coordinator process passes sealed shares."""
    import time

    from ..joint.errors import JointError
    from ..joint.noise import model_of as noise_model_of
    from ..joint.party_home import load_party
    from ..joint.runner import Job, make_tls, run_local

    homes = [load_party(Path(h)) for h in party_homes]
    plan, rows, org_lists = handed_bundles(db_path, plan_digest)
    names = [p.name for p in plan.parties]
    if [h.name for h in homes] != names:
        raise JointRefused(f"the party homes must be those of the plan's parties, in order: {', '.join(names)}")
    for home, party in zip(homes, plan.parties):
        if json.loads(home.public_file.read_text(encoding="utf-8"))["encryption_key"] != party.encryption_key:
            raise JointRefused(f"party home {home.home} does not hold the key the plan names for {party.name}")
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="aggregator-joint-") as tmp:
        share_dir = Path(tmp) / "shares"
        share_dir.mkdir()
        orgs = []
        for digest, org_id in rows:
            for i, blob in enumerate(bundle_shares(db_path, digest)):
                (share_dir / f"{org_id}.{i}.share").write_bytes(blob)
            orgs.append(org_id)
        job = Job(plan.layout(org_lists), plan_digest, orgs, plan.group_scales(), str(share_dir),
                  [str(h.encryption_key) for h in homes], tls=str(make_tls(Path(tmp) / "tls")) if tls else None,
                  sign_keys=[str(h.signing_key) for h in homes], bundles=[d for d, _ in rows],
                  noise=noise_model_of(plan.version))
        try:
            result = run_local(job, timeout=timeout, workdir=Path(tmp) / "run")
        except JointError as exc:
            raise JointRefused(f"the joint computation stopped: {exc}") from None
    refunds = store_joint_result(db_path, plan_digest, result.to_json(), result.signatures, [d for d, _ in rows])
    return JointRun(plan_digest, plan.period, result.included, result.excluded, time.monotonic() - started,
                    dict(result.counts), refunds)


# ---------------------------------------------------------------- estimates from the opened counts


@dataclass(frozen=True)
class JointCell:
    """One cell of a joint release: distinct people, corrected for bucket collisions in public."""

    name: str
    group: str
    noisy_buckets: int  # opened: non-empty buckets + noise
    buckets: int
    estimate: float
    variance: float
    lower: float
    upper: float

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def linear_count(x: float, m: int) -> float:
    """Distinct people from x non-empty buckets of m (linear counting): n = ln(1 - x/m) / ln(1 - 1/m)."""
    x = min(max(x, 0.0), m - 0.5)  # noise can push x outside [0, m); the clamp keeps the logarithm finite
    return math.log1p(-x / m) / math.log1p(-1.0 / m)


def joint_cell(name: str, group: str, x: int, m: int, noise_variance: float) -> JointCell:
    """Estimate and 95% interval: the interval is the image of the interval of the non-empty bucket count (noise
    plus occupancy variance at the estimate), so it respects the non-linear correction."""
    from ..privacy.intervals import interval

    n = linear_count(x, m)
    q = math.exp(-n / m)
    occupancy = m * q * (1.0 - (1.0 + n / m) * q)  # variance of the non-empty count given n people
    se_x, low_x, high_x = interval(float(x), noise_variance + max(occupancy, 0.0))
    low, high = max(0.0, linear_count(low_x, m)), linear_count(high_x, m)
    slope = 1.0 / ((m - min(max(x, 0), m - 1)) * -math.log1p(-1.0 / m))
    return JointCell(name, group, int(x), m, n, (slope * se_x) ** 2, low, max(high, n))


def joint_estimates(db_path: Path, period: int) -> dict[str, JointCell]:
    """Every cell of the period's joint result by name ("total", "form=sexual", ...); empty without one."""
    from .store import open_store

    with open_store(db_path, write=False) as con:
        return stored_joint(con, period)[1]


def stored_joint(con, period: int) -> tuple[Any, dict[str, JointCell]]:
    """The plan of the period's stored joint result and its cells by name (see joint_estimates); (None, {}) without
    one."""
    from ..joint.noise import model_of, released_variance

    row = con.execute("SELECT plan, result FROM joint_results WHERE period = ?", [period]).fetchone()
    if row is None:
        return None, {}
    plan, _ = _plan(con, row[0])
    counts = json.loads(row[1])["counts"]
    scales = plan.group_scales()
    out = {}
    for cell in plan.document["cells"]:
        noise = released_variance(model_of(plan.version), scales[cell["group"]])  # every drawing party's share
        out[cell["name"]] = joint_cell(cell["name"], cell["group"], int(counts[cell["name"]]), int(cell["m"]), noise)
    return plan, out


def joint_tables(plan, cells: dict[str, JointCell], known: dict[tuple[str, ...], list[int]] | None = None) -> dict:
    """The joint release's published tables: its total and each planned marginal, fitted together by the consistency
    step (privacy/consistency.py: consistent_release) from the collision-corrected estimates with their variances
    (noise plus collisions), so that every marginal adds up to the one joint total; `known` (people known
    individually per cell, per table) floors the integer figures. Empty without cells.

    With linkage bounds (plan.py) each cell's distinct people lie between L - U and L, L the distinct pseudonyms and
    U the people contributed under local pseudonyms: the tables fitted from L then become L - q U (covariance
    + q^2 that of U; consistency.shifted_release), q = UNLINKED_KNOWN_ELSEWHERE, and each keeps its U (`unlinked`,
    unlinked_tables) and the table fitted from L alone (`linked`) for the bounds, which do not depend on q
    (national_joint.figures)."""
    import itertools

    from ..contract.codelists import codes
    from ..joint.plan import TOTAL, cell_name
    from ..privacy.consistency import consistent_release, shifted_release

    if plan is None or not cells:
        return {}
    measured = {}
    for dims in [(), *plan.marginals]:
        names = [cell_name(dims, key) for key in itertools.product(*(codes(d) for d in dims))] if dims else [TOTAL]
        measured[dims] = ([cells[n].estimate for n in names], [cells[n].variance for n in names])
    linked = consistent_release(measured, known)
    if not plan.unlinked_groups:
        return linked
    unlinked = unlinked_tables(plan, cells, list(measured))
    # U is measured apart from L (other cells, other noise draws), so it is subtracted after the fit of L
    tables = shifted_release(linked, unlinked, UNLINKED_KNOWN_ELSEWHERE)
    for dims, table in tables.items():
        table.unlinked, table.linked = unlinked[dims], linked[dims]
    return tables


def unlinked_tables(plan, cells: dict[str, JointCell], tables: list[tuple[str, ...]]) -> dict:
    """The estimated people contributed under a local pseudonym per cell of each table (the total () and the planned
    marginals), as consistency.ConsistentTable with the covariance of its cells. A cell's own estimate is not
    clamped at zero (linear counting is about the identity near zero), so the noise of many empty cells does not
    add up to a positive bias.

    Plans 2-4 measured the cross of the marginals' dimensions: a table's cell is the sum of the cross cells that fall
    in it, and its cells are independent. From plan 5 each marginal is measured: the tables are their weighted least
    squares fit (consistency.fitted_tables, weights 1 / cell variance), so the total draws on every marginal and
    the marginals add up to it."""
    import itertools

    from ..contract.codelists import codes
    from ..joint.plan import unlinked_cell_name
    from ..privacy.consistency import ConsistentTable, fitted_tables

    def measured(dims):
        found = [cells[unlinked_cell_name(dims, key)] for key in itertools.product(*(codes(d) for d in dims))]
        return ([c.estimate if c.noisy_buckets > 0 else float(c.noisy_buckets) for c in found],
                [c.variance for c in found])

    if plan.version >= 5:
        return fitted_tables({dims: measured(dims) for dims, _ in plan.unlinked_groups}, tables)
    out = {}
    ((udims, _),) = plan.unlinked_groups
    u, v = measured(udims)
    for dims in tables:
        index = [udims.index(d) for d in dims]
        keys = list(itertools.product(*(codes(d) for d in dims)))
        sums: dict[tuple[str, ...], list[float]] = {key: [0.0, 0.0] for key in keys}
        for ukey, cu, cv in zip(itertools.product(*(codes(d) for d in udims)), u, v):
            entry = sums[tuple(ukey[i] for i in index)]
            entry[0] += cu
            entry[1] += cv
        out[dims] = ConsistentTable(dims, keys, [sums[k][0] for k in keys], [sums[k][1] for k in keys],
                                    [round(sums[k][0]) for k in keys])
    return out
