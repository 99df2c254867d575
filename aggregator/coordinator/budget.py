"""Budget reports for auditors: exact epsilon spent per organisation and period, and every release."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..privacy.epsilon import decimal_text, exact_text
from ..util.clock import iso
from .store import open_store

@dataclass
class ReleaseSpend:
    digest: str
    sequence: int
    epsilon: str  # charged at merge: the release's marginals plus the joint epsilon when the bundle pinned a plan
    marginals: list[dict[str, Any]]
    accepted_at: str
    superseded_by: str | None
    ledger_index: int
    refunded: str = "0"  # joint epsilon given back when the plan's result did not use this bundle's shares
    refund_reason: str | None = None  # "excluded" (by the parties) or "not used" (superseded before the computation)
    spent: str = ""  # charged - refunded

    def __post_init__(self) -> None:
        if not self.spent:
            self.spent = exact_text(Fraction(self.epsilon) - Fraction(self.refunded))

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class OrgBudget:
    org: str
    period: int
    kind: str
    reporter_type: str
    cap: str
    spent: str
    remaining: str
    releases: list[ReleaseSpend]

    @property
    def spent_decimal(self) -> str:
        return decimal_text(Fraction(self.spent))

    @property
    def cap_decimal(self) -> str:
        return decimal_text(Fraction(self.cap))

    @property
    def remaining_decimal(self) -> str:
        return decimal_text(Fraction(self.remaining))

    def as_dict(self) -> dict[str, Any]:
        return {
            "org": self.org,
            "period": self.period,
            "kind": self.kind,
            "reporter_type": self.reporter_type,
            "cap": self.cap,
            "cap_decimal": self.cap_decimal,
            "spent": self.spent,
            "spent_decimal": self.spent_decimal,
            "remaining": self.remaining,
            "remaining_decimal": self.remaining_decimal,
            "releases": [r.as_dict() for r in self.releases],
        }


@dataclass
class BudgetReport:
    budgets: list[OrgBudget]

    def as_dict(self) -> dict[str, Any]:
        return {"budgets": [b.as_dict() for b in self.budgets]}


def budget_report(db_path: Path, *, org: str | None = None, period: int | None = None) -> BudgetReport:
    """Epsilon spent per organisation and period (exact), cap, remaining and every release in order.

    Every accepted bundle counts, also those a higher sequence superseded (their noise was released); joint
    epsilon a stored joint result gave back (the bundle's shares were not used) is subtracted."""
    from .joint import stored_refunds

    with open_store(db_path, write=False) as con:
        if org is not None and not con.execute("SELECT 1 FROM organisations WHERE id = ?", [org]).fetchone():
            raise ConfigError(f"organisation {org} is not registered")
        rows = con.execute(
            """
            SELECT b.org_id, b.period, b.digest, b.sequence, b.epsilon, b.received_at, b.superseded_by,
                   b.ledger_index, l.entry
            FROM bundles AS b JOIN ledger AS l ON l.idx = b.ledger_index
            WHERE ($org IS NULL OR b.org_id = $org) AND ($period IS NULL OR b.period = $period)
            ORDER BY b.org_id, b.period, b.ledger_index
            """,
            {"org": org, "period": period},
        ).fetchall()
        orgs = {
            r[0]: r[1:]
            for r in con.execute(
                "SELECT id, kind, reporter_type, cap FROM organisations WHERE ($org IS NULL OR id = $org) ORDER BY id",
                {"org": org},
            ).fetchall()
        }
        refunds = {digest: (epsilon, reason) for _, _, digest, epsilon, reason in stored_refunds(con)}
    grouped: dict[tuple[str, int], list[ReleaseSpend]] = {}
    for org_id, per, digest, sequence, epsilon, received_at, superseded_by, ledger_index, entry in rows:
        refunded, reason = refunds.get(digest, (Fraction(0), None))
        grouped.setdefault((org_id, per), []).append(
            ReleaseSpend(
                digest, sequence, epsilon, json.loads(entry).get("marginals", []), iso(received_at) or "",
                superseded_by, ledger_index, exact_text(refunded), reason,
            )
        )
    if period is not None:  # every registered organisation has a budget line for the period asked about
        for org_id in orgs:
            grouped.setdefault((org_id, period), [])
    budgets = []
    for (org_id, per), releases in sorted(grouped.items()):
        kind, reporter_type, cap = orgs[org_id]
        spent = sum((Fraction(r.spent) for r in releases), Fraction(0))
        budgets.append(
            OrgBudget(
                org_id, per, kind, reporter_type, cap, exact_text(spent),
                exact_text(Fraction(cap) - spent), releases,
            )
        )
    return BudgetReport(budgets)
