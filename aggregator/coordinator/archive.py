"""The archive (every accepted bundle byte for byte: the source of truth) and the evidence folder."""

from __future__ import annotations

import os
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

from ..contract.envelope import bundle_filename
from ..util.files import atomic_write, fsync
from .store import archive_dir, evidence_dir

if TYPE_CHECKING:
    from .admission import Staged

def write_archive(folder: Path, items: Sequence[tuple[str, bytes]]) -> list[Path]:
    """Write archive files (digest, bytes) durably; returns the files it created (existing ones are kept as they are).

    Each file goes to a temp name, is fsynced (in parallel threads: the file system commits them together) and
    renamed; one fsync of the folder at the end makes the renames durable. On failure every file this call
    created is removed and the error raised."""
    folder.mkdir(parents=True, exist_ok=True)
    temps: list[tuple[Path, Path]] = []
    created: list[Path] = []
    try:
        for digest, data in items:
            target = folder / bundle_filename(digest)
            if target.exists():
                continue
            fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=folder)
            temps.append((Path(tmp), target))
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
            os.chmod(tmp, 0o644)
        if temps:
            with ThreadPoolExecutor(max_workers=min(16, len(temps))) as pool:
                list(pool.map(fsync, [tmp for tmp, _ in temps]))
        for tmp, target in temps:
            os.replace(tmp, target)
            created.append(target)
        if created:
            fsync(folder)
    except BaseException:
        for tmp, target in temps:
            tmp.unlink(missing_ok=True)
        for target in created:
            target.unlink(missing_ok=True)
        raise
    return created


def keep_evidence(db_path: Path, staged: Staged) -> None:
    """Keep an equivocating bundle as signed proof, outside the store (it is never merged)."""
    target = evidence_dir(db_path) / bundle_filename(staged.digest)
    if not target.exists():
        try:
            atomic_write(target, staged.data)
        except OSError:  # evidence is best effort; the refusal itself is reported regardless
            pass


def remove_interrupted_writes(db_path: Path) -> None:
    """Temp files of archive writes that a killed merge left behind (never part of the archive); we hold the lock."""
    folder = archive_dir(db_path)
    if folder.is_dir():
        for leftover in folder.glob(".*.tmp"):
            leftover.unlink(missing_ok=True)
