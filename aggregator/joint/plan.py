"""The signed computation plan of one period's joint release, published by the coordinator, pinned by organisations.

A plan fixes everything public about the computation before any data is seen:
  period, joint epsilon and its split over the planned marginals (exact fractions), the deadline;
  the three computing parties: name, X25519 key (shares are encrypted to it), Ed25519 key (it co-signs results) and,
  for parties on their own machines, address (host:port) and TLS certificate, with the CA certificate (joint/tls.py;
  a plan without addresses, as every plan before them, runs only locally);
  the cells: the national total and every codelist cell of each planned marginal, each with m buckets sized from a
  public prior (BUCKET_FACTOR x the expected count), never from this year's data;
  the field: the comparison bit length for at most `max_orgs` organisations and MPyC's prime for it.
Its digest (sha256 of the canonical JSON) names it; organisations put that digest in their bundle.

Per (person, organisation) a marginal has sensitivity 1 in the opened count of non-empty buckets (removing one person
empties at most one bucket of one cell), so each marginal's group is noised with scale 1/epsilon_group by each of the
two noise-drawing parties (see joint/noise.py): no single party knows the noise.

With `lists` (reporter types grouped into at most six lists, as multiple-systems estimation needs) the plan adds one
stratum cell per stratum (minors/adults, Dutch/non-Dutch where `strata` says so; one stratum "all" otherwise) and the
computation also opens, per stratum, the 2^L overlap-pattern counts and the people known to 1, 2 and 3+
organisations. Removing one person at one organisation moves one bucket between two patterns (or two multiplicity
classes): sensitivity 2, so those groups get scale 2/epsilon_group. A person is in exactly one stratum, so the
strata's pattern groups compose in parallel and each gets the whole pattern share of epsilon. The split, in exact
fractions: half of epsilon to the pattern tables, the other half equally over the total, each marginal, the stratum
counts and the multiplicity tables; without lists, epsilon equally over the total and the marginals.

Linkage bounds (plans from plan_version 2 on). A person without a family name or a date of birth at an organisation
gets a pseudonym local to that organisation (organisation/pseudonyms.py), so the deduplicated counts above count them
once per organisation that knows them that way: the help line, for one, exports no names. The distinct people of a
cell therefore lie between (distinct pseudonyms) - (local pseudonyms) and (distinct pseudonyms). To bound them the
plan measures the people an organisation contributes under a local pseudonym apart, in "unlinked" cells. They get
UNLINKED_SHARE of the epsilon that is not the pattern tables' half, and each of the other groups outside the pattern
tables gives up that share of its own.
  plan_version 2-4: one group "unlinked", a cell per combination of the planned marginals' dimensions (the cross of
    their codelists, 25 by default); a person is in at most one of its cells: sensitivity 1. A marginal's cell sums 5
    of them and the total all 25, so the total's bounds carried 25 cells' noise.
  plan_version 5: one group per planned marginal ("unlinked:form", ...), a cell per cell of that marginal, each
    group sensitivity 1 with an equal part of the share. At two marginals a cell carries 4 times the noise variance
    of a cross cell instead of the 5 it summed, and the total, fitted from both marginals (coordinator/joint.py),
    about 10 instead of 25; with more marginals the cross grows as a product and the marginals as a sum.

Overlaps of linkable people (plans from plan_version 4). A person known at the help line (local pseudonym) and to
care coordination would be two people in the overlap tables, one on each list: the overlap that multiple-systems
estimation divides by shrinks and the estimated total grows (the demo's minor Dutch stratum: 2,403 (1,356-19,355)
against 1,194 true). So the stratum cells, and the pattern and multiplicity tables the computation builds on them,
hold only the people an organisation knows under a linkable pseudonym; a person known only without a name or date
of birth is, for the estimate, one of the unseen. Sensitivity and epsilon are unchanged.
"""

from __future__ import annotations

import base64
import datetime as dt
import itertools
import math
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

from ..errors import ConfigError, InputError, UsageError

PLAN_TYPE = "application/vnd.registration-aggregator.plan+json"
PLAN_VERSION = 5  # 2: the "unlinked" group (linkage bounds); 3: every party draws a Polya share of the noise;
# 4: the stratum cells, and the overlap tables built on them, hold only people known under a linkable pseudonym;
# 5: the unlinked people measured per planned marginal instead of over the cross of their dimensions
PLAN_VERSIONS = (1, 2, 3, 4, 5)  # read and computed; 1 has no linkage bounds; 1 and 2 draw noise in pairs
BUCKET_FACTOR = 8
MIN_BUCKETS = 64
DEFAULT_MARGINALS: tuple[tuple[str, ...], ...] = (("form",), ("age_band",))
TOTAL = "total"
MAX_ORGS = 64

# The public prior the buckets are sized from: people known to any organisation in a year and the shares of the
# release dimensions among them (docs/figures.md: the national rapporteur's registrations and estimates; shares of
# forms and age bands as published by the monitor, rounded). A poor prior costs accuracy (more collisions), never
# privacy: the bucket counts are public and fixed before the data.
PRIOR_TOTAL = 7_000
PRIOR_SHARES: dict[str, dict[str, float]] = {
    "form": {"sexual": 0.45, "labour": 0.25, "criminal": 0.2, "organ_removal": 0.01, "other_unknown": 0.09},
    "age_band": {"under_15": 0.08, "15_17": 0.17, "18_24": 0.25, "25_plus": 0.45, "unknown": 0.05},
}

# Linkage bounds (module docstring): the share of epsilon for the people contributed under a local pseudonym and the
# prior share of such contributions among the people known (chosen, from docs/figures.md: the help line's 285
# chatters are about 4% of ~7,000, plus records without a date of birth). The share is chosen: the bounds of a
# total carry the noise of the "unlinked" cells, so at an eighth that noise would widen the national interval more
# than the unlinked people themselves; a quarter halves it and costs the other groups a third more noise. The prior
# sizes their buckets, at least UNLINKED_MIN_BUCKETS: linear counting is near the identity only while the noise (sd
# about 8 per cell at epsilon 1) is small against the buckets.
UNLINKED_GROUP = "unlinked"  # the one group of plans 2-4 (the cross); from plan 5 the prefix of one group per marginal
UNLINKED_PREFIX = "unlinked:"
UNLINKED_SHARE = Fraction(1, 4)
PRIOR_UNLINKED_SHARE = 0.06
UNLINKED_MIN_BUCKETS = 512

# Lists for multiple-systems estimation: reporter types grouped as the Dutch studies did (docs/figures.md, F10: police,
# military police, labour inspectorate, regional care coordinators, residential care and shelters, others), or fewer
# lists, which the estimate needs when cells are sparse.
LIST_PRESETS: dict[str, tuple[tuple[str, tuple[str, ...]], ...]] = {
    "dutch-studies": (
        ("police", ("police",)),
        ("military_police", ("military_police",)),
        ("labour_inspectorate", ("labour_inspectorate",)),
        ("care_coordination", ("care_coordination",)),
        ("shelters", ("shelter",)),
        ("others", ("help_line", "municipality", "other")),
    ),
    "four": (
        ("police", ("police", "military_police")),
        ("inspectorate", ("labour_inspectorate",)),
        ("care", ("care_coordination", "shelter")),
        ("others", ("help_line", "municipality", "other")),
    ),
}
# Strata: a release dimension folded into two public groups; an unknown value goes with the larger group.
STRATIFIERS: dict[str, tuple[str, dict[str, str]]] = {
    "age": ("age_band", {"under_15": "minor", "15_17": "minor", "18_24": "adult", "25_plus": "adult",
                         "unknown": "adult"}),
    "origin": ("nationality_group", {"NL": "dutch", "EU": "non_dutch", "non_EU": "non_dutch",
                                     "unknown": "non_dutch"}),
}
# Where a code the grouping does not name goes: the larger group (as "unknown" does).
STRATUM_FALLBACK = {name: max(set(groups.values()), key=list(groups.values()).count)
                    for name, (_, groups) in STRATIFIERS.items()}
# Prior shares of the strata among the people known in a year (chosen, in the direction of F3/F4 in docs/figures.md:
# a quarter minors, Dutch victims somewhat fewer than half); they only size the buckets.
PRIOR_STRATA: dict[str, dict[str, float]] = {
    "age": {"minor": 0.25, "adult": 0.75},
    "origin": {"dutch": 0.4, "non_dutch": 0.6},
}
STRATA_GROUP = "strata"


@dataclass(frozen=True)
class PartyRef:
    """A computing party as the plan names it: who, and the two public keys its bundle shares and results use; for
    parties on their own machines also where they listen (host:port) and their TLS certificate (joint/tls.py).
    `tls_request` comes from the party's public file and only ever goes into the certificate, not the plan."""

    name: str
    encryption_key: str  # base64 raw X25519
    signing_key: str  # base64 raw Ed25519
    address: str | None = None  # host:port, in plans made for parties on their own machines
    certificate: str | None = None  # PEM, issued by plan create (in the plan)
    tls_request: str | None = None  # PEM certificate signing request (party.json only)


@dataclass(frozen=True)
class Plan:
    document: dict[str, Any]  # the signed content, canonical JSON
    digest: str

    @property
    def period(self) -> int:
        return int(self.document["period"])

    @property
    def epsilon(self) -> Fraction:
        return Fraction(self.document["epsilon"])

    @property
    def deadline(self) -> dt.datetime:
        from ..util.clock import parse_iso

        return parse_iso(self.document["deadline"])

    @property
    def parties(self) -> list[PartyRef]:
        return [PartyRef(**p) for p in self.document["parties"]]

    @property
    def networked(self) -> bool:
        """Does the plan name each party's address and TLS certificate (parties on their own machines)? Plans
        made before addresses existed, or without them, can only run locally (`aggregator compute --local`)."""
        return "tls_ca" in self.document and all(p.address and p.certificate for p in self.parties)

    @property
    def tls_ca(self) -> str | None:
        return self.document.get("tls_ca")

    @property
    def marginals(self) -> list[tuple[str, ...]]:
        return [tuple(m) for m in self.document["marginals"]]

    @property
    def lists(self) -> list[tuple[str, tuple[str, ...]]]:
        """The plan's lists in order: (name, reporter types); empty when the plan opens no overlaps."""
        return [(entry["name"], tuple(entry["reporter_types"])) for entry in self.document.get("lists", [])]

    @property
    def strata(self) -> list[str]:
        return list(self.document.get("strata", []))

    @property
    def version(self) -> int:
        return int(self.document.get("plan_version", 1))

    @property
    def linkable_overlaps(self) -> bool:
        """Whether the stratum cells hold only people known under a linkable pseudonym (module docstring)."""
        return self.version >= 4

    @property
    def unlinked_groups(self) -> list[tuple[tuple[str, ...], str]]:
        """(dimensions, group) of each measurement of the people contributed under a local pseudonym (module
        docstring: linkage bounds): the cross of the marginals' dimensions in plans 2-4, each planned marginal from
        plan 5; empty in plans without linkage bounds (plan_version 1), whose joint figures count a person known
        under local pseudonyms at k organisations k times, unbounded."""
        if self.version >= 5:
            return [(dims, unlinked_group_name(dims)) for dims in self.marginals or [()]]
        dims = self.document.get("unlinked_dims")
        return [] if dims is None else [(tuple(dims), UNLINKED_GROUP)]

    def list_index(self, reporter_type: str) -> int:
        """Which list an organisation of this reporter type is on."""
        for k, (_, types) in enumerate(self.lists):
            if reporter_type in types:
                return k
        raise UsageError(f"reporter type {reporter_type!r} is on none of the plan's lists", "reporter_type")

    def layout(self, org_lists: dict[str, int] | None = None):
        """The engine's public layout of the flat vector every organisation shares; `org_lists` (organisation ->
        list index) is needed only to run a plan with lists, not to share into it."""
        from .layout import Cell, Layout

        cells = tuple(Cell(c["name"], int(c["m"]), c["group"], bool(c.get("stratum", False)))
                      for c in self.document["cells"])
        return Layout(cells, int(self.document["max_orgs"]), len(self.lists), dict(org_lists or {}))

    def group_epsilons(self) -> dict[str, Fraction]:
        return {group: Fraction(eps) for group, eps in self.document["epsilon_split"].items()}

    def group_scales(self) -> dict[str, float]:
        """Noise scale per released group: the smallest float scale with sensitivity/scale <= epsilon (sensitivity
        2 for pattern and multiplicity tables, 1 for counts; see the module docstring)."""
        from .layout import SUFFIXES

        scales = {}
        for group, eps in self.group_epsilons().items():
            sensitivity = 2 if group.endswith(SUFFIXES) else 1
            scale = float(sensitivity / eps)
            while Fraction(sensitivity) / Fraction(scale) > eps:
                scale = math.nextafter(scale, math.inf)
            scales[group] = scale
        return scales

    def cells_of(self, group: str) -> list[dict[str, Any]]:
        return [c for c in self.document["cells"] if c["group"] == group]


def cell_name(dims: tuple[str, ...], key: tuple[str, ...]) -> str:
    return ",".join(f"{d}={k}" for d, k in zip(dims, key))


def group_name(dims: tuple[str, ...]) -> str:
    return ",".join(dims) if dims else TOTAL


def unlinked_cell_name(dims: tuple[str, ...], key: tuple[str, ...]) -> str:
    return UNLINKED_PREFIX + (cell_name(dims, key) if dims else TOTAL)


def unlinked_group_name(dims: tuple[str, ...]) -> str:
    return UNLINKED_PREFIX + group_name(dims)


def _buckets(expected: float) -> int:
    return max(MIN_BUCKETS, int(math.ceil(BUCKET_FACTOR * expected)))


def stratum_names(strata: tuple[str, ...]) -> list[tuple[str, float]]:
    """Every stratum cell name ("stratum=minor/dutch", or "stratum=all" without strata) with its prior share."""
    if not strata:
        return [("stratum=all", 1.0)]
    out = []
    for key in itertools.product(*(list(PRIOR_STRATA[s]) for s in strata)):
        share = math.prod(PRIOR_STRATA[s][k] for s, k in zip(strata, key))
        out.append(("stratum=" + "/".join(key), share))
    return out


def stratum_of(strata: tuple[str, ...], codes: dict[str, str]) -> str:
    """The stratum cell name of a person with these release codes (dimension -> code), as contribution.py's SQL
    computes it (an unexpected code goes with the larger group)."""
    if not strata:
        return "stratum=all"
    parts = [STRATIFIERS[name][1].get(codes[STRATIFIERS[name][0]], STRATUM_FALLBACK[name]) for name in strata]
    return "stratum=" + "/".join(parts)


def _prior_share(dims: tuple[str, ...], key: tuple[str, ...]) -> float:
    from ..contract.codelists import codes

    share = 1.0
    for dim, code in zip(dims, key):
        shares = PRIOR_SHARES.get(dim)
        share *= shares[code] if shares and code in shares else 1.0 / len(codes(dim))
    return share


def build_plan(
    period: int,
    epsilon: Fraction,
    parties: list[PartyRef],
    *,
    deadline: dt.datetime,
    marginals: tuple[tuple[str, ...], ...] = DEFAULT_MARGINALS,
    prior_total: int = PRIOR_TOTAL,
    max_orgs: int = MAX_ORGS,
    lists: str | None = None,
    strata: tuple[str, ...] = (),
) -> dict[str, Any]:
    """The plan document (unsigned): cells and buckets from the public prior, epsilon split exactly (see the module
    docstring); `lists` names a LIST_PRESETS grouping, `strata` names STRATIFIERS (only with lists)."""
    from ..contract.codelists import DIMENSIONS, codes
    from ..privacy.epsilon import exact_text, parse_epsilon
    from ..util.clock import iso
    from .field import bit_length_for, prime_for
    from .layout import MULTIPLICITY_SUFFIX, PATTERNS_SUFFIX

    epsilon = parse_epsilon(epsilon)
    if len(parties) != 3:
        raise UsageError("a joint release needs exactly three computing parties", "party")
    if len({p.encryption_key for p in parties}) != 3 or len({p.signing_key for p in parties}) != 3:
        raise UsageError("the three computing parties must have different keys", "party")
    tls = _party_tls(parties, deadline)
    for dims in marginals:
        if not dims or any(d not in DIMENSIONS for d in dims) or len(set(dims)) != len(dims):
            raise UsageError(f"unknown or repeated dimension in planned marginal {','.join(dims)}", "marginal")
    strata = tuple(strata)
    if lists is not None and lists not in LIST_PRESETS:
        raise UsageError(f"list grouping must be one of: {', '.join(LIST_PRESETS)}", "lists")
    if strata and lists is None:
        raise UsageError("strata split the overlap tables, so they need --lists", "strata")
    if any(s not in STRATIFIERS for s in strata) or len(set(strata)) != len(strata):
        raise UsageError(f"strata must be among: {', '.join(STRATIFIERS)}, each once", "strata")
    groups = [()] + [tuple(m) for m in marginals]
    cells = [{"name": TOTAL, "group": TOTAL, "m": _buckets(prior_total)}]
    for dims in groups[1:]:
        for key in itertools.product(*(codes(d) for d in dims)):
            cells.append({"name": cell_name(dims, key), "group": group_name(dims),
                          "m": _buckets(prior_total * _prior_share(dims, key))})
    names = [group_name(g) for g in groups]
    if lists is None:
        split = {name: epsilon / len(groups) for name in names}
    else:
        strata_cells = stratum_names(strata)
        for name, share in strata_cells:
            cells.append({"name": name, "group": STRATA_GROUP, "m": _buckets(prior_total * share), "stratum": True})
        rest = epsilon / 2 / (len(groups) + 2)  # total, marginals, stratum counts, multiplicity tables
        split = {name: rest for name in names + [STRATA_GROUP]}
        for name, _ in strata_cells:
            split[name + PATTERNS_SUFFIX] = epsilon / 2
            split[name + MULTIPLICITY_SUFFIX] = rest
    counted = [g for g in split if not g.endswith(PATTERNS_SUFFIX)]  # the pattern tables keep their half
    unlinked_epsilon = (epsilon - (epsilon / 2 if lists is not None else 0)) * UNLINKED_SHARE
    measured = groups[1:] or [()]  # linkage bounds: the people contributed under a local pseudonym, per marginal
    for dims in measured:
        split[unlinked_group_name(dims)] = unlinked_epsilon / len(measured)
        for key in itertools.product(*(codes(d) for d in dims)):
            expected = prior_total * PRIOR_UNLINKED_SHARE * _prior_share(dims, key)
            cells.append({"name": unlinked_cell_name(dims, key), "group": unlinked_group_name(dims),
                          "m": max(UNLINKED_MIN_BUCKETS, _buckets(expected))})
    split.update({g: split[g] * (1 - UNLINKED_SHARE) for g in counted})
    bits = bit_length_for(max_orgs)
    document = {
        "plan_version": PLAN_VERSION,
        "period": int(period),
        "epsilon": exact_text(epsilon),
        "epsilon_split": {group: exact_text(part) for group, part in split.items()},
        "deadline": iso(deadline),
        "parties": [{"name": p.name, "encryption_key": p.encryption_key, "signing_key": p.signing_key}
                    for p in parties],
        "marginals": [list(m) for m in marginals],
        "prior_total": prior_total,
        "bucket_factor": BUCKET_FACTOR,
        "cells": cells,
        "max_orgs": max_orgs,
        "field_bits": bits,
        "prime": str(prime_for(bits)),
    }
    if tls is not None:
        ca, certificates, addresses = tls
        document["tls_ca"] = ca
        for entry, address, certificate in zip(document["parties"], addresses, certificates):
            entry["address"], entry["certificate"] = address, certificate
    if lists is not None:
        document["lists"] = [{"name": name, "reporter_types": list(types)} for name, types in LIST_PRESETS[lists]]
        document["list_grouping"] = lists
        document["strata"] = list(strata)
    return document


def _party_tls(parties: list[PartyRef], deadline: dt.datetime) -> tuple[str, list[str], list[str]] | None:
    """With every party's address: (CA certificate, one TLS certificate per party issued from their requests, the
    addresses in one spelling);
    None without addresses (a plan for the local run only). Some addresses but not all is a usage error."""
    from .tls import CERT_DAYS_AFTER_DEADLINE, format_address, issue_certificates, parse_address

    with_address = [p for p in parties if p.address]
    if not with_address:
        return None
    if len(with_address) != len(parties):
        missing = ", ".join(p.name for p in parties if not p.address)
        raise UsageError(f"give every computing party an address (host:port) or none; missing: {missing}", "party")
    addresses = [format_address(*parse_address(p.address, "party")) for p in parties]
    if len(set(addresses)) != len(addresses):
        raise UsageError("two computing parties have the same address", "party")
    lacking = [p.name for p in parties if not p.tls_request]
    if lacking:
        raise ConfigError(f"the public file of {', '.join(lacking)} has no TLS certificate request (made by an older "
                          "version): make the party's home again with `aggregator party init`")
    utc = deadline.replace(tzinfo=dt.timezone.utc) if deadline.tzinfo is None else deadline.astimezone(dt.timezone.utc)
    ca, certificates = issue_certificates([(p.name, str(p.tls_request)) for p in parties],
                                          utc + dt.timedelta(days=CERT_DAYS_AFTER_DEADLINE))
    return ca, certificates, addresses


def sign_plan(document: dict[str, Any], private_key) -> bytes:
    """The plan file: a signed envelope (the bundle format) around the canonical plan document."""
    from ..contract.envelope import canonical_json, sign_payload

    return sign_payload(canonical_json(document), private_key, payload_type=PLAN_TYPE)


def read_plan(data: bytes, coordinator_key: bytes | None = None) -> Plan:
    """Open a plan file; with `coordinator_key` (raw Ed25519) the signature must verify with it."""
    from ..contract.envelope import open_envelope, sha256_hex, strict_json_loads, verify_envelope
    from ..errors import BundleRejected

    try:
        opened = open_envelope(data, payload_type=PLAN_TYPE)
        if coordinator_key is not None:
            verify_envelope(opened, coordinator_key)
        document = strict_json_loads(opened.payload_bytes, "plan")
    except BundleRejected as exc:
        raise InputError(f"not a usable computation plan: {exc.message}") from None
    if not isinstance(document, dict) or document.get("plan_version") not in PLAN_VERSIONS:
        raise InputError("not a computation plan this aggregator knows (plan_version)")
    return Plan(document, sha256_hex(opened.payload_bytes))


def read_plan_file(path: Path, coordinator_key: bytes | None = None) -> Plan:
    try:
        data = Path(path).read_bytes()
    except OSError:
        raise InputError(f"cannot read the plan file {Path(path).name}") from None
    return read_plan(data, coordinator_key)


def party_ref_from_file(path: Path, address: str | None = None) -> PartyRef:
    """A party's public file (written by `aggregator party init`): name, its two public keys, its TLS certificate
    request and address if it has them; `address` (host:port) overrides the file's."""
    import json

    try:
        raw = json.loads(Path(path).read_text(encoding="utf-8"))
        request = raw.get("tls_request")
        ref = PartyRef(str(raw["name"]), str(raw["encryption_key"]), str(raw["signing_key"]),
                       address=address or (str(raw["address"]) if raw.get("address") else None),
                       tls_request=str(request) if request else None)
        for key in (ref.encryption_key, ref.signing_key):
            if len(base64.b64decode(key, validate=True)) != 32:
                raise ValueError
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        raise ConfigError(f"{Path(path).name} is not a computing party's public file (name, encryption_key, "
                          "signing_key)") from None
    return ref


def party_argument(text: str) -> PartyRef:
    """`--party FILE` or `--party FILE@HOST:PORT` (the address overrides the one in the file)."""
    from .tls import parse_address

    path, at, address = str(text).rpartition("@")
    if at and address and not Path(text).exists():
        parse_address(address, "party")
        return party_ref_from_file(Path(path), address)
    return party_ref_from_file(Path(text))
