"""pyproject.toml: licence metadata that current setuptools accepts without a deprecation, and the data files."""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_licence_is_an_spdx_expression_with_a_setuptools_that_reads_it():
    data = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    # A table ({text = ...}) makes setuptools 77+ print a deprecation on every `pip install -e .` (make demo).
    assert data["project"]["license"] == "EUPL-1.2"
    assert "License ::" not in " ".join(data["project"].get("classifiers", []))  # forbidden beside an SPDX licence
    (setuptools,) = [r for r in data["build-system"]["requires"] if r.startswith("setuptools")]
    assert setuptools == "setuptools>=77"


def test_the_nationality_table_ships_in_the_package():
    data = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert "data/*" in data["tool"]["setuptools"]["package-data"]["aggregator.contract"]
    assert (ROOT / "aggregator" / "contract" / "data" / "README.md").exists()
