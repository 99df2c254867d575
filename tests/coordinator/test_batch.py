"""batch.py: what a merge stores equals what the bundles carry, value for value, through the joined columns."""

from __future__ import annotations

import math
import random

import duckdb
import pytest

from aggregator.coordinator import batch
from aggregator.coordinator.merge import merge_bundles
from aggregator.coordinator.store import open_store
from tests import bundlefactory as bf


def test_a_float_repr_reads_back_in_duckdb_as_the_same_double():
    rng = random.Random(5)
    values = [0.1, 1 / 3, 2 / 3, 5e-324, 2.0**-1074, 1e-7, 1e19, 1e21, 1.7976931348623157e308, 123456789.12345679,
              float.fromhex("0x1.fffffffffffffp-1"), 97.8335032637296, 7.000000000000009]
    values += [rng.uniform(0, 1e9) for _ in range(500)] + [math.ldexp(rng.random(), rng.randint(-1000, 1000))
                                                            for _ in range(500)]
    text = batch._joined([repr(v) for v in values])
    back = duckdb.connect().execute(f"SELECT {batch._SPLIT.format('$t')}::DOUBLE", {"t": text}).fetchall()
    assert [row[0] for row in back] == values


def test_joined_refuses_the_separator_and_an_empty_column():
    assert batch._joined(["a", "b"]) == "a\x1fb"
    with pytest.raises(ValueError):
        batch._joined(["a\x1fb"])
    with pytest.raises(ValueError):
        batch._joined([])


def test_stored_rows_equal_the_bundles(tmp_path):
    db = tmp_path / "national.duckdb"
    shelter, police = bf.new_org("shelter-a"), bf.new_org("police-b", "investigative")
    bf.register(db, shelter, police, cap="3")
    marginals = [bf.marginal(["form"], "1/3", fill=-7), bf.marginal(["gender", "province"], "0.7", fill=12),
                 bf.marginal(["form", "age_band", "gender", "nationality_group", "province"], "1/7", fill=1)]
    payloads = [
        bf.make_payload(shelter, records=[bf.record(i, form=["sexual", "labour"][i % 2]) for i in range(30)],
                        marginals=marginals),
        bf.make_payload(police, records=[bf.record(f"p{i}", basis="statutory") for i in range(3)]),
        bf.make_payload(shelter, period=2024, marginals=[bf.marginal(["age_band"], "2", fill=10**12)]),
    ]
    paths = [bf.write(tmp_path / "in", bf.sign(org, p)) for org, p in zip((shelter, police, shelter), payloads)]
    assert merge_bundles(db, paths).accepted == 3
    with open_store(db, write=False) as con:
        digest_of = {(o, p): d for d, o, p in con.execute("SELECT digest, org_id, period FROM bundles").fetchall()}
        for payload in payloads:
            digest = digest_of[(payload.organisation.id, payload.period)]
            records = con.execute(
                "SELECT pseudonym, basis, form, age_band, gender, nationality_group, province FROM records "
                "WHERE digest = ? ORDER BY rowid", [digest]).fetchall()
            assert records == [(r.pseudonym, r.basis, r.form.value, r.age_band.value, r.gender.value,
                                r.nationality_group.value, r.province.value) for r in payload.records]
            stored = con.execute(
                "SELECT marginal_index, dimensions, scale, variance, expected_error_95 FROM marginals "
                "WHERE digest = ? ORDER BY marginal_index", [digest]).fetchall()
            ms = payload.release.marginals if payload.release else []
            assert stored == [(i, m.dimensions, m.scale, m.variance, m.expected_error_95) for i, m in enumerate(ms)]
            cells = con.execute(
                "SELECT marginal_index, form, age_band, gender, nationality_group, province, count FROM noisy_cells "
                "WHERE digest = ? ORDER BY rowid", [digest]).fetchall()
            dims = ("form", "age_band", "gender", "nationality_group", "province")
            assert cells == [
                (i, *(c.key[m.dimensions.index(d)] if d in m.dimensions else None for d in dims), c.count)
                for i, m in enumerate(ms) for c in m.cells
            ]
