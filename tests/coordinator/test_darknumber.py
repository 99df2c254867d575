"""coordinator/darknumber.py and `aggregator estimate`: the dark number from a stored, co-signed joint result.

The joint result here is made without running the parties (tests/coordinator/test_joint.py runs them): a synthetic
population with people no list knows is hashed into the plan's buckets exactly as the computation does, the
bucket-pattern counts get the two parties' noise (OpenDP's sampler, the plan's scales) and three party keys sign it.
"""

from __future__ import annotations

import datetime as dt
from fractions import Fraction

import numpy as np
import pytest
from typer.testing import CliRunner

from aggregator.cli import app, register_commands
from aggregator.coordinator.darknumber import NoDarkNumber, dark_number
from aggregator.coordinator.joint import register_plan, store_joint_result
from aggregator.joint.layout import MULTIPLICITY, MULTIPLICITY_SUFFIX, PATTERNS_SUFFIX
from aggregator.joint.noise import draw
from aggregator.joint.party import sign_result
from aggregator.joint.party_home import init_party
from aggregator.joint.plan import STRATA_GROUP, build_plan, party_ref_from_file

# Per stratum: people in all (seen or not) and each of the four lists' chance to know a person (independent lists,
# so the independence model is right and the estimate must find the truth).
TRUTH = {"stratum=minor": 1_500, "stratum=adult": 4_000}
CAPTURE = (0.25, 0.2, 0.15, 0.3)
DEADLINE = dt.datetime(2030, 1, 1, tzinfo=dt.timezone.utc)


def _store(tmp_path, *, lists="four", epsilon=Fraction(4)):
    homes = [init_party(tmp_path / f"p{i}", f"p{i}") for i in range(3)]
    parties = [party_ref_from_file(h.public_file) for h in homes]
    document = build_plan(2025, epsilon, parties, deadline=DEADLINE, prior_total=8_000, lists=lists,
                          strata=("age",) if lists else ())
    db = tmp_path / "national.duckdb"
    plan = register_plan(db, document)
    rng = np.random.default_rng(11)
    scales = plan.group_scales()
    counts = {c["name"]: 0 for c in document["cells"]}
    patterns, multiplicity = {}, {}
    for cell in plan.cells_of(STRATA_GROUP):
        name, m = cell["name"], int(cell["m"])
        seen = rng.random((TRUTH[name], len(CAPTURE))) < np.asarray(CAPTURE)
        masks = (seen * (2 ** np.arange(len(CAPTURE)))).sum(axis=1)
        masks = masks[masks > 0]
        buckets = np.zeros(m, dtype=np.int64)
        np.bitwise_or.at(buckets, rng.integers(0, m, size=len(masks)), masks)
        table = np.bincount(buckets, minlength=2 ** len(CAPTURE))
        b = scales[name + PATTERNS_SUFFIX]
        patterns[name] = [int(x) for x in table + np.asarray(draw([b] * len(table))) + np.asarray(draw([b] * len(table)))]
        b = scales[STRATA_GROUP]
        counts[name] = int(np.count_nonzero(buckets)) + sum(draw([b, b]))
        multiplicity[name] = {k: 0 for k in MULTIPLICITY}
        assert scales[name + MULTIPLICITY_SUFFIX] > 0
    result = {"counts": counts, "patterns": patterns, "multiplicity": multiplicity, "included": [],
              "excluded": {}, "bundles": []}
    signatures = [sign_result(result, str(h.signing_key), plan.digest) for h in homes]
    store_joint_result(db, plan.digest, result, signatures, [])
    return db


def test_each_stratum_gets_registered_an_estimated_total_and_an_interval_around_the_truth(tmp_path):
    db = _store(tmp_path)
    report = dark_number(db, 2025, n_bootstrap=200, seed=5)
    assert report.lists == ["police", "inspectorate", "care", "others"]
    rows = {row.stratum: row for row in report.rows}
    assert set(rows) == {"minor", "adult"}
    visible = 1 - np.prod([1 - p for p in CAPTURE])
    for key, truth in (("minor", 1_500), ("adult", 4_000)):
        row = rows[key]
        assert row.registered_lower <= row.registered <= row.registered_upper
        assert abs(row.registered - visible * truth) < 0.1 * truth
        assert row.lower <= row.estimate <= row.upper
        assert row.lower >= row.registered_lower
        half = (row.upper - row.lower) / 2
        # a 95% interval widened by half its width: missing the truth would be a ~4-sigma event
        assert row.lower - half <= truth <= row.upper + half
        assert abs(row.estimate - truth) < 0.15 * truth
        assert 0 < row.share_visible <= 1  # seen / total of the same fitted table
        assert row.share_visible == pytest.approx(row.registered / row.estimate, rel=0.1)
    assert any("closed population" in c for c in report.caveats)


def test_a_result_without_lists_is_refused_and_the_cli_says_why(tmp_path):
    db = _store(tmp_path, lists=None)
    with pytest.raises(NoDarkNumber):
        dark_number(db, 2025, n_bootstrap=0)
    register_commands()
    result = CliRunner().invoke(app, ["estimate", "--period", "2025", "--db", str(db)])
    assert result.exit_code == 1 and "no list overlaps" in result.output and "Traceback" not in result.output
    result = CliRunner().invoke(app, ["estimate", "--period", "2024", "--db", str(db)])
    assert result.exit_code == 1 and "no joint result" in result.output


def test_the_cli_prints_registered_and_estimated_per_stratum(tmp_path):
    db = _store(tmp_path)
    register_commands()
    result = CliRunner().invoke(app, ["estimate", "--period", "2025", "--bootstrap", "50", "--seed", "1",
                                      "--db", str(db)], terminal_width=160)
    assert result.exit_code == 0, result.output
    assert "minor" in result.output and "adult" in result.output and "Share visible" in result.output
    assert "closed population" in result.output
    json_result = CliRunner().invoke(app, ["estimate", "--period", "2025", "--bootstrap", "0", "--db", str(db),
                                           "--json"])
    assert json_result.exit_code == 0 and '"registered"' in json_result.output
