"""The organisation's spending file: its own record of every epsilon it released, checked before each release."""

from __future__ import annotations

import json
import os
import threading
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from fractions import Fraction
from pathlib import Path
from typing import Iterator

from ..errors import BudgetExceeded, ConfigError
from ..privacy.epsilon import DEFAULT_CAP, decimal_text


@dataclass(frozen=True)
class Spend:
    period: int
    sequence: int
    epsilon: str
    digest: str
    created_at: str
    records: int
    marginals: int

    def as_dict(self) -> dict:
        return asdict(self)


# Held locks of this process, by lock file: flock locks belong to an open file, so a second open of the same lock
# file in one process would wait for itself. A nested `locked()` (submit holds it, append takes it) only counts.
_HELD: dict[str, list] = {}
_HELD_GUARD = threading.Lock()


class SpendingFile:
    """The organisation's own record of what it released: a JSON-lines file rewritten atomically.

    Read-modify-write under an exclusive `fcntl.flock` on `<file>.lock` next to it: `append` takes it, and `submit`
    holds it from its budget check to its append (`locked()`), so two releases at once can neither lose an entry,
    pass the cap together nor take the same sequence."""

    def __init__(self, path: Path, cap: Fraction = DEFAULT_CAP) -> None:
        self.path = path
        self.cap = cap

    @property
    def lock_path(self) -> Path:
        return Path(self.path).with_name(Path(self.path).name + ".lock")

    @contextmanager
    def locked(self) -> Iterator[None]:
        """Hold the spending file's exclusive lock (waits for another process that holds it)."""
        import fcntl

        key = str(self.lock_path.resolve())
        with _HELD_GUARD:
            held = _HELD.get(key)
            if held is not None:
                held[1] += 1
        if held is None:
            try:
                fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o600)
            except OSError as exc:
                raise ConfigError(
                    f"cannot open the lock file of the spending file in {self.lock_path.parent} "
                    f"({exc.strerror or type(exc).__name__})"
                ) from None
            fcntl.flock(fd, fcntl.LOCK_EX)
            with _HELD_GUARD:
                _HELD[key] = held = [fd, 1]
        try:
            yield
        finally:
            with _HELD_GUARD:
                held[1] -= 1
                last = held[1] == 0
                if last:
                    del _HELD[key]
            if last:
                fcntl.flock(held[0], fcntl.LOCK_UN)
                os.close(held[0])

    def entries(self) -> list[Spend]:
        try:
            lines = self.path.read_text(encoding="utf-8").splitlines()
        except FileNotFoundError:
            return []
        try:
            return [Spend(**json.loads(line)) for line in lines if line.strip()]
        except (ValueError, TypeError):
            raise ConfigError(f"spending file {self.path} is damaged; restore it from backup before releasing") from None

    def spent(self, period: int) -> Fraction:
        return sum((Fraction(e.epsilon) for e in self.entries() if e.period == period), Fraction(0))

    def remaining(self, period: int) -> Fraction:
        return self.cap - self.spent(period)

    def next_sequence(self, period: int) -> int:
        return max((e.sequence for e in self.entries() if e.period == period), default=0) + 1

    def check(self, period: int, epsilon: Fraction) -> None:
        """Refuse a release that would take the period past the cap."""
        spent = self.spent(period)
        if spent + epsilon > self.cap:
            raise BudgetExceeded(
                f"releasing epsilon {decimal_text(epsilon)} for {period} would exceed the cap of "
                f"{decimal_text(self.cap)}: already spent {decimal_text(spent)}, remaining "
                f"{decimal_text(self.cap - spent)}"
            )

    def append(self, entry: Spend) -> None:
        from ..util.files import atomic_write

        with self.locked():
            self.check(entry.period, Fraction(entry.epsilon))
            lines = [json.dumps(e.as_dict(), sort_keys=True) for e in self.entries()]
            lines.append(json.dumps(entry.as_dict(), sort_keys=True))
            atomic_write(self.path, ("\n".join(lines) + "\n").encode("utf-8"), mode=0o600)
