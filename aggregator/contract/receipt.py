"""Receipts: the coordinator's signed word that it accepted a bundle at a ledger position under a chain head.

A receipt is a signed envelope (the bundle format, its own payload type) around canonical JSON:

  receipt_version   1
  store             hash of the store's first ledger entry (which store's ledger this is about)
  digest            sha256 of the accepted bundle file
  org, period, sequence
  index, entry_hash the bundle's accept entry: its ledger index and its hash
  head_index, head_hash
                    the ledger head when the receipt was signed (index and hash of the last entry)
  issued_at         when the receipt was signed

Like a signed tree head in certificate transparency, a receipt pins a prefix of the chain: the entry at
`head_index` of today's ledger must still have `head_hash`, and since every hash covers the previous one, every
entry up to it (the receipt's own accept entry among them) must be unchanged. The organisation keeps its receipts
next to its kept bundles; an auditor checks them with `aggregator audit --receipts`.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ..errors import InputError, ReceiptRefused

RECEIPT_TYPE = "application/vnd.registration-aggregator.receipt+json"
RECEIPT_VERSION = 1
RECEIPT_SUFFIX = ".receipt.json"
MAX_RECEIPT_BYTES = 64 * 1024
_HEX64 = re.compile(r"[0-9a-f]{64}")


def receipt_filename(digest: str) -> str:
    return f"{digest}{RECEIPT_SUFFIX}"


@dataclass(frozen=True)
class Receipt:
    store: str
    digest: str
    org: str
    period: int
    sequence: int
    index: int
    entry_hash: str
    head_index: int
    head_hash: str
    issued_at: str
    keyid: str = ""

    def document(self) -> dict[str, Any]:
        out = asdict(self)
        del out["keyid"]
        return {"receipt_version": RECEIPT_VERSION, **out}

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def sign_receipt(receipt: Receipt, private_key) -> bytes:
    """The receipt file: a signed envelope around the canonical receipt document."""
    from .envelope import canonical_json, sign_payload

    return sign_payload(canonical_json(receipt.document()), private_key, payload_type=RECEIPT_TYPE)


def read_receipt(data: bytes, coordinator_key: bytes, name: str = "receipt") -> Receipt:
    """Open a receipt file and verify it with the coordinator's raw Ed25519 public key; ReceiptRefused if it is not
    a well-formed receipt signed by that key."""
    from ..errors import BundleRejected
    from .envelope import open_envelope, strict_json_loads, verify_envelope
    from .keys import key_id

    try:
        opened = open_envelope(data, max_bytes=MAX_RECEIPT_BYTES, payload_type=RECEIPT_TYPE)
    except BundleRejected as exc:
        raise ReceiptRefused(f"{name} is not a receipt ({exc.reason})") from None
    try:
        verify_envelope(opened, coordinator_key)
    except BundleRejected:
        raise ReceiptRefused(
            f"{name}: signature does not verify with the coordinator key {key_id(coordinator_key)} "
            "(forged, altered or signed by another coordinator); it proves nothing"
        ) from None
    try:
        document = strict_json_loads(opened.payload_bytes, "receipt")
    except BundleRejected as exc:
        raise ReceiptRefused(f"{name} is not a receipt ({exc.reason})") from None
    if not isinstance(document, dict) or document.get("receipt_version") != RECEIPT_VERSION:
        raise ReceiptRefused(f"{name} is not a receipt this aggregator knows (receipt_version)")
    fields = {k: v for k, v in document.items() if k != "receipt_version"}
    try:
        receipt = Receipt(**fields, keyid=opened.keyid)
    except TypeError:
        raise ReceiptRefused(f"{name} lacks a field of a receipt or has one too many") from None
    texts = (receipt.store, receipt.digest, receipt.entry_hash, receipt.head_hash)
    numbers = (receipt.period, receipt.sequence, receipt.index, receipt.head_index)
    if (not all(isinstance(t, str) and _HEX64.fullmatch(t) for t in texts)
            or not all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in numbers)
            or not isinstance(receipt.org, str) or not isinstance(receipt.issued_at, str)
            or not 1 <= receipt.index <= receipt.head_index):
        raise ReceiptRefused(f"{name} has a field that is not what a receipt holds")
    return receipt


def read_receipt_file(path: Path, coordinator_key: bytes) -> Receipt:
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError:
        raise InputError(f"cannot read the receipt file {path}") from None
    return read_receipt(data, coordinator_key, f"receipt {path.name}")


def receipt_files(paths: list[Path]) -> list[Path]:
    """Receipt files from files and folders (a folder gives its *.receipt.json files, e.g. a home's releases/)."""
    out: list[Path] = []
    for path in map(Path, paths):
        if path.is_dir():
            out.extend(sorted(p for p in path.glob(f"*{RECEIPT_SUFFIX}") if p.is_file()))
        elif path.is_file():
            out.append(path)
        else:
            raise InputError(f"no receipt file or folder at {path}")
    return out
