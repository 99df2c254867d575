"""Files written all or nothing, and the one rule for output folders the tool may clear."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from ..errors import InputError


def atomic_write(path: Path, data: bytes, *, mode: int = 0o644) -> None:
    """Write via a temp file in the same folder, fsync, rename, fsync the folder: all or nothing."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    fsync(path.parent)


def fsync(path: Path) -> None:
    """Make a file's content (or a folder's renames) durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_output(path: Path, data: bytes) -> None:
    """Atomic write of a file the user named; an unwritable place is an InputError, not a traceback."""
    try:
        atomic_write(Path(path), data)
    except OSError as exc:
        raise InputError(f"cannot write {Path(path).name or path}: {exc.strerror or type(exc).__name__}") from None


def clear_marked_folder(out: Path, marker: str, entries: tuple[str, ...], what: str) -> None:
    """Make `out` ready for a fresh run of a tool that owns it.

    A folder that is not empty and holds no `marker` file is refused (it is someone else's); otherwise exactly
    `entries` (which the tool creates) are removed, nothing else."""
    import shutil

    from ..errors import UsageError

    if out.exists() and not out.is_dir():
        raise UsageError(f"{out} exists and is not a folder")
    if out.is_dir() and any(out.iterdir()) and not (out / marker).is_file():
        raise UsageError(f"{out} is not empty and holds no {what}; choose an empty or new folder")
    out.mkdir(parents=True, exist_ok=True)
    for name in entries:
        path = out / name
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        elif path.exists() or path.is_symlink():
            path.unlink()
