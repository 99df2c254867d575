"""The organisation keeps the coordinator's receipts next to its kept bundles: `<home>/releases/<digest>.receipt.json`.

A receipt is what the organisation can hold the coordinator to (contract/receipt.py): its accepted bundle at a
ledger position under a chain head, signed by the coordinator. Only a receipt that verifies with the coordinator's
public key, names this organisation and is for a bundle this home kept is stored. A newer receipt for the same
bundle (signed under a later head) replaces the older one: it pins a longer prefix of the same chain.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ..errors import ReceiptRefused
from .home import OrgConfig


@dataclass
class KeptReceipt:
    file: str  # the receipt file given
    kept: str  # where it is kept in the home
    digest: str
    period: int
    index: int
    head_index: int
    status: str  # kept | replaced | older (a newer receipt for this bundle is already kept)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def keep_receipts(org: OrgConfig, paths: list[Path], coordinator_key: bytes) -> list[KeptReceipt]:
    """Verify each receipt and keep it beside its bundle in the home; ReceiptRefused names the first that fails
    (nothing of a refused receipt is kept; the ones before it are)."""
    from ..contract.envelope import bundle_filename
    from ..contract.receipt import read_receipt, read_receipt_file, receipt_filename, receipt_files
    from ..util.files import atomic_write

    releases = Path(org.home) / "releases"
    out: list[KeptReceipt] = []
    for path in receipt_files(paths):
        receipt = read_receipt_file(path, coordinator_key)
        name = f"receipt {path.name}"
        if receipt.org != org.id:
            raise ReceiptRefused(f"{name} is for organisation {receipt.org}, not {org.id}")
        if not (releases / bundle_filename(receipt.digest)).is_file():
            raise ReceiptRefused(f"{name} is for bundle {receipt.digest[:12]}, which this home did not keep")
        target = releases / receipt_filename(receipt.digest)
        status = "kept"
        if target.is_file():
            try:
                earlier = read_receipt(target.read_bytes(), coordinator_key, "kept receipt")
            except ReceiptRefused:
                earlier = None
            if earlier is not None and earlier.head_index > receipt.head_index:
                status = "older"
            else:
                status = "replaced"
        if status != "older":
            atomic_write(target, path.read_bytes())
        out.append(KeptReceipt(str(path), str(target), receipt.digest, receipt.period, receipt.index,
                               receipt.head_index, status))
    return out
