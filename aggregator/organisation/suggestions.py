"""What validate suggests for values no codelist knows: the mapping line to add and, only for near spellings of a
known label, the closest codes (counts of rows, never a value of an identifying field)."""

from __future__ import annotations

import difflib
from typing import Any

from ..contract.codelists import DEFAULT_VALUE_ALIASES, ISO_3166_ALPHA2
from ..contract.nationalities import nationality_aliases
from ..util.engine import quote_ident
from .rules import FieldSpec, raw_column

UNKNOWN_VALUES_SHOWN = 20

# A suggestion names a code only for a near spelling of a known label (a typo, a missing space): closeness of
# spelling says nothing about meaning ("mensensmokkel", smuggling, is spelt like "seksueel" but is no form of
# exploitation), and a wrong code misclassifies people. Anything else is offered the field's unknown code.
SUGGEST_CUTOFF = 0.8
FALLBACK_CODES = {"form": "other_unknown", "gender": "unknown", "province": "unknown", "consent": "", "nationality": ""}
FALLBACK_REASON = {
    "form": "no known label is spelt like this value and codes are never guessed from spelling; map it to "
            "other_unknown only if it is exploitation of another or an unknown form; if it is not exploitation at "
            "all (smuggling, for instance), leave the row out of the export instead",
    "consent": "consent is never guessed from spelling: an empty code means "
               "unknown (no lawful basis, counted only as noisy counts); map it to \"true\" only if it records consent",
    "nationality": "no word or code of the BRP nationality table (Tabel 32) is spelt like this value; map it to the "
                   "country's ISO 3166-1 alpha-2 code, or to an empty code for unknown",
}


def _suggest(fname: str, value: str, pool: dict[str, str]) -> tuple[list[str], str | None]:
    """(closest codes, reason when none is close): codes only for near spellings of a known label or code."""
    # Consent is never suggested from spelling: "true" would release a person's record.
    near = [] if fname == "consent" else difflib.get_close_matches(value.lower(), list(pool), n=3, cutoff=SUGGEST_CUTOFF)
    codes = list(dict.fromkeys(pool[x] for x in near))
    if codes:
        return codes, None
    fallback = FALLBACK_CODES.get(fname, "")
    reason = FALLBACK_REASON.get(fname) or (
        f"no known label is spelt like this value; {fallback or 'an empty code'} means unknown"
    )
    return [fallback], reason


def unknown_values(con, specs: list[FieldSpec], mapping) -> dict[str, list[dict[str, Any]]]:
    """Distinct unmapped values of codelist fields and nationality (not identifying), with a suggestion."""
    result: dict[str, list[dict[str, Any]]] = {}
    for spec in specs:
        if spec.identifying or spec.name not in mapping.columns:
            continue
        if spec.name == "nationality":
            # The typed value is upper-cased; show the export's own spelling, as the mapping line must match it.
            source = f"r.{quote_ident(mapping.columns[spec.name])}"
            iso = sorted(ISO_3166_ALPHA2)
            rows = con.execute(
                f"""
                SELECT TRIM({source}) AS value, count(*) AS n FROM typed AS t JOIN export_raw AS r USING (__row)
                WHERE t.__violations <> 0 AND t.nationality IS NOT NULL AND t.nationality NOT IN (SELECT unnest($allowed))
                GROUP BY value ORDER BY n DESC, value LIMIT {UNKNOWN_VALUES_SHOWN}
                """,
                {"allowed": iso},
            ).fetchall()
            pool = {**{c.lower(): c for c in iso}, **{k: v for k, v in nationality_aliases().items() if v},
                    **{k: v for k, v in DEFAULT_VALUE_ALIASES["nationality"].items() if v}}
        elif spec.kind in ("code", "bool"):
            allowed = list(spec.codes) if spec.kind == "code" else ["true", "false"]
            raw = raw_column(spec)
            rows = con.execute(
                f"""
                SELECT {raw} AS value, count(*) AS n FROM typed
                WHERE __violations <> 0 AND {raw} IS NOT NULL AND {raw} NOT IN (SELECT unnest($allowed))
                GROUP BY value ORDER BY n DESC, value LIMIT {UNKNOWN_VALUES_SHOWN}
                """,
                {"allowed": allowed},
            ).fetchall()
            pool = {**{c.lower(): c for c in allowed}, **DEFAULT_VALUE_ALIASES.get(spec.name, {})}
        else:
            continue
        if not rows:
            continue
        entries = []
        for value, n in rows:
            shown = value[:40]
            suggestions, reason = _suggest(spec.name, value, pool)
            entry = {
                "value": shown,
                "rows": int(n),
                "closest_codes": suggestions if reason is None else [],
                "mapping_line": f'[values.{spec.name}] "{shown}" = "{suggestions[0]}"',
            }
            if reason is not None:
                entry["reason"] = reason
            entries.append(entry)
        result[spec.name] = entries
    return result
