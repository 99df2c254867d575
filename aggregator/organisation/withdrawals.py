"""Withdrawals of records sent for other periods, matched by the organisation's local person id.

Next to every kept bundle (`releases/<digest>.bundle.json`) the home keeps `releases/<digest>.people.json`: which
local person ids each consent record of that bundle came from. It never leaves the organisation (it is not part of
the bundle, and it is written readable by the owner only). A later submit withdraws a record when a person it came
from is in the new export and that person's latest statement on consent (consent.py) is no longer a valid consent:
the match is by person id, so a corrected date of birth, a new given name or a missing birth date (which change or
drop the pseudonym) do not lose the withdrawal. Each withdrawal names the period and the sequence of the kept
bundle, so the coordinator applies it to that bundle and the period's earlier ones whatever the clocks said.

Kept bundles made before the home kept person ids fall back to recomputing the pseudonym from the current rows.
"""

from __future__ import annotations

import json
from pathlib import Path

from .consent import build_consent_status
from .home import OrgConfig
from .spending import Spend, SpendingFile

PEOPLE_SUFFIX = ".people.json"


def people_path(org: OrgConfig, digest: str) -> Path:
    return Path(org.home) / "releases" / f"{digest}{PEOPLE_SUFFIX}"


def released_people(con) -> dict[str, list[str]]:
    """pseudonym -> sorted local person ids, for the consent records of TEMP table `people` (what may be withdrawn)."""
    rows = con.execute(
        "SELECT pseudonym, list(DISTINCT person_id ORDER BY person_id) FROM people WHERE basis = 'consent' GROUP BY pseudonym"
    ).fetchall()
    return {p: list(ids) for p, ids in sorted(rows)}


def write_people(org: OrgConfig, digest: str, period: int, sequence: int, people: dict[str, list[str]]) -> Path:
    """Keep the person ids of a bundle's consent records in the home, readable by the owner only."""
    from ..util.files import atomic_write

    path = people_path(org, digest)
    text = json.dumps({"digest": digest, "period": period, "sequence": sequence, "people": people}, sort_keys=True)
    atomic_write(path, (text + "\n").encode("utf-8"), mode=0o600)
    return path


def read_people(org: OrgConfig, digest: str) -> dict[str, list[str]] | None:
    """The kept person ids of one bundle, or None when the home has none for it (a bundle made before, or damaged)."""
    try:
        data = json.loads(people_path(org, digest).read_text(encoding="utf-8"))
        return {str(p): [str(i) for i in ids] for p, ids in data["people"].items()}
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None


def latest_kept(spending: SpendingFile, *, exclude_period: int) -> dict[int, Spend]:
    """The spending entry of the latest (highest sequence) release of every other period."""
    latest: dict[int, Spend] = {}
    for entry in spending.entries():
        if entry.period != exclude_period and entry.sequence >= latest.get(entry.period, entry).sequence:
            latest[entry.period] = entry
    return latest


def withdrawals(con, org: OrgConfig, spending: SpendingFile, period: int, linkage_key: bytes) -> list[dict]:
    """(pseudonym, period, sequence) to withdraw: consent records of the latest kept bundle of every OTHER period
    whose person no longer consents by the latest statement in this export (builds TEMP table `consent_status`).

    Within the same period a new bundle supersedes the old one, so nothing needs withdrawing there."""
    if org.kind == "investigative":
        return []  # statutory records need no consent
    latest = latest_kept(spending, exclude_period=period)
    if not latest:
        return []
    build_consent_status(con)
    no_longer = {pid for (pid,) in con.execute("SELECT person_id FROM consent_status WHERE NOT consents").fetchall()}
    result = []
    for per, entry in sorted(latest.items()):
        kept = read_people(org, entry.digest)
        if kept is not None:
            gone = {p for p, ids in kept.items() if no_longer.intersection(ids)}
        else:
            gone = _legacy_withdrawn(con, org, entry, linkage_key)
        result.extend({"pseudonym": p, "period": per, "sequence": entry.sequence} for p in sorted(gone))
    return result


def _legacy_withdrawn(con, org: OrgConfig, entry: Spend, linkage_key: bytes) -> set[str]:
    """A kept bundle without kept person ids: its consent pseudonyms that the people who no longer consent have today."""
    from ..contract.envelope import bundle_filename, open_envelope, parse_payload, read_bundle_file
    from ..errors import BundleRejected
    from .pseudonyms import HMAC_SQL, hmac_pads, install_normalisation
    from .release import NAMES_SQL

    try:
        payload = parse_payload(open_envelope(read_bundle_file(Path(org.home) / "releases" / bundle_filename(entry.digest))))
    except BundleRejected:
        return set()  # a kept bundle that is gone cannot be withdrawn from; the coordinator still has it
    sent = {r.pseudonym for r in payload.records if r.basis == "consent"}
    ipad, opad = hmac_pads(linkage_key)
    install_normalisation(con, NAMES_SQL)
    now = {
        p for (p,) in con.execute(
            f"""
            SELECT DISTINCT {HMAC_SQL} FROM valid_rows
            WHERE person_id IN (SELECT person_id FROM consent_status WHERE NOT consents)
            """,
            {"org_id": org.id, "ipad": ipad, "opad": opad},
        ).fetchall()
    }
    return sent & now
