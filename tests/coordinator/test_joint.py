"""coordinator/joint.py: plans, the co-signed joint result, one computation per plan, and the audit's replay."""

from __future__ import annotations

import copy
import json
import shutil
from fractions import Fraction

import pytest

from aggregator.auditor.audit import audit_store
from aggregator.coordinator.joint import (
    JointRefused,
    joint_cell,
    joint_estimates,
    linear_count,
    register_plan,
    store_joint_result,
)
from aggregator.coordinator.merge import merge_bundles
from aggregator.coordinator.store import open_store
from aggregator.synthetic.demo import DB_FILE, PLAN_FILE, run_demo

SCALE = 0.1


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """One small synthetic nation run with the joint path (three local parties)."""
    out = tmp_path_factory.mktemp("joint-demo")
    result = run_demo(out, year=2025, seed=7, epsilon=Fraction(1), scale=SCALE, workers=2)
    return result, out


def _copy(demo, tmp_path):
    """A private copy of the demo's store and archive, for tests that change it."""
    _, out = demo
    for name in (DB_FILE, "national.archive"):
        src = out / name
        (shutil.copytree if src.is_dir() else shutil.copy)(src, tmp_path / name)
    return tmp_path / DB_FILE


def _stored(db):
    with open_store(db, write=False) as con:
        plan, result, signatures, bundles = con.execute(
            "SELECT plan, result, signatures, bundles FROM joint_results").fetchone()
    return plan, json.loads(result), json.loads(signatures), json.loads(bundles)


def test_every_organisation_takes_part_and_the_joint_rows_cover_the_truth(demo):
    result, out = demo
    _, stored, signatures, bundles = _stored(out / DB_FILE)
    assert len(signatures) == 3 and len(bundles) == result.organisations == len(stored["included"])
    assert stored["excluded"] == {}
    assert all(row.joint is not None for row in result.rows)
    assert sum(row.joint["covered"] for row in result.rows) >= 5  # 95% intervals: most of 7 rows
    total = result.row("total")
    # within the width of its own 95% interval (about four standard errors) of the distinct people; a fixed 8% is
    # about one standard error at this scale (292 people: the noise of the 25 linkage-bound cells, and the prior's
    # quarter against the share of those people really known elsewhere), and it failed by chance
    assert total.joint["lower"] <= total.joint["estimate"] <= total.joint["upper"]
    assert abs(total.joint["estimate"] - total.truth) <= total.joint["upper"] - total.joint["lower"]
    # the per-organisation release counts people at several organisations more than once; the joint one does not
    assert total.joint["estimate"] < total.release_target


def test_the_national_table_publishes_joint_tables_that_add_up(demo):
    """After a real computation: the joint form and age band cells add up to the joint total, each interval starts at
    or above the people known individually, and the demo's joint rows are the table's figures."""
    from aggregator.coordinator.national import national_table

    result, out = demo
    for by in ("form", "age_band"):
        table = national_table(out / DB_FILE, 2025, [by])
        total = table.total(2025).joint
        assert sum(c.joint["estimate"] for c in table.cells(2025)) == total["estimate"], by
        for row in [*table.cells(2025), table.total(2025)]:
            j = row.joint
            assert j["known"] == row.individual and j["known"] <= j["lower"] <= j["estimate"] <= j["upper"]
            assert j["upper"] > j["lower"]
        if by == "form":
            assert result.row("total").joint["estimate"] == total["estimate"]
            for cell in table.cells(2025):
                assert result.row(cell.dims["form"]).joint["estimate"] == cell.joint["estimate"]


def test_a_second_computation_for_the_same_plan_is_refused(demo, tmp_path):
    db = _copy(demo, tmp_path)
    plan, result, signatures, bundles = _stored(db)
    with pytest.raises(JointRefused, match="already has its joint result"):
        store_joint_result(db, plan, result, signatures, bundles)


def test_a_result_needs_every_party_signature_over_these_numbers_and_this_plan(demo, tmp_path):
    db = _copy(demo, tmp_path)
    plan, result, signatures, bundles = _stored(db)
    with open_store(db, write=False) as con:
        document = json.loads(con.execute("SELECT document FROM plans").fetchone()[0])
    other = copy.deepcopy(document)
    other["deadline"] = other["deadline"].replace("Z", "0Z")[:-2] + "Z"  # same parties, another plan
    other["epsilon_split"] = dict(other["epsilon_split"])
    other["prior_total"] += 1
    second = register_plan(db, other)
    with pytest.raises(JointRefused, match="does not verify"):  # signatures are bound to the plan's digest
        store_joint_result(db, second.digest, result, signatures, bundles)
    changed = copy.deepcopy(result)
    changed["counts"]["total"] += 1
    with pytest.raises(JointRefused, match="does not verify"):
        store_joint_result(db, second.digest, changed, signatures, bundles)
    with pytest.raises(JointRefused, match="every computing party"):
        store_joint_result(db, second.digest, result, signatures[:2], bundles)


def test_the_parties_sign_the_bundles_they_used_so_the_coordinator_cannot_name_others(demo, tmp_path):
    db = _copy(demo, tmp_path)
    plan, result, signatures, bundles = _stored(db)
    assert sorted(result["bundles"]) == sorted(bundles) and len(bundles) == len(result["included"])
    with open_store(db) as con:  # take the stored result out, as if the computation had just ended
        (last,) = con.execute("SELECT max(idx) FROM ledger").fetchone()
        con.execute("DELETE FROM ledger WHERE idx = ?", [last])
        con.execute("DELETE FROM joint_results")
    # a coordinator that records one bundle fewer (its organisation's joint epsilon would be given back) is refused
    with pytest.raises(JointRefused, match="bundles the parties signed for"):
        store_joint_result(db, plan, result, signatures, bundles[1:])
    # and so is a result whose bundle list was dropped: the signatures no longer verify, or it names none
    unnamed = {k: v for k, v in result.items() if k != "bundles"}
    with pytest.raises(JointRefused, match="does not verify|does not name the bundles"):
        store_joint_result(db, plan, unnamed, signatures, bundles)
    store_joint_result(db, plan, result, signatures, bundles)  # the signed list as it was: stored


def test_bundles_for_a_closed_or_unknown_plan_are_refused(demo, tmp_path):
    _, out = demo
    db = _copy(demo, tmp_path)
    bundle = sorted((out / "bundles").glob("*.bundle.json"))[0]
    fresh = tmp_path / "fresh.duckdb"
    from aggregator.coordinator.registry import register_org
    from aggregator.contract.keys import read_public_key_file
    from aggregator.contract.envelope import open_envelope, parse_payload

    payload = parse_payload(open_envelope(bundle.read_bytes()))
    org = payload.organisation
    home = out / "orgs-home" / org.id
    register_org(fresh, org.id, kind=org.kind.value, reporter_type=org.reporter_type.value,
                 public_key=read_public_key_file(home / "org.pub"), cap="2")
    refused = merge_bundles(fresh, [bundle]).bundles[0]
    assert (refused.status, refused.reason) == ("refused", "unknown-plan")
    # the demo's store has the plan's result already: a new bundle for it would spend joint epsilon for nothing
    with open_store(db) as con:
        con.execute("DELETE FROM bundles WHERE digest = ?", [open_envelope(bundle.read_bytes()).digest])
    late = merge_bundles(db, [bundle]).bundles[0]
    assert (late.status, late.reason) == ("refused", "plan-closed")


def test_the_audit_replays_plans_and_joint_results(demo):
    _, out = demo
    report = audit_store(out / DB_FILE)
    assert report.ok, [c.problems for c in report.checks if not c.ok]
    assert (out / PLAN_FILE).exists()


def test_joint_estimates_carry_intervals_around_the_linear_count(demo):
    result, out = demo
    cells = joint_estimates(out / DB_FILE, 2025)
    assert set(cells) >= {"total", "form=sexual", "age_band=under_15"}
    for cell in cells.values():
        assert cell.lower <= cell.estimate <= cell.upper and cell.variance > 0


def test_linear_counting_inverts_the_expected_occupancy():
    m = 1000
    for n in (1, 50, 400, 2000):
        expected_nonempty = m * (1 - (1 - 1 / m) ** n)
        assert linear_count(expected_nonempty, m) == pytest.approx(n, rel=1e-9)
    assert linear_count(-5, m) == 0.0 and linear_count(m + 10, m) < float("inf")  # noise outside [0, m)
    wide, narrow = joint_cell("c", "g", 300, m, 100.0), joint_cell("c", "g", 300, m, 1.0)
    assert wide.upper - wide.lower > narrow.upper - narrow.lower


def test_the_audit_catches_an_edited_joint_result(demo, tmp_path):
    db = _copy(demo, tmp_path)
    with open_store(db) as con:
        stored = json.loads(con.execute("SELECT result FROM joint_results").fetchone()[0])
        stored["counts"]["total"] += 40
        con.execute("UPDATE joint_results SET result = ?", [json.dumps(stored)])
    report = audit_store(db)
    assert not report.ok
    assert [c.name for c in report.checks if not c.ok] == ["rebuild-store"]


def test_the_report_shows_the_joint_estimate_beside_the_per_organisation_one(demo, tmp_path):
    from aggregator.coordinator.national import national_table
    from aggregator.coordinator.report import render_report

    _, out = demo
    render_report(out / DB_FILE, tmp_path / "report.html", "en")
    html = (tmp_path / "report.html").read_text(encoding="utf-8")
    total = national_table(out / DB_FILE, 2025, []).total(2025)
    assert total.joint is not None
    assert html.count("<th class=\"n\">Joint estimate (distinct people)</th>") >= 1
    joint_cell = f"<td class=\"n\">{total.joint['estimate']:,}</td><td class=\"n\">{total.joint['lower']:,.1f} – {total.joint['upper']:,.1f}</td>"
    assert joint_cell in html
    assert f"{total.estimate:,}" in html  # the per-organisation estimate stays beside it


# ---------------------------------------------------------------- joint epsilon given back to unused bundles


def test_joint_refunds_give_back_excluded_and_superseded_bundles_only():
    from aggregator.coordinator.joint import joint_refunds

    pinned = [("d-b", "org-b", "1/2"), ("d-a2", "org-a", "1/2"), ("d-a1", "org-a", "1/2"), ("d-c", "org-c", "1/2")]
    # org-a's first bundle was superseded (never handed to the parties); the parties excluded org-c
    refunds = joint_refunds(pinned, ["d-a2", "d-b", "d-c"], ["org-a", "org-b"])
    assert refunds == [
        {"org": "org-a", "digest": "d-a1", "epsilon": "1/2", "reason": "not used"},
        {"org": "org-c", "digest": "d-c", "epsilon": "1/2", "reason": "excluded"},
    ]
    assert joint_refunds(pinned[:1], ["d-b"], ["org-b"]) == []


def _party_homes(out):
    from aggregator.synthetic.demo import PARTIES_DIR, PARTY_NAMES

    return [out / PARTIES_DIR / name for name in PARTY_NAMES]


@pytest.fixture
def excluded(demo, tmp_path):
    """A copy of the demo's store whose joint result says the parties excluded one organisation: the stored result
    is taken out (it is the ledger's last entry) and an edited one, re-signed with the three party homes' signing
    keys, is stored in its place. Returns (db, excluded org, an included org)."""
    from aggregator.joint.party import sign_result
    from aggregator.joint.party_home import load_party

    _, out = demo
    db = _copy(demo, tmp_path)
    plan, result, _, bundles = _stored(db)
    with open_store(db) as con:
        (last, event), = con.execute("SELECT idx, event FROM ledger ORDER BY idx DESC LIMIT 1").fetchall()
        assert event == "joint"
        con.execute("DELETE FROM ledger WHERE idx = ?", [last])
        con.execute("DELETE FROM joint_results")
    with open_store(db, write=False) as con:  # organisations that spent their whole cap (own release + joint)
        full = {org for org, in con.execute(
            "SELECT b.org_id FROM bundles AS b JOIN organisations AS o ON o.id = b.org_id WHERE b.epsilon = o.cap"
        ).fetchall()}
    gone, kept = [o for o in result["included"] if o in full][:2]
    result["included"] = [o for o in result["included"] if o != gone]
    result["excluded"] = {gone: "vector is not 0/1 in at least one bucket"}
    signatures = [sign_result(result, str(load_party(h).signing_key), plan) for h in _party_homes(out)]
    store_joint_result(db, plan, result, signatures, bundles)
    return db, gone, kept


def _joint_entry(db):
    with open_store(db, write=False) as con:
        idx, text = con.execute("SELECT idx, entry FROM ledger WHERE event = 'joint'").fetchone()
    return idx, json.loads(text)


def _budget(db, org):
    from aggregator.coordinator.budget import budget_report

    (b,) = budget_report(db, org=org, period=2025).budgets
    return b


def test_an_excluded_organisation_gets_its_joint_epsilon_back_everywhere(excluded, tmp_path):
    from typer.testing import CliRunner

    import aggregator.cli.coordinator  # noqa: F401  (registers the commands)
    from aggregator.auditor.audit import rebuild_store
    from aggregator.cli import app
    from aggregator.coordinator.admission import load_state
    from aggregator.coordinator.ledger import verify_ledger

    db, gone, kept = excluded
    _, entry = _joint_entry(db)
    (refund,) = entry["refunds"]  # recorded in the hashed ledger entry
    assert (refund["org"], refund["epsilon"], refund["reason"]) == (gone, "1", "excluded")
    with open_store(db, write=False) as con:
        state = load_state(con)
        charged = dict(con.execute("SELECT org_id, epsilon FROM bundles WHERE org_id IN (?, ?)", [gone, kept]).fetchall())
    # charged at merge: the per-organisation release (none for an investigative organisation) plus the joint 1
    assert state.spent[(gone, 2025)] == Fraction(charged[gone]) - 1
    assert state.spent[(kept, 2025)] == Fraction(charged[kept])

    out, inside = _budget(db, gone), _budget(db, kept)
    spent = Fraction(charged[gone]) - 1
    assert (Fraction(out.spent), Fraction(out.remaining)) == (spent, 2 - spent)
    (release,) = out.releases
    assert (release.epsilon, release.refunded, release.refund_reason) == (charged[gone], "1", "excluded")
    assert Fraction(release.spent) == spent
    assert (inside.spent, inside.releases[0].refunded) == (charged[kept], "0")

    runner = CliRunner()
    text = runner.invoke(app, ["budget", "--db", str(db), "--period", "2025"], env={"COLUMNS": "400"}).stdout
    lines = {line.split("│")[1].strip(): line for line in text.splitlines() if line.count("│") > 2}
    assert "(joint 1 given back: excluded)" in lines[gone]
    assert "given back" not in lines[kept]
    data = json.loads(runner.invoke(app, ["budget", "--db", str(db), "--org", gone, "--json"]).stdout)
    assert (Fraction(data["budgets"][0]["spent"]), data["budgets"][0]["releases"][0]["refunded"]) == (spent, "1")

    assert verify_ledger(db).ok, verify_ledger(db).problems
    report = audit_store(db)
    assert report.ok, [c.problems for c in report.checks if not c.ok]
    rebuilt = tmp_path / "rebuilt" / "national.duckdb"
    rebuilt.parent.mkdir()
    assert rebuild_store(db, rebuilt) == []  # the audit's replay gives the same refund back
    assert (_budget(rebuilt, gone).spent, _budget(rebuilt, kept).spent) == (out.spent, inside.spent)


def test_a_tampered_joint_refund_is_caught_by_the_audit(excluded):
    from aggregator.coordinator.ledger import entry_hash, verify_ledger

    db, gone, kept = excluded
    idx, entry = _joint_entry(db)
    forged = copy.deepcopy(entry)
    forged["refunds"].append({**forged["refunds"][0], "org": kept, "digest": _budget(db, kept).releases[0].digest})
    forged["refunds"].sort(key=lambda r: (r["org"], r["digest"]))
    text = json.dumps(forged, sort_keys=True, separators=(",", ":"))
    before = Fraction(_budget(db, kept).spent)
    with open_store(db) as con:  # the included organisation's joint epsilon given back too, the hash left as it was
        con.execute("UPDATE ledger SET entry = ? WHERE idx = ?", [text, idx])
    assert Fraction(_budget(db, kept).spent) == before - 1  # what the store now claims
    report = audit_store(db)
    assert not report.ok and "ledger-chain" in report.failed
    assert any("hash does not match" in p for p in report.check("ledger-chain").problems)

    with open_store(db) as con:  # the same forgery with the hash chain recomputed over it
        con.execute("UPDATE ledger SET hash = ? WHERE idx = ?", [entry_hash(forged), idx])
    check = verify_ledger(db)
    assert not check.ok
    assert any("joint refunds differ" in p for p in check.problems)
    report = audit_store(db)
    assert {"ledger-chain", "rebuild-ledger"} <= set(report.failed)


def test_the_joint_epsilon_given_back_can_be_spent_again(excluded, demo, tmp_path):
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    from aggregator.contract.keys import read_public_key_file
    from aggregator.coordinator.ledger import verify_ledger
    from tests import bundlefactory as bf

    _, out = demo
    db, gone, kept = excluded
    outcomes = {}
    for org_id in (gone, kept):  # both had spent their whole cap of 2 at merge; a correction with epsilon 1 each
        home = out / "orgs-home" / org_id
        with open_store(db, write=False) as con:
            kind, reporter_type = con.execute("SELECT kind, reporter_type FROM organisations WHERE id = ?",
                                              [org_id]).fetchone()
        org = bf.TestOrg(org_id, kind, reporter_type, load_pem_private_key((home / "org.key").read_bytes(), None),
                         read_public_key_file(home / "org.pub"))
        path = bf.bundle_file(tmp_path / "later", org, sequence=2, marginals=[bf.marginal(["form"], "1")])
        (outcomes[org_id],) = merge_bundles(db, [path]).bundles
    assert outcomes[gone].status == "accepted", outcomes[gone]
    assert (outcomes[kept].status, outcomes[kept].reason) == ("refused", "over-budget")
    assert _budget(db, gone).spent == "2" and _budget(db, gone).remaining == "0"
    check = verify_ledger(db)  # the running total of the later accept entry subtracts the refund
    assert check.ok, check.problems
    report = audit_store(db)  # the rebuild gives the refund back before it replays the later merge
    assert report.ok, [c.problems for c in report.checks if not c.ok]
