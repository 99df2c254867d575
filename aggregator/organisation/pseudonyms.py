"""Pseudonyms: HMAC-SHA256 over normalised identifying fields with the organisations' shared linkage key,
computed in DuckDB (two sha256 calls over the RFC 2104 pads), with a Python twin for tests and by-hand checks."""

from __future__ import annotations

import datetime as dt
import hashlib
import unicodedata


def hmac_pads(key: bytes) -> tuple[bytes, bytes]:
    """HMAC-SHA256 inner and outer padded keys (RFC 2104), so DuckDB can compute HMAC with two sha256 calls."""
    if len(key) > 64:
        key = hashlib.sha256(key).digest()
    key = key.ljust(64, b"\0")
    return bytes(b ^ 0x36 for b in key), bytes(b ^ 0x5C for b in key)


def _normalised_sql(column: str) -> str:
    """Length-prefixed NFC, lower-cased, trimmed text (or '-' when missing), as SQL."""
    norm = f"lower(nfc_normalize(trim(CAST({column} AS VARCHAR))))"
    return f"CASE WHEN {column} IS NULL THEN '-' ELSE CAST(octet_length(encode({norm})) AS VARCHAR) || ':' || {norm} END"


# Linkable only with a family name AND a date of birth: a partial identity (a birth date alone) would link strangers.
PSEUDONYM_MESSAGE_SQL = f"""
CASE
  WHEN family_name IS NULL OR date_of_birth IS NULL
  THEN 'local|' || CAST(octet_length(encode($org_id)) AS VARCHAR) || ':' || $org_id
       || '|' || CAST(octet_length(encode(person_id)) AS VARCHAR) || ':' || person_id
  ELSE 'person|' || {_normalised_sql('family_name')} || '|' || {_normalised_sql('given_names')}
       || '|' || {_normalised_sql('date_of_birth')}
END
"""
HMAC_SQL = f"sha256($opad || unhex(sha256($ipad || encode({PSEUDONYM_MESSAGE_SQL}))))"


def pseudonym(key: bytes, org_id: str, person_id: str, family_name: str | None, given_names: str | None, date_of_birth: dt.date | None) -> str:
    """Python twin of the SQL pseudonym, for tests and for people who want to check one by hand."""
    import hmac

    def norm(value: object) -> str:
        if value is None:
            return "-"
        text = unicodedata.normalize("NFC", str(value).strip()).lower()
        return f"{len(text.encode('utf-8'))}:{text}"

    if family_name is None or date_of_birth is None:
        message = f"local|{len(org_id.encode())}:{org_id}|{len(person_id.encode())}:{person_id}"
    else:
        message = f"person|{norm(family_name)}|{norm(given_names)}|{norm(date_of_birth)}"
    return hmac.new(key, message.encode("utf-8"), hashlib.sha256).hexdigest()
