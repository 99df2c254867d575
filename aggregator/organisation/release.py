"""From valid rows to a signed bundle: one record per person, lawful-basis split, minimise, pseudonymise, noisy counts.

All set work happens in DuckDB on the TEMP table `valid_rows` that validate.py leaves behind. The exact counts of
people without a lawful basis exist only inside `noisy_marginals` on their way into OpenDP; nothing else returns them.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

from ..contract.codelists import codes, DIMENSIONS, EU_OTHER
from ..errors import BudgetExceeded, InputError, UsageError, ValidationFailed
from .home import OrgConfig
from ..privacy.workload import DEFAULT_WORKLOAD, expected_query_errors, split_epsilon, workload_named
from ..privacy.epsilon import exact_text, PRIVACY_UNIT
from .consent import LATEST_STATEMENT_SQL, STATEMENTS_SQL
from .pseudonyms import LINKABLE_SQL, PSEUDONYM_MESSAGE_SQL, hmac_pads, hmac_sql, install_normalisation
from .spending import Spend, SpendingFile
from .withdrawals import PEOPLE_SUFFIX, people_path, released_people, withdrawals, write_people
from ..privacy.mechanism import discrete_laplace_quantile, discrete_laplace_variance, release_counts
from ..util.clock import utc_now

from ..contract.validity import BUNDLE_LIFETIME  # noqa: E402  (one rule for both sides)
RECORD_DIMENSIONS = tuple(DIMENSIONS)
LATEST_KEY = "((report_date - DATE '1900-01-01')::BIGINT * 4294967296 + __row)"  # unique per row, as __row is
NAMES_SQL = "SELECT family_name FROM valid_rows UNION ALL SELECT given_names FROM valid_rows"  # what pseudonyms fold

# ------------------------------------------------------------ people


def build_people(con, org: OrgConfig, period: int, export_date: dt.date, linkage_key: bytes, *,
                 everyone: bool = False) -> None:
    """TEMP table `people`: one row per person of the period with release dimensions, basis and pseudonym.

    Pseudonyms are made for the records that leave. With `everyone` every person also gets `identity`, the text the
    pseudonym is the HMAC of (normalised names and date of birth, or the local person id): a joint release hashes it
    into buckets (joint/contribution.py), which needs no pseudonym for the people without a lawful basis (HMAC for
    570,000 people took 0.8 s of a 1M-row submit). Identities never leave this DuckDB."""
    eu = sorted(EU_OTHER)
    ipad, opad = hmac_pads(linkage_key)
    install_normalisation(con, NAMES_SQL)
    con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE people AS
        WITH latest AS (
            -- the latest row of the period describes the person: latest day, then last row (one integer key per
            -- row); consent is the person's latest statement over the whole export (consent.py). One grouping for
            -- both: joining consent_status instead took 2.5 s of a 10M-row submit.
            SELECT max({LATEST_KEY}) FILTER (WHERE year(report_date) = $period) AS k,
                coalesce({LATEST_STATEMENT_SQL} FILTER (WHERE statement IS NOT NULL) % 2 = 0, FALSE) AS consents
            FROM ({STATEMENTS_SQL}) AS s
            GROUP BY person_id
            HAVING k IS NOT NULL
        ),
        per_person AS (
            SELECT person_id, family_name, given_names, date_of_birth, form, gender, nationality, province,
                coalesce(age, date_part('year', age(report_date, date_of_birth))) AS age, latest.consents
            FROM valid_rows JOIN latest ON {LATEST_KEY} = latest.k
        ),
        based AS (
            SELECT per_person.* EXCLUDE (consents),
                CASE
                    WHEN $kind = 'investigative' THEN 'statutory'
                    WHEN consents THEN 'consent'
                END AS basis
            FROM per_person
        ),
        identified AS (
            SELECT *, CASE WHEN basis IS NOT NULL OR $everyone THEN {PSEUDONYM_MESSAGE_SQL} END AS identity FROM based
        )
        SELECT
            -- pseudonyms only for records that leave; a joint release buckets everyone's identity
            CASE WHEN basis IS NOT NULL THEN {hmac_sql('identity')} END AS pseudonym,
            CASE WHEN $everyone THEN identity END AS identity,
            {LINKABLE_SQL} AS linkable,  -- FALSE: the pseudonym is local to this organisation (pseudonyms.py)
            basis,
            person_id,  -- local; kept in the home for withdrawals (withdrawals.py), never in a bundle
            form,
            CASE
                WHEN age IS NULL THEN 'unknown'
                WHEN age < 15 THEN 'under_15'
                WHEN age < 18 THEN '15_17'
                WHEN age < 25 THEN '18_24'
                ELSE '25_plus'
            END AS age_band,
            coalesce(gender, 'unknown') AS gender,
            CASE
                WHEN nationality IS NULL THEN 'unknown'
                WHEN nationality = 'NL' THEN 'NL'
                WHEN list_contains($eu, nationality) THEN 'EU'
                ELSE 'non_EU'
            END AS nationality_group,
            coalesce(province, 'unknown') AS province
        FROM identified
        """,
        {
            "period": period,
            "kind": org.kind,
            "everyone": everyone,
            "org_id": org.id,
            "eu": eu,
            "ipad": ipad,
            "opad": opad,
        },
    )


def lawful_records(con) -> list[dict[str, str]]:
    """The minimised, pseudonymised records with a lawful basis, sorted by pseudonym: one per pseudonym.

    Two local people with the same names and date of birth get one pseudonym and are one person nationally; the
    bundle carries one record for them (`linked_people` counts the others)."""
    cursor = con.execute(
        f"""
        SELECT pseudonym, basis, {', '.join(RECORD_DIMENSIONS)}
        FROM people WHERE basis IS NOT NULL
        QUALIFY row_number() OVER (PARTITION BY pseudonym ORDER BY basis DESC, {', '.join(RECORD_DIMENSIONS)}) = 1
        ORDER BY pseudonym
        """
    )
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, row)) for row in cursor.fetchall()]


def linked_people(con) -> int:
    """Local people with a lawful basis whose pseudonym another local person of the period shares (one record sent)."""
    return con.execute(
        "SELECT count(*) - count(DISTINCT pseudonym) FROM people WHERE basis IS NOT NULL"
    ).fetchone()[0]


def _codelist_tables(con) -> None:
    for dim in DIMENSIONS:
        con.execute(
            f"""
            CREATE OR REPLACE TEMP TABLE cl_{dim} AS
            SELECT unnest($codes) AS {dim}, generate_subscripts($codes, 1) AS ord_{dim}
            """,
            {"codes": codes(dim)},
        )


def noisy_marginals(con, epsilon: Fraction, workload=DEFAULT_WORKLOAD) -> list[dict[str, Any]]:
    """One noisy marginal per workload entry over the full codelist cell set, counts of people without a basis."""
    _codelist_tables(con)
    marginals = []
    for dims, eps in zip(workload, split_epsilon(epsilon, workload)):
        cross = " CROSS JOIN ".join(f"cl_{d}" for d in dims)
        cols = ", ".join(dims)
        order = ", ".join(f"ord_{d}" for d in dims)
        rows = con.execute(
            f"""
            WITH exact AS (
                SELECT {cols}, count(*) AS n FROM people WHERE basis IS NULL GROUP BY ALL
            )
            SELECT {cols}, coalesce(exact.n, 0) AS n
            FROM {cross} LEFT JOIN exact USING ({cols})
            ORDER BY {order}
            """
        ).fetchall()
        noisy, scale = release_counts([int(r[-1]) for r in rows], eps)
        marginals.append(
            {
                "dimensions": list(dims),
                "epsilon": exact_text(eps),
                "sensitivity": 1,
                "scale": scale,
                "variance": discrete_laplace_variance(scale),
                "expected_error_95": float(discrete_laplace_quantile(scale)),
                "cells": [{"key": list(r[:-1]), "count": int(c)} for r, c in zip(rows, noisy)],
            }
        )
    return marginals


# ------------------------------------------------------------ submit


@dataclass
class SubmitResult:
    organisation: str
    period: int
    sequence: int
    digest: str | None
    path: str | None
    dry_run: bool
    rows_read: int
    rows_valid: int
    rows_invalid_skipped: int
    records_by_basis: dict[str, int]
    withdrawals: int
    marginals: list[dict[str, Any]]
    epsilon: str
    epsilon_spent: str
    epsilon_cap: str
    validation: dict[str, Any] = field(default_factory=dict)
    kind: str = ""
    # A dry run past the period's cap still shows what would leave; this says why a real submit would be refused.
    over_budget: str | None = None
    joint_plan: str | None = None  # digest of the computation plan whose shares the bundle carries
    records_linked: int = 0  # local people folded into another one's record: same names and date of birth
    warnings: list[dict[str, Any]] = field(default_factory=list)  # validate's consent warnings (counts, no values)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def submit(export: Path, mapping_path: Path, *, home: Path | None = None, **options: Any) -> SubmitResult:
    """Validate, release and sign (`_submit`), holding the spending file's lock from the budget check to the
    spending entry, so two submits at once can neither lose an entry, pass the cap together nor share a sequence."""
    from .home import load_org

    org = load_org(home)
    with SpendingFile(org.spending_path, org.cap_fraction).locked():
        return _submit(export, mapping_path, home=home, **options)


def _submit(
    export: Path,
    mapping_path: Path,
    *,
    period: int,
    epsilon: Fraction,
    out: Path,
    home: Path | None = None,
    linkage_key: bytes,
    export_date: dt.date | None = None,
    skip_invalid: bool = False,
    dry_run: bool = False,
    workload: str = "monitor",
    plan=None,
    con=None,
    show_over_budget: bool = False,
) -> SubmitResult:
    """Validate, release and sign; writes the bundle and the spending entry, or nothing at all.

    With a joint computation `plan` (joint/plan.py) the bundle also carries this organisation's encrypted bucket
    shares for the plan, and the plan's epsilon is spent on top of `epsilon` (0 when the joint release replaces the
    organisation's own noisy marginals)."""
    from ..util.files import atomic_write
    from ..contract.envelope import bundle_filename, canonical_json, sha256_hex, sign_payload
    from ..contract.keys import load_private_key
    from .home import load_org
    from ..contract.schema import Payload
    from .validate import validate_export

    workload_named(workload)
    if not 2000 <= period <= 2100:
        raise UsageError("the period must be a calendar year between 2000 and 2100", "period")
    org = load_org(home)
    if org.kind == "investigative":
        # Everyone an investigative organisation reports has a statutory basis: nothing to count noisily, nothing spent.
        epsilon = Fraction(0)
    joint_epsilon = Fraction(0)
    if plan is not None:
        from ..util.clock import store_now

        if plan.period != period:
            raise UsageError(f"the computation plan is for {plan.period}, not for {period}", "plan")
        if store_now() > plan.deadline:
            raise UsageError("the computation plan's deadline has passed; bundles no longer enter it", "plan")
        joint_epsilon = plan.epsilon
    spending = SpendingFile(org.spending_path, org.cap_fraction)
    remove_orphans(org, spending)
    over_budget = None
    try:
        spending.check(period, epsilon + joint_epsilon)
    except BudgetExceeded as exc:
        if not (dry_run and show_over_budget):
            raise
        over_budget = exc.message  # a dry run writes and spends nothing: let it show what would leave
    private_key = load_private_key(org.key_path)
    export_date = export_date or dt.date.today()
    if period > export_date.year:
        raise UsageError(
            f"the period {period} is after the export date ({export_date.year}); nothing was released or spent",
            "period",
        )

    # failing rows are only counted here: `aggregator validate` explains them
    report, con = validate_export(export, mapping_path, export_date=export_date, con=con, explain=False)
    if not report.valid and not skip_invalid:
        raise ValidationFailed(
            f"{report.rows_invalid} of {report.rows_read} rows break the schema; run `aggregator validate` to see them, "
            "fix the export, or pass --skip-invalid to release only the valid rows"
        )
    if not con.execute("SELECT count(*) FROM valid_rows WHERE year(report_date) = $period", {"period": period}).fetchone()[0]:
        con.close()
        raise InputError(
            f"the export has no valid rows with a report date in {period}; nothing was released or spent "
            "(a release over no rows would spend the period's budget on nothing)"
        )
    if not dry_run:
        ensure_writable_folder(out)
    build_people(con, org, period, export_date, linkage_key, everyone=plan is not None)
    records = lawful_records(con)
    linked = linked_people(con)
    withdrawn = withdrawals(con, org, spending, period, linkage_key)
    sent_people = released_people(con)
    if org.kind != "investigative" and any(r["basis"] == "statutory" for r in records):
        raise RuntimeError("statutory record from a non-investigative organisation")  # a bug, never input
    marginals = noisy_marginals(con, epsilon, workload_named(workload)) if epsilon > 0 else []
    joint = None
    if plan is not None:
        from ..joint.contribution import contribution

        joint = contribution(con, plan, linkage_key, org.id)
    con.close()

    from cryptography.hazmat.primitives import serialization

    from ..contract.keys import key_id

    raw_public = private_key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    created = utc_now()
    sequence = spending.next_sequence(period)
    payload = Payload.model_validate(
        {
            "organisation": {"id": org.id, "kind": org.kind, "reporter_type": org.reporter_type},
            "key_id": key_id(raw_public),
            "period": period,
            "sequence": sequence,
            "created_at": created,
            "expires_at": created + BUNDLE_LIFETIME,
            "records": records,
            "withdrawals": withdrawn,
            "release": {
                "privacy_unit": PRIVACY_UNIT,
                "library": f"opendp {_opendp_version()}",
                "epsilon": exact_text(epsilon),
                "marginals": marginals,
            }
            if marginals
            else None,
            "joint": joint,
        }
    )
    # The records as validated above: a Record's JSON form is the seven code strings it was given (a test holds the
    # bytes to the full model dump); dumping 17,000 of them through the model took 0.04 s of a 1M-row submit.
    content = payload.model_dump(mode="json", exclude={"records"})
    content["records"] = records
    if payload.joint is None:  # bundles without a plan stay exactly as before joint releases existed
        del content["joint"]
    payload_bytes = canonical_json(content)
    envelope = sign_payload(payload_bytes, private_key)
    digest = sha256_hex(envelope)
    by_basis = {"statutory": 0, "consent": 0}
    for r in records:
        by_basis[r["basis"]] += 1
    result = SubmitResult(
        organisation=org.id,
        period=period,
        sequence=sequence,
        digest=digest,
        path=None,
        dry_run=dry_run,
        rows_read=report.rows_read,
        rows_valid=report.rows_valid,
        rows_invalid_skipped=report.rows_invalid,
        records_by_basis=by_basis,
        withdrawals=len(withdrawn),
        marginals=[{k: m[k] for k in ("dimensions", "epsilon", "scale", "expected_error_95")} for m in marginals],
        epsilon=exact_text(epsilon + joint_epsilon),
        epsilon_spent=exact_text(spending.spent(period) + (0 if dry_run else epsilon + joint_epsilon)),
        epsilon_cap=exact_text(org.cap_fraction),
        joint_plan=plan.digest if plan is not None else None,
        kind=org.kind,
        over_budget=over_budget,
        records_linked=linked,
        warnings=report.warnings,
    )
    if dry_run:
        return result
    # Commit point: the bundle is kept in the home folder, then the spending entry is appended; both or neither
    # (a kept bundle without a spending entry is an orphan that the next submit removes).
    # The local person ids of its consent records are kept beside it (withdrawals.py) and go the same way.
    kept = Path(org.home) / "releases" / bundle_filename(digest)
    atomic_write(kept, envelope)
    try:
        write_people(org, digest, period, sequence, sent_people)
        spending.append(
            Spend(period, sequence, exact_text(epsilon + joint_epsilon), digest, created.isoformat(), len(records), len(marginals))
        )
    except BaseException:
        kept.unlink(missing_ok=True)
        people_path(org, digest).unlink(missing_ok=True)
        raise
    target = out / bundle_filename(digest)
    atomic_write(target, envelope)
    result.path = str(target)
    return result


def remove_orphans(org: OrgConfig, spending: SpendingFile) -> list[str]:
    """Delete kept bundles (and their kept person ids) that no spending entry accounts for: a submit that died
    before its commit point.

    Such a bundle was never spent or sent, so its noise must never be published either."""
    from ..contract.envelope import bundle_filename

    kept = Path(org.home) / "releases"
    if not kept.is_dir():
        return []
    spent = {bundle_filename(e.digest) for e in spending.entries()}
    removed = []
    for path in kept.glob("*.bundle.json"):
        if path.name not in spent:
            path.unlink()
            removed.append(path.name)
    spent_people = {e.digest + PEOPLE_SUFFIX for e in spending.entries()}
    for path in kept.glob("*" + PEOPLE_SUFFIX):  # the person ids kept beside a bundle that was never spent
        if path.name not in spent_people:
            path.unlink()
            removed.append(path.name)
    for path in kept.glob(".*.tmp"):  # an interrupted atomic write
        path.unlink()
    return removed


def ensure_writable_folder(folder: Path) -> None:
    """Refuse an output folder that cannot take the bundle before anything is spent."""
    import tempfile

    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".probe-"):
            pass
    except OSError as exc:
        raise UsageError(f"{folder.name or folder} is not a writable folder: {exc.strerror or type(exc).__name__}", "out") from None


@dataclass
class Preview:
    """What a release at this epsilon would cost in accuracy, computed before anything is read or spent."""

    epsilon: str
    workload: str
    marginals: list[dict[str, Any]]
    national: list[dict[str, Any]]
    remaining_before: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def preview(epsilon: Fraction, workload: str = "monitor") -> Preview:
    """Expected 95% error per noisy cell and of this organisation's contribution to each published national figure."""
    dims = workload_named(workload)
    parts = split_epsilon(epsilon, dims)
    marginals = []
    for m, e in zip(dims, parts):
        scale = 1 / float(e)
        marginals.append(
            {
                "dimensions": list(m),
                "epsilon": exact_text(e),
                "scale": scale,
                "expected_error_95": float(discrete_laplace_quantile(scale)),
            }
        )
    return Preview(exact_text(epsilon), workload, marginals, expected_query_errors(epsilon, dims))


def epsilon_for_target(target_error: float, remaining: Fraction, workload: str = "monitor") -> Fraction:
    """Smallest epsilon (in steps of 1/100) whose expected 95% error on the national total is at most the target."""
    from ..errors import BudgetExceeded

    if not target_error > 0:
        raise UsageError("the target error must be a positive number of people", "target_error")

    def total_error(eps: Fraction) -> float:
        return next(q["error_95"] for q in expected_query_errors(eps, workload_named(workload)) if q["query"] == "total")

    guess = Fraction(1) * Fraction(total_error(Fraction(1)) / target_error).limit_denominator(10_000)
    eps = max(Fraction(1, 100), Fraction(int(guess * 100), 100))
    while total_error(eps) > target_error:
        eps += Fraction(1, 100)
    while eps > Fraction(1, 100) and total_error(eps - Fraction(1, 100)) <= target_error:
        eps -= Fraction(1, 100)
    if eps > remaining:
        raise BudgetExceeded(
            f"an expected error of at most {target_error:g} on the national total needs epsilon {eps} "
            f"but only {remaining} remains for this period"
        )
    return eps


def _opendp_version() -> str:
    from importlib.metadata import version

    return version("opendp")
