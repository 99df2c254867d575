"""Fixtures shared by the suites: a coordinator store with organisations registered."""

from __future__ import annotations

import pytest

from tests import bundlefactory as bf


@pytest.fixture
def world(tmp_path):
    """A store with a shelter (consent) and a police force (statutory) registered: (db, shelter, police, folder)."""
    db = tmp_path / "national.duckdb"
    shelter = bf.new_org("shelter-a")
    police = bf.new_org("police-x", "investigative")
    bf.register(db, shelter)
    bf.register(db, police)
    return db, shelter, police, tmp_path / "in"
