"""The organisation's spending file: its own record of every epsilon it released, checked before each release."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from fractions import Fraction
from pathlib import Path

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


class SpendingFile:
    """The organisation's own record of what it released: a JSON-lines file rewritten atomically."""

    def __init__(self, path: Path, cap: Fraction = DEFAULT_CAP) -> None:
        self.path = path
        self.cap = cap

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

        self.check(entry.period, Fraction(entry.epsilon))
        lines = [json.dumps(e.as_dict(), sort_keys=True) for e in self.entries()]
        lines.append(json.dumps(entry.as_dict(), sort_keys=True))
        atomic_write(self.path, ("\n".join(lines) + "\n").encode("utf-8"), mode=0o600)
