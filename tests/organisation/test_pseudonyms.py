"""One normalisation of names for pseudonyms (issue 15, item 4): the SQL and its Python twin agree, and the
variants one person's name arrives in (spacing, tabs, zero-width characters, full-width letters, hyphens, case,
composed or decomposed accents) give one pseudonym."""

from __future__ import annotations

import datetime as dt
import unicodedata

import duckdb
import pytest
from hypothesis import example, given, settings, strategies as st

from aggregator.organisation import pseudonyms
from aggregator.organisation.pseudonyms import (
    HMAC_SQL, hmac_pads, install_normalisation, normalise_name, normalised_sql, pseudonym,
)

KEY = b"test-linkage-key-0123456789"
DOB = dt.date(1990, 1, 1)

# (variant, canonical) pairs: each variant must give the same pseudonym as its canonical spelling
VARIANTS = [
    ("de  Vries", "de vries"),  # double inner space
    ("de   Vries", "de vries"),  # a longer run
    ("de\tVries", "de vries"),  # tab
    ("de\u00a0Vries", "de vries"),  # no-break space
    ("de-Vries", "de vries"),  # hyphen instead of a space
    ("de\u2010Vries", "de vries"),  # Unicode hyphen
    ("de \u2013 Vries", "de vries"),  # en dash between spaces
    ("Jan\u200bsen", "jansen"),  # zero-width space
    ("\ufeffJansen\u200d", "jansen"),  # BOM and zero-width joiner
    ("Ｊａｎｓｅｎ", "jansen"),  # full-width letters
    ("JANSEN", "jansen"),
    ("  Jansen \n", "jansen"),
    ("Stra\u00dfe", "strasse"),  # full case folding: sharp s
    ("STRASSE", "strasse"),
    ("E\u0301lsa", "\u00e9lsa"),  # decomposed accent
    ("\u00c9LSA", "\u00e9lsa"),
    ("\ufb01lip", "filip"),  # ligature
    ("\u039f\u0394\u03a5\u03a3\u03a3\u0395\u03a5\u03a3", "\u03bf\u03b4\u03c5\u03c3\u03c3\u03b5\u03c5\u03c3"),  # final sigma
]

NAME_ALPHABET = st.characters(
    blacklist_categories=("Cs", "Cn", "Co"), blacklist_characters="\x00"
)
NAMES = st.one_of(
    st.text(NAME_ALPHABET, max_size=24),
    st.lists(st.sampled_from([v for pair in VARIANTS for v in pair] + [" ", "\t", "-", "\u200b", "\u0301", "\u0345"]),
             max_size=6).map("".join),
)


def _sql_normalise(texts: list[str], expression: str | None = None) -> list[str]:
    con = duckdb.connect()
    try:
        install_normalisation(con, "SELECT unnest($texts)", {"texts": texts})
        expr = expression or normalised_sql("t")
        rows = con.execute(
            f"SELECT {expr} FROM (SELECT unnest($texts) AS t, generate_subscripts($texts, 1) AS i) ORDER BY i",
            {"texts": texts},
        ).fetchall()
        return [r[0] for r in rows]
    finally:
        con.close()


def _sql_pseudonyms(people: list[tuple[str, str | None, dt.date | None]]) -> list[str]:
    con = duckdb.connect()
    try:
        ipad, opad = hmac_pads(KEY)
        con.execute("CREATE TEMP TABLE t (i INTEGER, person_id VARCHAR, family_name VARCHAR, given_names VARCHAR, "
                    "date_of_birth DATE)")
        con.executemany("INSERT INTO t VALUES (?, ?, ?, ?, ?)",
                        [[i, f"P{i}", f, g, d] for i, (f, g, d) in enumerate(people)])
        install_normalisation(con, "SELECT family_name FROM t UNION ALL SELECT given_names FROM t")
        rows = con.execute(f"SELECT {HMAC_SQL} FROM t ORDER BY i",
                           {"ipad": ipad, "opad": opad, "org_id": "org-a"}).fetchall()
        return [r[0] for r in rows]
    finally:
        con.close()


def test_known_variants_normalise_to_one_name_in_python_and_sql():
    variants = [v for v, _ in VARIANTS]
    canonical = [c for _, c in VARIANTS]
    assert [normalise_name(v) for v in variants] == [normalise_name(c) for c in canonical]
    assert _sql_normalise(variants) == [normalise_name(c) for c in canonical]


def test_known_variants_give_one_pseudonym_in_sql_and_python():
    people = [(v, "Eva", DOB) for v, _ in VARIANTS] + [(c, "eva", DOB) for _, c in VARIANTS]
    sql = _sql_pseudonyms(people)
    python = [pseudonym(KEY, "org-a", f"P{i}", f, g, d) for i, (f, g, d) in enumerate(people)]
    assert sql == python
    n = len(VARIANTS)
    assert sql[:n] == sql[n:]
    assert len(set(sql[:n])) == len({c for _, c in VARIANTS})  # and different names stay different


@settings(max_examples=150, deadline=None)
@given(st.lists(NAMES, min_size=1, max_size=20))
@example(["\u0300\u0345", "e\u0345\u0301", "\u0345", "\u1e9e", "\u0130stanbul", "\u2163"])  # order-sensitive folds
def test_sql_and_python_normalisation_agree_on_unicode_names(texts):
    assert _sql_normalise(texts) == [normalise_name(t) for t in texts]


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(NAMES.filter(bool), st.one_of(st.none(), NAMES)), min_size=1, max_size=8))
def test_sql_and_python_pseudonyms_agree_on_unicode_names(names):
    people = [(f, g, DOB) for f, g in names]
    python = [pseudonym(KEY, "org-a", f"P{i}", f, g, d) for i, (f, g, d) in enumerate(people)]
    assert _sql_pseudonyms(people) == python


@pytest.mark.parametrize("break_", ["drop nfc", "drop fold", "no collapse"])
def test_the_agreement_check_catches_a_sql_that_drops_part_of_the_normalisation(break_):
    """A deliberate break of the SQL (no Unicode normalisation, no folding table, no collapsing) must be caught by
    the same comparison the tests above run."""
    expr = normalised_sql("t")
    broken = {
        "drop nfc": expr.replace("nfc_normalize(", "("),
        "drop fold": expr.replace("pseudonym_fold(", "("),
        "no collapse": expr.replace("' +'", "'  '"),  # only pairs of spaces: a run of three stays two
    }[break_]
    assert broken != expr
    texts = [v for v, _ in VARIANTS] + ["E\u0301lsa", "\u0065\u0301\u0323"]
    assert _sql_normalise(texts, broken) != [normalise_name(t) for t in texts]


def test_fold_table_covers_what_nfc_alone_misses():
    chars, replacements = pseudonyms.fold_table()
    table = dict(zip(chars, replacements))
    assert table["Ｊ"] == "j" and table["\u200b"] == "" and table["-"] == " " and table["\t"] == " "
    assert "\u00e9" not in table  # NFC brings its decomposition back: left to nfc_normalize
    assert all(unicodedata.normalize("NFC", r) != c for c, r in table.items())


def test_every_ascii_character_folds_in_sql_as_in_python_alone_and_beside_other_text():
    """ASCII text takes the scalar path, mixed text the lookup: both must give Python's normalisation."""
    ascii_chars = [chr(c) for c in range(1, 128)]
    texts = ascii_chars + [f"A{c}\u00c9b" for c in ascii_chars] + ["".join(ascii_chars)]
    assert _sql_normalise(texts) == [normalise_name(t) for t in texts]


def test_dates_and_plain_names_on_the_fast_paths_give_the_python_pseudonym():
    """The SQL writes out the normalisation of four-digit-year dates and of plain ASCII names (pseudonyms.py:
    _normalised_date_sql, _normalised_sql); the years outside and names with a hyphen, a tab or odd spaces take the
    general path. Both must give exactly the Python twin's pseudonym."""
    dates = [dt.date(1, 1, 1), dt.date(999, 12, 31), dt.date(1000, 1, 1), dt.date(1900, 2, 28), dt.date(2024, 2, 29),
             dt.date(9999, 12, 31), None]
    names = ["jansen", "Jansen", "JANSEN", "de Vries", "van der Berg", "Jansen-Smit", " Jansen", "Jansen ",
             "de  Vries", "Jan\tsen", "O'Neill", "x", "Ünal", None]
    people = [(name, given, date) for name in names for given in ("Eva", "eva-marie", None) for date in dates]
    sql = _sql_pseudonyms(people)
    assert sql == [pseudonym(KEY, "org-a", f"P{i}", f, g, d) for i, (f, g, d) in enumerate(people)]
