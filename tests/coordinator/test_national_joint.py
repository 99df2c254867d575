"""The national table with a joint result (issue 13): joint-covered cells show the consistent joint estimate, its
bounded 95% interval and the people of whom the cell knows individually; the joint tables add up; a period without
a plan keeps its per-organisation figures unchanged.

The joint result is made without running the parties (tests/coordinator/test_joint.py runs them): distinct people
per planned cell are hashed into the plan's buckets as the computation does, the counts get the two parties' noise
(OpenDP's sampler, the plan's scales) and three party keys sign the result.
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
import math
import random
from fractions import Fraction

import numpy as np
import pytest
from typer.testing import CliRunner

import aggregator.cli.coordinator  # noqa: F401  (registers the commands)
from aggregator.cli import app
from aggregator.contract.codelists import codes
from aggregator.coordinator.joint import register_plan, store_joint_result
from aggregator.coordinator.merge import merge_bundles
from aggregator.coordinator.national import national_table
from aggregator.joint.party import sign_result
from aggregator.joint.party_home import init_party
from aggregator.joint.plan import TOTAL, UNLINKED_PREFIX, build_plan, cell_name, party_ref_from_file
from tests import bundlefactory as bf

MONITOR = (["form", "age_band"], ["form", "nationality_group"], ["gender"], ["province"])
DEADLINE = dt.datetime(2030, 1, 1, tzinfo=dt.timezone.utc)
UNKNOWN_PEOPLE = 600  # people without a lawful basis anywhere: in the joint counts, never a record
DUPLICATED, LOCAL_ONLY = 40, 20  # of them: also known / only known under a local pseudonym (no name, no birth date)


def _people(prefix, n, rng, basis="consent"):
    return [bf.record(f"{prefix}-{i}", basis=basis, form=rng.choice(codes("form")),
                      age_band=rng.choice(codes("age_band")), gender=rng.choice(codes("gender")))
            for i in range(n)]


def _monitor(rng):
    return [bf.marginal(list(dims), "1/4", {key: rng.randint(-4, 30) for key in
                                              itertools.product(*(codes(d) for d in dims))}) for dims in MONITOR]


def _merge(db, *paths):
    result = merge_bundles(db, list(paths))
    assert result.refused == 0, result.as_dict()


def make_nation(tmp_path):
    """Two periods of three consent organisations on the default workload and a police force; returns (db, the
    2025 records by pseudonym)."""
    db = tmp_path / "national.duckdb"
    rng = random.Random(15)
    shelter = bf.new_org("shelter-a")
    care = bf.new_org("care-c", reporter_type="care_coordination")
    helpline = bf.new_org("help-b", reporter_type="help_line")
    police = bf.new_org("police-x", "investigative")
    bf.register(db, shelter, care, helpline, police, cap="2")
    records = {}
    for period in (2024, 2025):
        sent = {"s": _people(f"{period}-s", 12, rng), "c": _people(f"{period}-c", 7, rng),
                "p": _people(f"{period}-p", 20, rng, basis="statutory")}
        _merge(db,
               bf.bundle_file(tmp_path / "in", shelter, period=period, records=sent["s"], marginals=_monitor(rng)),
               bf.bundle_file(tmp_path / "in", care, period=period, records=sent["c"], marginals=_monitor(rng)),
               bf.bundle_file(tmp_path / "in", helpline, period=period, marginals=_monitor(rng)),
               bf.bundle_file(tmp_path / "in", police, period=period, records=sent["p"]))
        if period == 2025:
            records = {r.pseudonym: r for rs in sent.values() for r in rs}
    return db, records


def _noise(rng, scale):
    """One party's discrete Laplace draw (P(k) ~ exp(-|k| / scale)), seeded: the difference of two geometrics."""
    p = 1 - math.exp(-1 / scale)
    return int(rng.geometric(p) - rng.geometric(p))


def store_joint(db, tmp_path, records, *, seed=3, counts_override=None, epsilon=Fraction(1)):
    """A co-signed joint result for 2025 (total, form, age band): the recorded people plus UNKNOWN_PEOPLE others,
    hashed into the plan's buckets per cell, with the two parties' noise. Of the others, DUPLICATED are also known to
    a help line that exports no names (a second, local pseudonym) and LOCAL_ONLY are known only there: the buckets
    hold distinct pseudonyms and the "unlinked" cells the local ones. Returns the true distinct people per cell."""
    homes = [init_party(tmp_path / f"party{i}", f"p{i}") for i in range(3)]
    document = build_plan(2025, epsilon, [party_ref_from_file(h.public_file) for h in homes], deadline=DEADLINE,
                          prior_total=700)
    plan = register_plan(db, document)
    rng = np.random.default_rng(seed)
    people = [(r.form.value, r.age_band.value, "linked") for r in records.values()]
    local = ["linked"] * (UNKNOWN_PEOPLE - DUPLICATED - LOCAL_ONLY) + ["both"] * DUPLICATED + ["local"] * LOCAL_ONLY
    people += [(codes("form")[int(f)], codes("age_band")[int(a)], kind)
               for f, a, kind in zip(rng.choice(5, UNKNOWN_PEOPLE, p=[.45, .25, .2, .02, .08]),
                                     rng.choice(5, UNKNOWN_PEOPLE, p=[.08, .17, .25, .45, .05]), local)]
    truth, counts = {}, {}
    scales = plan.group_scales()
    for cell in document["cells"]:
        name, m = cell["name"], int(cell["m"])
        unlinked = name.startswith(UNLINKED_PREFIX)
        codes_of = dict(part.split("=") for part in name.removeprefix(UNLINKED_PREFIX).split(",") if "=" in part)
        members = [kind for f, a, kind in people
                   if all({"form": f, "age_band": a}[dim] == code for dim, code in codes_of.items())]
        pseudonyms = (sum(kind != "linked" for kind in members) if unlinked
                      else sum(kind != "local" for kind in members) + sum(kind != "linked" for kind in members))
        truth[name] = len(members)
        occupied = len(set(rng.integers(0, m, size=pseudonyms).tolist()))
        counts[name] = occupied + _noise(rng, scales[cell["group"]]) + _noise(rng, scales[cell["group"]])
    counts.update(counts_override or {})
    result = {"counts": counts, "included": [], "excluded": {}, "bundles": []}
    signatures = [sign_result(result, str(h.signing_key), plan.digest) for h in homes]
    store_joint_result(db, plan.digest, result, signatures, [])
    return truth


BREAKDOWNS = ([], ["form"], ["age_band"], ["gender"], ["form", "age_band"], ["reporter_type"])


def per_organisation_figures(db, period):
    """Every per-organisation figure of the period's tables (everything but the joint columns), as plain values."""
    out = []
    for by in BREAKDOWNS:
        table = national_table(db, period, by)
        for r in [*table.cells(period), table.total(period)]:
            out.append([by, r.dims, r.individual, r.noisy, r.estimate, round(r.se, 4), r.lower, r.upper,
                        r.raw_estimate, r.consistent, r.incomplete])
    return out


def digest(figures):
    import hashlib

    return hashlib.sha256(json.dumps(figures, sort_keys=True).encode("utf-8")).hexdigest()


# Per-organisation figures of make_nation's periods, computed by the code before the joint release entered the
# national table (commit 1027dec); a joint result must not change them.
BEFORE = {2024: "ac2f7d63053bd68ca1574343079b5317fcff8a696f3e5adeb30aae32a5b0f195",
          2025: "500c98ac77817ce5adc140bf52490a17b832340e8d7e85cf5bc0b5bb087f64dc"}


@pytest.fixture
def nation(tmp_path):
    return make_nation(tmp_path)


@pytest.fixture
def joint_nation(nation, tmp_path):
    db, records = nation
    truth = store_joint(db, tmp_path, records)
    return db, records, truth


def cli(*args, code=0):
    result = CliRunner().invoke(app, [str(a) for a in args])
    assert "Traceback" not in result.stdout + result.stderr
    assert result.exit_code == code, (result.stdout, result.stderr, result.exception)
    return result


def test_a_period_without_a_plan_keeps_its_per_organisation_figures(nation, tmp_path):
    db, records = nation
    store_joint(db, tmp_path, records)
    # 2024 has no plan: exactly today's figures, no joint column; 2025's per-organisation figures stay as well
    for period, expected in BEFORE.items():
        assert digest(per_organisation_figures(db, period)) == expected, period
    for by in (["form"], ["gender"]):
        both = national_table(db, None, by)
        assert all(r.joint is None for r in both.rows if r.period == 2024)
        assert both.total(2025).joint is not None
        assert not any("2024" in note for note in both.notes)


def test_each_joint_marginal_adds_up_to_the_one_joint_total(joint_nation):
    from aggregator.coordinator.national_joint import joint_release

    db, _, _ = joint_nation
    tables = joint_release(db, 2025)
    assert set(tables) == {(), ("form",), ("age_band",)}
    total = tables[()]
    for dims in (("form",), ("age_band",)):
        assert sum(tables[dims].wls) == pytest.approx(total.wls[0], abs=1e-6)  # the WLS fit adds up
        assert sum(tables[dims].post) == total.post[0]  # and so do the published integers
        # the variance of the sum of a marginal's cells (fitted covariance) is the variance of the total
        assert tables[dims].sum_of(tables[dims].keys)[1] == pytest.approx(total.variance[0], rel=1e-6)
    tables_shown = {tuple(by): national_table(db, 2025, by) for by in (["form"], ["age_band"], [], ["gender"])}
    joint_total = tables_shown[()].total(2025).joint
    for by, table in tables_shown.items():
        assert table.total(2025).joint == joint_total, by  # one joint total whatever the breakdown
        if by in (("form",), ("age_band",)):
            cells = table.cells(2025)
            assert sum(c.joint["estimate"] for c in cells) == joint_total["estimate"], by
            raw = sum(c.joint["raw_estimate"] for c in cells)
            # the cells' own linear counts did not add up: the consistency step made them
            assert abs(raw - joint_total["raw_estimate"]) > 1, by
    assert all(c.joint is None for c in tables_shown[("gender",)].cells(2025))


def test_the_joint_figures_stand_near_the_distinct_people_they_count(joint_nation):
    db, records, truth = joint_nation
    for by, dim in ((["form"], "form"), (["age_band"], "age_band")):
        table = national_table(db, 2025, by)
        for cell in table.cells(2025):
            true = truth[f"{dim}={cell.dims[dim]}"]
            half = (cell.joint["upper"] - cell.joint["lower"]) / 2
            assert cell.joint["lower"] - half <= true <= cell.joint["upper"] + half, cell  # a 95% interval + 50%
            assert cell.joint["known"] == cell.individual
    total = national_table(db, 2025, []).total(2025)
    assert total.joint["known"] == total.individual == len(records)
    assert total.joint["lower"] <= truth["total"] <= total.joint["upper"] + 10
    # linkage bounds: the raw count holds every local pseudonym, so it overcounts the people also known elsewhere;
    # the interval spans from all of them known elsewhere to none, and the estimate takes a quarter to be
    assert truth["total"] < total.joint["raw_lower"]
    assert total.joint["unlinked"] > 0
    assert total.joint["upper"] - total.joint["lower"] >= total.joint["unlinked"]
    assert total.joint["estimate"] < total.joint["raw_estimate"] - total.joint["unlinked"] / 8


def test_a_joint_interval_never_goes_below_the_people_known_individually(nation, tmp_path):
    db, records = nation
    # noise that put two cells' opened counts at nothing, although people in them are known individually
    store_joint(db, tmp_path, records, counts_override={"form=organ_removal": 0, "age_band=unknown": -3})
    seen = 0
    for by in (["form"], ["age_band"], []):
        table = national_table(db, 2025, by)
        for row in [*table.cells(2025), table.total(2025)]:
            j = row.joint
            assert j["known"] == row.individual
            assert j["known"] <= j["lower"] <= j["estimate"] <= j["upper"], (by, row.dims, j)
            assert j["lower"] == math.floor(j["lower"]) and j["upper"] == math.ceil(j["upper"])  # whole people
            assert j["se"] > 0 and j["upper"] > j["lower"]  # never zero-width while there is noise
            # with linkage bounds the interval reaches up from the floor to the distinct pseudonyms' upper bound
            assert j["upper"] - j["lower"] >= 1.96 * j.get("linked_se", j["se"]) - 1e-9, (by, row.dims, j)
            if j["raw_estimate"] < j["known"]:
                seen += 1
                assert j["lower"] == j["known"] <= j["estimate"]  # floored (the fit may lift the estimate)
    assert seen == 2  # both cut cells were checked
    for by in (["form"], ["age_band"]):  # and the floors still add up to the joint total
        table = national_table(db, 2025, by)
        assert sum(c.joint["estimate"] for c in table.cells(2025)) == table.total(2025).joint["estimate"]


def test_the_terminal_table_shows_the_joint_columns_within_80_columns(joint_nation, monkeypatch):
    db, _, _ = joint_nation
    monkeypatch.setenv("COLUMNS", "80")
    for by in ("form", "form,age_band", "reporter_type"):  # joint cells; only the joint total; long labels
        for lang in ("en", "nl"):
            out = cli("table", "--db", db, "--period", 2025, "--by", by, "--lang", lang).stdout
            assert "…" not in out and "..." not in out, (by, lang, out)
            assert max(len(line) for line in out.splitlines()) <= 80, (by, lang, out)
    table = national_table(db, 2025, ["form"])
    sexual = table.cells(2025)[0]
    out = cli("table", "--db", db, "--period", 2025, "--by", "form").stdout
    assert "Of whom" in out and "known" in out and "Joint" in out
    line = next(line for line in out.splitlines() if "Sexual" in line).split()
    j = sexual.joint
    # joint first: estimate, interval, of whom known; then the per-organisation noisy sum, estimate and interval
    assert line[2:] == [str(j["estimate"]), f"{j['lower']:.0f}-{j['upper']:.0f}", str(sexual.individual),
                        str(sexual.noisy), str(sexual.estimate), f"{sexual.lower:.0f}-{sexual.upper:.0f}"]
    out = cli("table", "--db", db, "--period", 2025, "--by", "gender").stdout
    total = next(line for line in out.splitlines() if "Total" in line).split()
    assert total[-2:] == [str(j) for j in (table.total(2025).joint["estimate"],)] + [
        f"{table.total(2025).joint['lower']:.0f}-{table.total(2025).joint['upper']:.0f}"]
    assert "only the total" in " ".join(out.split())


def test_csv_markdown_and_json_carry_the_joint_figures(joint_nation):
    db, _, _ = joint_nation
    table = national_table(db, 2025, ["age_band"])
    lines = cli("table", "--db", db, "--period", 2025, "--by", "age_band", "--format", "csv").stdout
    rows = [line.split(",") for line in lines.lstrip("\ufeff").splitlines()]
    assert rows[0][-5:] == ["Joint estimate (distinct people)", "Joint standard error", "Joint 95% lower",
                            "Joint 95% upper", "Of whom known individually"]
    for line, row in zip(rows[1:], [*table.cells(2025), table.total(2025)]):
        assert line[-5:] == [str(row.joint["estimate"]), str(round(row.joint["se"], 1)), str(row.joint["lower"]),
                             str(row.joint["upper"]), str(row.individual)]
    md = cli("table", "--db", db, "--period", 2025, "--by", "age_band", "--format", "md", "--lang", "nl").stdout
    assert "Van wie individueel bekend" in md.splitlines()[0]
    data = json.loads(cli("table", "--db", db, "--period", 2025, "--by", "age_band", "--json").stdout)
    joint = data["rows"][0]["joint"]
    assert {"estimate", "lower", "upper", "se", "known", "raw_estimate", "raw_lower", "raw_upper"} <= set(joint)


def test_the_table_names_organisations_the_joint_result_does_not_count(joint_nation):
    db, _, _ = joint_nation  # this made-up result was computed without any organisation's shares
    (note,) = [n for n in national_table(db, 2025, ["form"]).notes
               if n.startswith("joint release 2025") and "took no part" in n]
    assert "care-c, help-b, police-x, shelter-a took no part" in note
