"""CSV written for people (util/csvsafe.py): every text cell a spreadsheet would run as a formula is defused.
The dangerous first characters are listed here on their own, not imported from the module under test, so narrowing
the module's list (escaping only "=") fails this test."""

from __future__ import annotations

import csv
import io

import pytest

from aggregator.util.csvsafe import excel_safe, excel_safe_csv

# OWASP CSV injection: a cell starting with one of these is a formula (or becomes one) in Excel or LibreOffice
DANGEROUS = ["=", "+", "-", "@", "\t", "\r"]


@pytest.mark.parametrize("start", DANGEROUS, ids=repr)
def test_every_formula_start_is_defused(start):
    text = f"{start}HYPERLINK(\"http://example.invalid\")"
    assert excel_safe(text) == "'" + text
    data = excel_safe_csv(["h"], [[text]]).decode("utf-8-sig")
    (_, (cell,)) = list(csv.reader(io.StringIO(data)))
    assert cell == "'" + text and not cell.startswith(tuple(DANGEROUS))


@pytest.mark.parametrize("start", DANGEROUS, ids=repr)
def test_a_header_is_defused_too(start):
    data = excel_safe_csv([f"{start}1+1"], []).decode("utf-8-sig")
    assert next(csv.reader(io.StringIO(data))) == [f"'{start}1+1"]


def test_harmless_text_and_numbers_pass_unchanged():
    assert excel_safe("Jansen") == "Jansen" and excel_safe("a=b") == "a=b"
    assert excel_safe(-5) == -5 and excel_safe(1.5) == 1.5 and excel_safe(None) is None
