"""Consent, person by person: the latest statement decides; what validate warns about (counts, never values).

Every valid row of a person is one statement on consent, or none:
  withdrawn  the row has a consent withdrawal date (whatever its consent column says)
  consent    consent "yes" with a consent date: the only valid consent
  undated    consent "yes" without a consent date: NOT a valid consent
  refused    consent "no"
  (none)     the consent column is empty and there is no withdrawal date: the row says nothing about consent
A statement is dated by the row's report date; a withdrawal by the later of the report date and its own date (a
withdrawal is often written onto the row where consent was first recorded). The person's latest statement, over
all rows of the export whatever their period, decides: the person leaves individually only when it is `consent`.
Ties (two statements on the same day) go to the statement that is not a valid consent, so the order of the rows
in the file never matters. A person without any statement has no consent.

Warnings (validate and submit) carry a rule, a field, a count of rows or people, and a message that names
fields only: never a value of an export row.
"""

from __future__ import annotations

from typing import Any

CONSENT_FIELDS = ("consent", "consent_date", "consent_withdrawn_date")

STATEMENTS_SQL = """
SELECT person_id, __row, report_date,
    CASE
        WHEN consent_withdrawn_date IS NOT NULL THEN 'withdrawn'
        WHEN consent AND consent_date IS NOT NULL THEN 'consent'
        WHEN consent THEN 'undated'
        WHEN NOT consent THEN 'refused'
    END AS statement,
    greatest(report_date, coalesce(consent_withdrawn_date, report_date)) AS said_on
FROM valid_rows
"""


# The latest statement, a refusal first on the same day: the largest of day * 2 + (1 unless consent), which is even
# only when it is a consent (one integer max; arg_max over a struct took 1.6x as long). An aggregate over
# STATEMENTS_SQL rows that all carry a statement; `% 2 = 0` of it says the person consents.
LATEST_STATEMENT_SQL = "max(date_diff('day', DATE '1900-01-01', said_on) * 2 + (statement <> 'consent')::INTEGER)"


def build_consent_status(con) -> None:
    """TEMP table `consent_status`, one row per person with a statement: whether the latest is a valid consent
    (`consents`). Withdrawals read it."""
    con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE consent_status AS
        SELECT person_id,
            {LATEST_STATEMENT_SQL} % 2 = 0 AS consents
        FROM ({STATEMENTS_SQL}) AS s
        WHERE statement IS NOT NULL
        GROUP BY person_id
        """
    )


NO_CONSENT_EFFECT = (
    "nobody can leave individually except statutory records (those of an investigative organisation); everyone "
    "else is counted only in the noisy counts"
)


def mapping_warnings(mapping) -> list[dict[str, Any]]:
    """What a mapping without the consent fields implies (a warning: an export may rightly have no consent)."""
    mapped = [f for f in CONSENT_FIELDS if f in mapping.columns]
    if "consent" not in mapped and "consent_date" not in mapped:
        what = "the mapping maps no consent field (consent, consent_date)"
    elif "consent_date" not in mapped:
        what = "the mapping maps consent but not consent_date, and a consent without a date is not a valid consent"
    elif "consent" not in mapped:
        what = "the mapping maps consent_date but not consent, so no row can say that consent was given"
    else:
        what = None
    warnings = []
    if what is not None:
        warnings.append(_warning("no-consent-mapping", "consent", f"{what}: {NO_CONSENT_EFFECT}"))
    elif "consent_withdrawn_date" not in mapped:
        warnings.append(_warning(
            "no-withdrawal-mapping", "consent_withdrawn_date",
            "the mapping maps no consent_withdrawn_date: a withdrawal of consent can only be seen as a newer row "
            "saying no, and earlier releases are withdrawn only then",
        ))
    return warnings


def row_warnings(con, mapping) -> list[dict[str, Any]]:
    """Counts of rows with a "yes" but no consent date, and of people whose rows both give and refuse consent."""
    if "consent" not in mapping.columns or "consent_date" not in mapping.columns:
        return []  # the mapping warning says it once for everyone
    # No grouping of every person: the people who both refuse and give (usually few) are found by a semi join on
    # those who give. Grouping all people for these two counts took 0.15 s of a million-row validate, this 0.05 s.
    undated, conflicting = con.execute(
        f"""
        WITH s AS ({STATEMENTS_SQL})
        SELECT (SELECT count(*) FROM s WHERE statement = 'undated'),
            (SELECT count(DISTINCT person_id) FROM s WHERE statement = 'refused'
                AND person_id IN (SELECT person_id FROM s WHERE statement IN ('consent', 'undated')))
        """
    ).fetchone()
    warnings = []
    if undated:
        warnings.append(_warning(
            "consent-without-date", "consent_date",
            f"{undated} row(s) say consent was given but have no consent date: that is not a valid consent, so "
            "those rows do not let the person leave individually; add the date in the export if consent was given",
            rows=int(undated),
        ))
    if conflicting:
        warnings.append(_warning(
            "conflicting-consent", "consent",
            f"{conflicting} person(s) have rows that both give and refuse consent: the latest statement (by report "
            "date; on the same day the refusal) decides, so check those people's rows",
            people=int(conflicting),
        ))
    return warnings


def consent_warnings(con, mapping) -> list[dict[str, Any]]:
    """Mapping and row warnings on consent for the validation report (needs TEMP view `valid_rows`)."""
    return mapping_warnings(mapping) + row_warnings(con, mapping)


def _warning(rule: str, fname: str, message: str, *, rows: int | None = None, people: int | None = None) -> dict[str, Any]:
    return {"rule": rule, "field": fname, "rows": rows, "people": people, "message": message}
