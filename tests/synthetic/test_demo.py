"""The end-to-end demo: consent-only registration collapses, the hybrid release's interval covers what it counts."""

from __future__ import annotations

import json
from fractions import Fraction

import pytest
from typer.testing import CliRunner

from aggregator.cli import app
from aggregator.synthetic.demo import MARKER, run_demo
from aggregator.errors import UsageError

SCALE = 0.2
ROW_KEYS = {"key", "label", "truth", "consent_only", "estimate", "se", "lower", "upper", "covered", "release_target",
            "target_covered", "joint"}
RESULT_KEYS = {"out", "year", "seed", "scale", "epsilon", "workload", "lang", "organisations", "bundles_accepted", "bundles_refused",
               "individual_records", "linked_people", "rows", "files", "seconds", "notes", "dark_number"}
DARK_KEYS = {"stratum", "registered", "registered_lower", "registered_upper", "known", "estimate", "lower", "upper",
             "true_total", "covered", "share_visible", "model", "warnings"}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """One real run at a small scale (about 25 s: 52 organisations each validate, release and sign)."""
    out = tmp_path_factory.mktemp("demo") / "out"
    return run_demo(out, year=2025, seed=7, epsilon=Fraction(1), scale=SCALE, workers=2, lang="nl", lists="four",
                    strata=("age", "origin")), out


def test_consent_only_is_far_below_the_truth(runs):
    result, _ = runs
    total = result.row("total")
    assert total.truth > 0
    assert total.consent_only < 0.4 * total.truth
    assert result.row("minors").consent_only < 0.4 * result.row("minors").truth
    for key in ("sexual", "labour"):
        assert result.row(key).consent_only < 0.4 * result.row(key).truth


def test_every_organisation_submits_and_merges(runs):
    result, _ = runs
    assert result.organisations == 52
    assert result.bundles_accepted == 52 and result.bundles_refused == 0
    # the one note: the help line's nameless people, whom the joint interval's linkage bounds cover
    (note,) = result.notes
    assert note.startswith("joint release 2025: about") and "without a name or date of birth" in note
    assert [r.key for r in result.rows] == ["sexual", "labour", "criminal", "organ_removal", "other_unknown",
                                           "minors", "total"]
    assert sum(r.truth for r in result.rows[:5]) == result.row("total").truth


def test_hybrid_total_interval_covers_what_the_release_counts(runs):
    """The interval is built around the right value with the right width: a single run can miss its 95% interval
    (coverage is measured over many seeds in benchmarks/utility.py), but not by 4 standard errors (p < 1e-4)."""
    result, _ = runs
    total = result.row("total")
    assert total.lower < total.estimate < total.upper
    # bounded_interval rounds each end outward to a whole person: the width is 2 z se plus less than one per end
    # (se is shown to 2 decimals, so allow its rounding: 2 z 0.005 < 0.02)
    assert -0.02 <= total.upper - total.lower - 2 * 1.96 * total.se < 2.02
    for row in result.rows:
        assert abs(row.estimate - row.release_target) < 4 * row.se, row


def test_hybrid_recovers_far_more_than_consent_only(runs):
    result, _ = runs
    assert result.row("total").lower > 2 * result.row("total").consent_only
    for key in ("total", "sexual", "labour"):
        row = result.row(key)
        assert abs(row.estimate - row.truth) < abs(row.consent_only - row.truth), row


def test_release_target_double_counts_people_known_to_several_organisations(runs):
    """Honest limit (docs/figures.md; SECURITY.md): a person without consent at two organisations is counted twice.
    The truth sits below the release target by that double counting - visible, not hidden."""
    result, _ = runs
    total = result.row("total")
    assert total.release_target > total.truth
    assert total.release_target >= total.consent_only



def test_cli_json_has_stable_keys(runs, monkeypatch, tmp_path):
    """The CLI passes its options to the library and prints the result's keys (the run itself is the fixture's)."""
    import aggregator.cli.demo  # noqa: F401  registers the command
    import aggregator.synthetic.demo

    result, _ = runs
    calls = []

    def fake(out, **kwargs):
        calls.append((out, kwargs))
        return result

    monkeypatch.setattr(aggregator.synthetic.demo, "run_demo", fake)
    cli = CliRunner().invoke(app, ["demo", "--out", str(tmp_path / "o"), "--scale", str(SCALE), "--seed", "7",
                                   "--epsilon", "1.0", "--json", "--lang", "nl"])
    assert cli.exit_code == 0, cli.output
    assert calls[0][1]["workload"] == "monitor"
    assert calls[0][1]["epsilon"] == Fraction(1) and calls[0][1]["lang"] == "nl" and calls[0][1]["seed"] == 7
    assert calls[0][1]["lists"] == "four" and calls[0][1]["strata"] == ("age", "origin")  # the dark number is on
    data = json.loads(cli.stdout)
    assert set(data) == RESULT_KEYS
    assert data["lang"] == "nl" and data["epsilon"] == "1"
    assert [set(r) for r in data["rows"]] == [ROW_KEYS] * 7
    for row in data["rows"]:  # each row carries the joint release beside the per-organisation estimate
        assert set(row["joint"]) == {"estimate", "lower", "upper", "covered", "target", "target_covered"}
        assert row["joint"]["lower"] <= row["joint"]["estimate"] <= row["joint"]["upper"]
    assert data["rows"][-1]["label"] == "Totaal"
    assert data["rows"][-1]["truth"] == result.row("total").truth
    assert [set(r) for r in data["dark_number"]] == [DARK_KEYS] * 4


def test_the_dark_number_stands_beside_the_synthetic_truth_of_every_stratum(runs):
    result, out = runs
    manifest = json.loads((out / "nation" / "nation.json").read_text(encoding="utf-8"))
    rows = {r["stratum"]: r for r in result.dark_number}
    assert set(rows) == {"minor, dutch", "minor, non-dutch", "adult, dutch", "adult, non-dutch"}
    # the truth per stratum adds up to the nation: everyone known, and everyone including the unseen
    assert sum(r["known"] for r in rows.values()) == manifest["totals"]["truth"]
    assert sum(r["true_total"] for r in rows.values()) == manifest["totals"]["true_total"]
    for row in rows.values():
        assert row["true_total"] > row["known"] > 0  # every stratum has victims no organisation knows
        assert row["registered_lower"] <= row["registered"] <= row["registered_upper"]
        if row["estimate"] is not None and row["lower"] is not None:
            assert row["registered_lower"] <= row["lower"] <= row["estimate"] <= row["upper"]
            assert row["covered"] == (row["lower"] <= row["true_total"] <= row["upper"])
            assert 0 < row["share_visible"] <= 1
        else:
            assert row["warnings"], "a stratum without an estimate says why"


def test_files_are_written(runs):
    result, out = runs
    assert (out / MARKER).is_file()
    csv_text = (out / "national.csv").read_bytes().decode("utf-8-sig")
    assert "Totaal" in csv_text and "=" not in csv_text.splitlines()[0]
    assert len(list((out / "bundles").iterdir())) == 52
    assert (out / "linkage.key").stat().st_mode & 0o077 == 0
    html = (out / "report.html").read_text(encoding="utf-8")
    assert "Donker getal" in html  # the report's dark-number section (Dutch run)
    estimated = [r["stratum"] for r in result.dark_number if r["estimate"] is not None and r["lower"] is not None]
    assert ('id="chart-dark-2025"' in html) == bool(estimated)
    from aggregator.coordinator.report import fmt_int

    for row in result.dark_number:
        if row["estimate"] is not None and row["lower"] is not None:
            # the report charts the very estimate the demo printed (computed once, not re-bootstrapped)
            assert row["stratum"] in html
            assert f"{fmt_int(row['lower'], 'nl')} – {fmt_int(row['upper'], 'nl')}" in html


def test_rerun_clears_only_what_a_demo_made(tmp_path):
    from aggregator.synthetic.demo import DEMO_ENTRIES, _prepare

    _prepare(tmp_path)  # an empty folder is fine
    for name in DEMO_ENTRIES:
        if name != MARKER:
            (tmp_path / name).mkdir() if "." not in name else (tmp_path / name).write_text("old")
    (tmp_path / "bundles" / "stale.bundle").write_text("old")
    (tmp_path / "mine.txt").write_text("keep me")
    _prepare(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([MARKER, "mine.txt"])
    assert (tmp_path / "mine.txt").read_text() == "keep me"


def test_refuses_a_folder_it_did_not_make(tmp_path):
    (tmp_path / "precious.txt").write_text("keep me")
    with pytest.raises(UsageError):
        run_demo(tmp_path, scale=SCALE)
    assert (tmp_path / "precious.txt").read_text() == "keep me"
    assert list(tmp_path.iterdir()) == [tmp_path / "precious.txt"]


def test_cli_refuses_bad_epsilon(tmp_path):
    import aggregator.cli.demo  # noqa: F401

    cli = CliRunner().invoke(app, ["demo", "--out", str(tmp_path / "x"), "--epsilon", "nan", "--json"])
    assert cli.exit_code == 2
    assert not (tmp_path / "x").exists()
