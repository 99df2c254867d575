"""What a bundle carries, for the data steward before it leaves the organisation.

`explain_bundle` opens the envelope, parses the payload with the same strict rules the coordinator uses, and lists
exactly what is in it: organisation, period, sequence, the fields each record carries (never their values), how
many records per lawful basis, each noisy table with its epsilon, noise scale and expected 95% error, the number
of withdrawals, the total epsilon, and the signing key id with whether the signature verifies with the
organisation's own public key. Nothing else is read or shown.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import asdict, dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

from ..errors import BundleRejected


@dataclass
class Explanation:
    file: str
    bytes: int
    digest: str
    organisation: dict[str, str]
    period: int
    sequence: int
    created_at: str
    expires_at: str
    schema_version: int
    codelist_version: int
    payload_fields: list[str]
    record_fields: list[str]
    records_total: int
    records_by_basis: dict[str, int]
    withdrawals: int
    marginals: list[dict[str, Any]]
    epsilon: str | None
    mechanism: str | None
    library: str | None
    privacy_unit: str | None
    key_id: str
    signature_verified: bool | None  # None: no public key to check with
    public_key_source: str | None
    warnings: list[str] = field(default_factory=list)
    joint: dict[str, Any] | None = None  # plan digest, joint epsilon, bytes of each party's encrypted share

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _public_key(public_key: Path | None, home: Path | None) -> tuple[bytes | None, str | None]:
    """The raw key to verify with and where it came from; the organisation home's org.pub by default."""
    from ..contract.keys import read_public_key_file
    from .home import resolve_home

    path = public_key if public_key is not None else resolve_home(home) / "org.pub"
    if public_key is None and not path.is_file():
        return None, None
    return read_public_key_file(path), str(path)


def explain_bundle(path: Path, *, public_key: Path | None = None, home: Path | None = None,
                   now: dt.datetime | None = None) -> Explanation:
    """Explain one bundle file; raises BundleRejected when it is not a well-formed bundle."""
    from ..contract.keys import key_id
    from ..contract.envelope import open_envelope, parse_payload, read_bundle_file, strict_json_loads, verify_envelope
    from ..contract.schema import Record

    path = Path(path)
    data = read_bundle_file(path)
    opened = open_envelope(data)
    payload = parse_payload(opened)
    raw = strict_json_loads(opened.payload_bytes, "bundle payload")
    warnings: list[str] = []

    raw_key, source = _public_key(public_key, home)
    verified: bool | None = None
    if raw_key is not None:
        try:
            verify_envelope(opened, raw_key)
            verified = True
        except BundleRejected:
            verified = False
            warnings.append("the signature does not verify with this public key: the coordinator will refuse the bundle"
                            if key_id(raw_key) == opened.keyid else
                            f"the bundle was signed with key {opened.keyid}, not with this public key ({key_id(raw_key)})")
    if opened.keyid != payload.key_id:
        warnings.append(f"the envelope names key {opened.keyid} but the payload names key {payload.key_id}")

    by_basis = {"statutory": 0, "consent": 0}
    for record in payload.records:
        by_basis[record.basis] += 1

    marginals = []
    release = payload.release
    if release is not None:
        for m in release.marginals:
            marginals.append({
                "dimensions": list(m.dimensions),
                "cells": len(m.cells),
                "epsilon": m.epsilon,
                "scale": m.scale,
                "variance": m.variance,
                "expected_error_95": m.expected_error_95,
                "sensitivity": m.sensitivity,
            })
        parts = sum((Fraction(m.epsilon) for m in release.marginals), Fraction(0))
        if parts != Fraction(release.epsilon):
            warnings.append(f"the noisy tables spend {parts} in total, but the release declares epsilon {release.epsilon}")
        for m in release.marginals:
            if not math.isclose(m.scale, float(1 / Fraction(m.epsilon)), rel_tol=1e-9):
                warnings.append(f"the table {' x '.join(m.dimensions)} has a noise scale that does not match its epsilon")

    current = now or dt.datetime.now(dt.timezone.utc)
    if payload.expires_at <= current:
        warnings.append("the bundle has expired: the coordinator will refuse it; submit again")

    return Explanation(
        file=path.name,
        bytes=len(data),
        digest=opened.digest,
        organisation={
            "id": payload.organisation.id,
            "kind": payload.organisation.kind.value,
            "reporter_type": payload.organisation.reporter_type.value,
        },
        period=payload.period,
        sequence=payload.sequence,
        created_at=payload.created_at.isoformat(),
        expires_at=payload.expires_at.isoformat(),
        schema_version=payload.schema_version,
        codelist_version=payload.codelist_version,
        payload_fields=list(raw),
        record_fields=list(Record.model_fields),
        records_total=len(payload.records),
        records_by_basis=by_basis,
        withdrawals=len(payload.withdrawals),
        marginals=marginals,
        epsilon=release.epsilon if release is not None else None,
        mechanism=release.mechanism if release is not None else None,
        library=release.library if release is not None else None,
        privacy_unit=release.privacy_unit if release is not None else None,
        key_id=opened.keyid,
        signature_verified=verified,
        public_key_source=source,
        warnings=warnings,
        joint=None if payload.joint is None else {
            "plan": payload.joint.plan, "epsilon": payload.joint.epsilon,
            "share_bytes": [len(s) * 3 // 4 for s in payload.joint.shares],
        },
    )
