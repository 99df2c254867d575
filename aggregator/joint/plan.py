"""The signed computation plan of one period's joint release, published by the coordinator, pinned by organisations.

A plan fixes everything public about the computation before any data is seen:
  period, joint epsilon and its split over the planned marginals (exact fractions), the deadline;
  the three computing parties: name, X25519 key (shares are encrypted to it), Ed25519 key (it co-signs results);
  the cells: the national total and every codelist cell of each planned marginal, each with m buckets sized from a
  public prior (BUCKET_FACTOR x the expected count), never from this year's data;
  the field: the comparison bit length for at most `max_orgs` organisations and MPyC's prime for it.
Its digest (sha256 of the canonical JSON) names it; organisations put that digest in their bundle.

Per (person, organisation) a marginal has sensitivity 1 in the opened count of non-empty buckets (removing one person
empties at most one bucket of one cell), so each marginal's group is noised with scale 1/epsilon_group by each of the
two noise-drawing parties (see joint/noise.py): no single party knows the noise.
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
PLAN_VERSION = 1
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


@dataclass(frozen=True)
class PartyRef:
    """A computing party as the plan names it: who, and the two public keys its bundle shares and results use."""

    name: str
    encryption_key: str  # base64 raw X25519
    signing_key: str  # base64 raw Ed25519


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
    def marginals(self) -> list[tuple[str, ...]]:
        return [tuple(m) for m in self.document["marginals"]]

    def layout(self):
        """The engine's public layout of the flat vector every organisation shares."""
        from .layout import Cell, Layout

        cells = tuple(Cell(c["name"], int(c["m"]), c["group"]) for c in self.document["cells"])
        return Layout(cells, int(self.document["max_orgs"]))

    def group_epsilons(self) -> dict[str, Fraction]:
        return {group: Fraction(eps) for group, eps in self.document["epsilon_split"].items()}

    def group_scales(self) -> dict[str, float]:
        """Noise scale per released group (sensitivity 1): the smallest float scale with 1/scale <= epsilon."""
        scales = {}
        for group, eps in self.group_epsilons().items():
            scale = float(1 / eps)
            while Fraction(1) / Fraction(scale) > eps:
                scale = math.nextafter(scale, math.inf)
            scales[group] = scale
        return scales

    def cells_of(self, group: str) -> list[dict[str, Any]]:
        return [c for c in self.document["cells"] if c["group"] == group]


def cell_name(dims: tuple[str, ...], key: tuple[str, ...]) -> str:
    return ",".join(f"{d}={k}" for d, k in zip(dims, key))


def group_name(dims: tuple[str, ...]) -> str:
    return ",".join(dims) if dims else TOTAL


def _buckets(expected: float) -> int:
    return max(MIN_BUCKETS, int(math.ceil(BUCKET_FACTOR * expected)))


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
) -> dict[str, Any]:
    """The plan document (unsigned): cells and buckets from the public prior, epsilon split equally and exactly."""
    from ..contract.codelists import DIMENSIONS, codes
    from ..privacy.epsilon import exact_text, parse_epsilon
    from ..util.clock import iso
    from .field import bit_length_for, prime_for

    epsilon = parse_epsilon(epsilon)
    if len(parties) != 3:
        raise UsageError("a joint release needs exactly three computing parties", "party")
    if len({p.encryption_key for p in parties}) != 3 or len({p.signing_key for p in parties}) != 3:
        raise UsageError("the three computing parties must have different keys", "party")
    for dims in marginals:
        if not dims or any(d not in DIMENSIONS for d in dims) or len(set(dims)) != len(dims):
            raise UsageError(f"unknown or repeated dimension in planned marginal {','.join(dims)}", "marginal")
    groups = [()] + [tuple(m) for m in marginals]
    cells = [{"name": TOTAL, "group": TOTAL, "m": _buckets(prior_total)}]
    for dims in groups[1:]:
        for key in itertools.product(*(codes(d) for d in dims)):
            cells.append({"name": cell_name(dims, key), "group": group_name(dims),
                          "m": _buckets(prior_total * _prior_share(dims, key))})
    part = epsilon / len(groups)
    bits = bit_length_for(max_orgs)
    return {
        "plan_version": PLAN_VERSION,
        "period": int(period),
        "epsilon": exact_text(epsilon),
        "epsilon_split": {group_name(g): exact_text(part) for g in groups},
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
    if not isinstance(document, dict) or document.get("plan_version") != PLAN_VERSION:
        raise InputError("not a computation plan this aggregator knows (plan_version)")
    return Plan(document, sha256_hex(opened.payload_bytes))


def read_plan_file(path: Path, coordinator_key: bytes | None = None) -> Plan:
    try:
        data = Path(path).read_bytes()
    except OSError:
        raise InputError(f"cannot read the plan file {Path(path).name}") from None
    return read_plan(data, coordinator_key)


def party_ref_from_file(path: Path) -> PartyRef:
    """A party's public file (written by `aggregator party init`): name and its two public keys."""
    import json

    try:
        raw = json.loads(Path(path).read_text(encoding="utf-8"))
        ref = PartyRef(str(raw["name"]), str(raw["encryption_key"]), str(raw["signing_key"]))
        for key in (ref.encryption_key, ref.signing_key):
            if len(base64.b64decode(key, validate=True)) != 32:
                raise ValueError
    except (OSError, ValueError, KeyError, TypeError):
        raise ConfigError(f"{Path(path).name} is not a computing party's public file (name, encryption_key, "
                          "signing_key)") from None
    return ref
