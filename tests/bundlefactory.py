"""Build signed test bundles directly from schema.Payload, without the organisation side.

A `TestOrg` holds a fresh Ed25519 key pair; `make_payload` builds a valid Payload; `sign` turns a payload (model or
plain dict, so tests can break it on purpose) into envelope bytes; `write` puts the bytes in a file.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import itertools
import json
import math
import subprocess
import sys
import textwrap
from contextlib import contextmanager
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any, Iterable, Iterator

from cryptography.hazmat.primitives.serialization import load_pem_private_key

from aggregator.contract.envelope import canonical_json, sign_payload
from aggregator.contract.keys import generate_keypair, key_id, public_key_text
from aggregator.contract.codelists import codes
from aggregator.contract.schema import Cell, Marginal, OrgRef, Payload, Record, Release, Withdrawal

UTC = dt.timezone.utc
NOW = dt.datetime.now(UTC).replace(microsecond=0)


@dataclass
class TestOrg:
    __test__ = False  # not a pytest class

    id: str
    kind: str
    reporter_type: str
    private_key: Any
    raw_public: bytes

    @property
    def keyid(self) -> str:
        return key_id(self.raw_public)

    def public_key_file(self, folder: Path) -> Path:
        path = Path(folder) / f"{self.id}-{self.keyid}.pub"
        path.write_text(public_key_text(self.raw_public), encoding="ascii")
        return path

    def rotated(self) -> "TestOrg":
        """The same organisation with a new key pair."""
        pem, raw = generate_keypair()
        return TestOrg(self.id, self.kind, self.reporter_type, load_pem_private_key(pem, password=None), raw)


def new_org(org_id: str, kind: str = "non_investigative", reporter_type: str | None = None) -> TestOrg:
    if reporter_type is None:
        reporter_type = "police" if kind == "investigative" else "shelter"
    pem, raw = generate_keypair()
    return TestOrg(org_id, kind, reporter_type, load_pem_private_key(pem, password=None), raw)


def pseudonym(seed: object) -> str:
    return hashlib.sha256(f"person-{seed}".encode()).hexdigest()


def record(
    seed: object,
    *,
    basis: str = "consent",
    form: str = "sexual",
    age_band: str = "18_24",
    gender: str = "female",
    nationality_group: str = "NL",
    province: str = "NL-ZH",
) -> Record:
    return Record(
        pseudonym=pseudonym(seed), basis=basis, form=form, age_band=age_band, gender=gender,
        nationality_group=nationality_group, province=province,
    )


def dlap_variance(scale: float) -> float:
    a = math.exp(-1.0 / scale)
    return 2.0 * a / (1.0 - a) ** 2


def marginal(dims: list[str], epsilon: str, counts: dict[tuple[str, ...], int] | None = None, fill: int = 0) -> Marginal:
    """A noisy marginal over every codelist cell of `dims`; cells not in `counts` get `fill`."""
    counts = counts or {}
    scale = float(1 / Fraction(epsilon))
    variance = dlap_variance(scale)
    cells = [
        Cell(key=list(key), count=counts.get(key, fill))
        for key in itertools.product(*(codes(d) for d in dims))
    ]
    return Marginal(
        dimensions=dims, epsilon=epsilon, scale=scale, variance=variance,
        expected_error_95=1.96 * math.sqrt(variance), cells=cells,
    )


def release(*marginals: Marginal, epsilon: str | None = None) -> Release:
    total = sum((Fraction(m.epsilon) for m in marginals), Fraction(0))
    return Release(
        privacy_unit="one person at one organisation in one reporting period",
        library="test",
        epsilon=epsilon if epsilon is not None else str(total),
        marginals=list(marginals),
    )


def make_payload(
    org: TestOrg,
    *,
    period: int = 2025,
    sequence: int = 1,
    records: Iterable[Record] = (),
    withdrawals: Iterable[tuple] = (),  # (pseudonym, period) or (pseudonym, period, sequence)
    marginals: Iterable[Marginal] = (),
    created_at: dt.datetime | None = None,
    expires_at: dt.datetime | None = None,
    key_id: str | None = None,
) -> Payload:
    created = created_at or NOW - dt.timedelta(minutes=5)
    ms = list(marginals)
    return Payload(
        organisation=OrgRef(id=org.id, kind=org.kind, reporter_type=org.reporter_type),
        key_id=key_id or org.keyid,
        period=period,
        sequence=sequence,
        created_at=created,
        expires_at=expires_at or created + dt.timedelta(days=30),
        records=list(records),
        withdrawals=[Withdrawal(pseudonym=w[0], period=w[1], **({"sequence": w[2]} if len(w) > 2 else {}))
                     for w in withdrawals],
        release=release(*ms) if ms else None,
    )


def payload_bytes(payload: Payload | dict) -> bytes:
    data = payload.model_dump(mode="json") if isinstance(payload, Payload) else payload
    return canonical_json(data)


def sign(org: TestOrg, payload: Payload | dict, *, keyid: str | None = None) -> bytes:
    """Envelope bytes; `keyid` overrides the envelope's key id (to sign with one key and claim another)."""
    data = sign_payload(payload_bytes(payload), org.private_key)
    if keyid is None:
        return data
    envelope = json.loads(data)
    envelope["signatures"][0]["keyid"] = keyid
    return canonical_json(envelope)


def edit_payload(envelope_bytes: bytes, change) -> bytes:
    """Change the payload inside a signed envelope without re-signing (a tampered bundle)."""
    envelope = json.loads(envelope_bytes)
    payload = json.loads(base64.b64decode(envelope["payload"]))
    change(payload)
    envelope["payload"] = base64.b64encode(canonical_json(payload)).decode("ascii")
    return canonical_json(envelope)


def write(folder: Path, data: bytes, name: str | None = None) -> Path:
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / (name or f"{hashlib.sha256(data).hexdigest()[:16]}.bundle.json")
    path.write_bytes(data)
    return path


def bundle_file(folder: Path, org: TestOrg, name: str | None = None, **payload_args: Any) -> Path:
    """make_payload + sign + write in one call."""
    return write(folder, sign(org, make_payload(org, **payload_args)), name)


@contextmanager
def store_held(db: Path) -> Iterator[None]:
    """Another process holds the coordinator's DuckDB file open (writer lock) until the block ends."""
    holder = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(f"""
            import duckdb, sys
            con = duckdb.connect({str(db)!r})
            print("ready", flush=True)
            sys.stdin.read()
        """)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "ready"
        yield
    finally:
        assert holder.stdin is not None and holder.stdout is not None
        holder.stdin.close()
        holder.wait(timeout=30)
        holder.stdout.close()


def register(db: Path, *orgs: TestOrg, cap: str = "1") -> None:
    """Register test organisations with their first key in a coordinator store."""
    from aggregator.coordinator.registry import register_org

    for org in orgs:
        register_org(db, org.id, kind=org.kind, reporter_type=org.reporter_type, public_key=org.raw_public, cap=cap)
