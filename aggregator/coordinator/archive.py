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

# Files written and fsynced through their open descriptors at most this many at a time (well under the usual
# limit of 1,024 open files a process may hold, with DuckDB's own).
_OPEN_AT_ONCE = 256


def write_archive(folder: Path, items: Sequence[tuple[str, bytes]]) -> list[Path]:
    """Write archive files (digest, bytes) durably; returns the files it created (existing ones are kept as they are).

    Each file goes to a temp name, written and fsynced through the descriptor that created it (the fsyncs in
    parallel threads: the file system commits them together), then renamed; one fsync of the folder at the end
    makes the renames durable. On failure every file this call created is removed and the error raised."""
    folder.mkdir(parents=True, exist_ok=True)
    temps: list[tuple[Path, Path]] = []
    created: list[Path] = []
    try:
        pending = [(folder / bundle_filename(digest), data) for digest, data in items]
        pending = [(target, data) for target, data in pending if not target.exists()]
        if pending:
            with ThreadPoolExecutor(max_workers=min(16, len(pending))) as pool:
                for start in range(0, len(pending), _OPEN_AT_ONCE):
                    fds: list[int] = []
                    try:
                        for target, data in pending[start:start + _OPEN_AT_ONCE]:
                            fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=folder)
                            fds.append(fd)
                            temps.append((Path(tmp), target))
                            _write_all(fd, data)
                            os.fchmod(fd, 0o644)
                        list(pool.map(os.fsync, fds))
                    finally:
                        for fd in fds:
                            os.close(fd)
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


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


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
