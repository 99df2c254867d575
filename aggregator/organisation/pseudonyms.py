"""Pseudonyms: HMAC-SHA256 over normalised identifying fields with the organisations' shared linkage key,
computed in DuckDB (two sha256 calls over the RFC 2104 pads), with a Python twin for tests and by-hand checks.

One normalisation of names (pseudonym version 2, `PSEUDONYM_VERSION`), the same in SQL and Python:
NFC; then per character: compatibility decomposition (NFKD), full Unicode case folding (Python `casefold`),
NFKD again, format characters (category Cf, e.g. zero-width) dropped, whitespace and dashes (category Pd, e.g. a
hyphen) made a space; then NFC; runs of spaces collapsed to one; trimmed. So "Jansen", " JANSEN ", "Ｊａｎｓｅｎ",
"jan\u200bsen" are one name and "de  Vries", "de\tVries", "de-Vries" are another.

DuckDB has no NFKC or case folding, so the per-character step is a macro (`pseudonym_fold`): ASCII text is folded by
plain SQL, other text through a lookup built from Python's `unicodedata` for just the characters the texts hold;
`nfc_normalize`, the collapsing and the trimming are DuckDB's own. `install_normalisation(con, texts_sql)` puts the
macro on a connection before HMAC_SQL is used.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import unicodedata
from functools import lru_cache

PSEUDONYM_VERSION = 2  # 1: trimmed, NFC, lower-cased; 2: the normalisation above
_SKIP_CATEGORIES = frozenset({"Cs", "Cn", "Co"})  # surrogates, unassigned, private use: left as they are


def hmac_pads(key: bytes) -> tuple[bytes, bytes]:
    """HMAC-SHA256 inner and outer padded keys (RFC 2104), so DuckDB can compute HMAC with two sha256 calls."""
    if len(key) > 64:
        key = hashlib.sha256(key).digest()
    key = key.ljust(64, b"\0")
    return bytes(b ^ 0x36 for b in key), bytes(b ^ 0x5C for b in key)


def fold_char(char: str) -> str:
    """The per-character step: NFKD, case folding, NFKD (to a fixed point); Cf dropped; whitespace and dashes a space."""
    text = char
    for _ in range(4):
        folded = unicodedata.normalize("NFKD", unicodedata.normalize("NFKD", text).casefold())
        if folded == text:
            break
        text = folded
    out = []
    for ch in text:
        category = unicodedata.category(ch)
        if category == "Cf":
            continue
        out.append(" " if ch.isspace() or category in ("Zs", "Pd") else ch)
    return "".join(out)


def normalise_name(value: object) -> str:
    """Python twin of the SQL normalisation of one field (see the module docstring)."""
    text = unicodedata.normalize("NFC", str(value))
    text = unicodedata.normalize("NFC", "".join(fold_char(ch) for ch in text))
    return re.sub(" +", " ", text).strip(" ")


def fold_entries(chars) -> dict[str, str]:
    """character -> replacement, for those of `chars` whose per-character step changes them after NFC.

    A character whose step gives a canonically equivalent text (NFC brings it back) is left out: the final NFC gives
    the same result either way."""
    entries = {}
    for ch in chars:
        if unicodedata.category(ch) in _SKIP_CATEGORIES:
            continue
        folded = fold_char(ch)
        if unicodedata.normalize("NFC", folded) != ch:
            entries[ch] = folded
    return entries


@lru_cache(maxsize=1)
def fold_table() -> tuple[list[str], list[str]]:
    """(characters, replacements) of the whole per-character step over Unicode; for tests and by-hand checks."""
    entries = fold_entries(chr(code) for code in range(0x110000))
    return list(entries), list(entries.values())


# ASCII text needs no table: its step only lower-cases and turns whitespace and the hyphen into a space.
ASCII_SPACES = "\t\n\x0b\x0c\r\x1c\x1d\x1e\x1f-"
ASCII_FOLDED = ASCII_SPACES + "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
ASCII_SPACES_CLASS = r"[\t\n\x0b\x0c\r\x1c-\x1f-]"  # the same characters, as an RE2 class


def _sql_text(text: str) -> str:
    """A string literal for any text, control characters included (chr() for every character outside printable ASCII)."""
    return " || ".join(f"chr({ord(c)})" if not (" " <= c <= "~") or c == "'" else f"'{c}'" for c in text) or "''"


def install_normalisation(con, texts_sql: str, params: dict | None = None) -> None:
    """Put the macro `pseudonym_fold` on this connection, able to fold every text `texts_sql` returns.

    ASCII text (nearly every name) is folded by scalar SQL; other text character by character through a lookup of
    only the non-ASCII characters that occur in `texts_sql` (one text column), so no table of all Unicode is built
    and no row is looked up one by one. Call it again when other texts will be folded."""
    found = con.execute(
        f"""
        SELECT DISTINCT unnest(string_split(v, '')) FROM (
            SELECT nfc_normalize(CAST(v AS VARCHAR)) AS v FROM ({texts_sql}) AS s(v)
        ) WHERE strlen(v) <> length(v)
        """,
        params or {},
    ).fetchall()
    # ASCII characters inside non-ASCII text go through the same lookup (lower() is not case folding elsewhere).
    entries = fold_entries([*ASCII_FOLDED, *(ch for (ch,) in found if ch and ord(ch) > 0x7F)])
    lookup = ", ".join(f"{_sql_text(c)}: {_sql_text(r)}" for c, r in sorted(entries.items()))
    per_char = f"coalesce(MAP {{{lookup}}}[c], c)" if entries else "c"
    con.execute(
        f"""
        CREATE OR REPLACE TEMP MACRO pseudonym_fold(x) AS coalesce(CASE
            WHEN strlen(x) = length(x) THEN CASE  -- translate() is costly: only for the text that needs it
                WHEN regexp_matches(x, '{ASCII_SPACES_CLASS}')
                THEN translate(lower(x), {_sql_text(ASCII_SPACES)}, '{" " * len(ASCII_SPACES)}')
                ELSE lower(x) END
            ELSE array_to_string(list_transform(string_split(x, ''), lambda c: {per_char}), '')
        END, '')
        """
    )


def normalised_sql(expression: str) -> str:
    """The normalisation of one text expression, as SQL (needs install_normalisation over its texts first)."""
    folded = f"nfc_normalize(pseudonym_fold(nfc_normalize({expression})))"
    # collapse and trim only text that has spaces to collapse or trim (few names do)
    spaced = "contains(f, '  ') OR starts_with(f, ' ') OR ends_with(f, ' ')"
    return f"list_transform([{folded}], lambda f: CASE WHEN {spaced} THEN trim(regexp_replace(f, ' +', ' ', 'g'), ' ') ELSE f END)[1]"


def _normalised_sql(column: str) -> str:
    """Length-prefixed normalised text (or '-' when missing), as SQL.

    Most names are ASCII with no character the step turns into a space and no spaces to collapse or trim: their
    normalisation is lower(), and their length in bytes is their length, so they skip the general path (which costs
    about twice as much)."""
    text = f"CAST({column} AS VARCHAR)"
    norm = normalised_sql(text)
    # the one-element list binds the normalised text to n, so it is computed once, not once for its length and again
    prefixed = f"list_transform([{norm}], lambda n: CAST(octet_length(encode(n)) AS VARCHAR) || ':' || n)[1]"
    plain = f"strlen({text}) = length({text}) AND NOT regexp_matches({text}, '{ASCII_SPACES_CLASS}|^ | $|  ')"
    return (f"CASE WHEN {column} IS NULL THEN '-' "
            f"WHEN {plain} THEN CAST(strlen({text}) AS VARCHAR) || ':' || lower({text}) ELSE {prefixed} END")


def _normalised_date_sql(column: str) -> str:
    """_normalised_sql of a DATE: its ISO text with the hyphens turned into spaces by the step ('10:1990 05 17'),
    written out for the four-digit years every valid export has (the general path took half the time of all the
    normalisation)."""
    return (f"CASE WHEN {column} IS NULL THEN '-' WHEN year({column}) BETWEEN 1000 AND 9999 "
            f"THEN '10:' || replace(CAST({column} AS VARCHAR), '-', ' ') ELSE {_normalised_sql(column)} END")


# Linkable only with a family name AND a date of birth: a partial identity (a birth date alone) would link strangers.
# A person is linked across organisations by family name, given names and date of birth; without a family name or a
# date of birth the pseudonym is local to the organisation (the person cannot be recognised elsewhere).
LINKABLE_SQL = "(family_name IS NOT NULL AND date_of_birth IS NOT NULL)"
PSEUDONYM_MESSAGE_SQL = f"""
CASE
  WHEN NOT {LINKABLE_SQL}
  THEN 'local|' || CAST(octet_length(encode($org_id)) AS VARCHAR) || ':' || $org_id
       || '|' || CAST(octet_length(encode(person_id)) AS VARCHAR) || ':' || person_id
  ELSE 'person{PSEUDONYM_VERSION}|' || {_normalised_sql('family_name')} || '|' || {_normalised_sql('given_names')}
       || '|' || {_normalised_date_sql('date_of_birth')}
END
"""


def hmac_sql(message_sql: str) -> str:
    """SQL of HMAC-SHA256 of a text, with the padded keys as parameters $ipad and $opad (hmac_pads)."""
    return f"sha256($opad || unhex(sha256($ipad || encode({message_sql}))))"


HMAC_SQL = hmac_sql(PSEUDONYM_MESSAGE_SQL)


def pseudonym(key: bytes, org_id: str, person_id: str, family_name: str | None, given_names: str | None, date_of_birth: dt.date | None) -> str:
    """Python twin of the SQL pseudonym, for tests and for people who want to check one by hand."""
    import hmac

    def norm(value: object) -> str:
        if value is None:
            return "-"
        text = normalise_name(value)
        return f"{len(text.encode('utf-8'))}:{text}"

    if family_name is None or date_of_birth is None:
        message = f"local|{len(org_id.encode())}:{org_id}|{len(person_id.encode())}:{person_id}"
    else:
        message = f"person{PSEUDONYM_VERSION}|{norm(family_name)}|{norm(given_names)}|{norm(date_of_birth)}"
    return hmac.new(key, message.encode("utf-8"), hashlib.sha256).hexdigest()
