"""The three computing parties on their own "machines": three separate `aggregator compute --no-local` processes on
127.0.0.1, each with only its own home and job folder; the coordinator's export and store; the refusals.

Every process run here has its own time limits and the tests a hard limit on top (`wait_all`), so they always end.
"""

from __future__ import annotations

import json
import shutil
import time

import pytest
from typer.testing import CliRunner

from aggregator.cli import app, register_commands
from aggregator.coordinator.joint import JointRefused, compute_local
from aggregator.coordinator.joint_jobs import export_jobs, store_party_results
from aggregator.coordinator.store import open_store
from aggregator.joint.errors import PartyRunRefused
from aggregator.joint.party import TEST_HARNESS_ENV
from aggregator.joint.party_home import init_party
from aggregator.joint.remote import run_party
from aggregator.joint.runner import HARNESS_EXTRA_ENV

from .world import NAMES, build_world, group_gone, listening, reference_counts, start_party_cli, wait_all

register_commands()
HARD_TIMEOUT = 120  # seconds; the parties' own limits below are far shorter
NO_NOISE = {TEST_HARNESS_ENV: "1", HARNESS_EXTRA_ENV: json.dumps({"no_noise": True})}


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    return build_world(tmp_path_factory.mktemp("remote-world"))


def _machines(world, base, indexes=(0, 1, 2)):
    """Export the job folders from a copy of the store; give each party a "machine" folder holding only its own
    home and its own job folder. Returns (db, {index: machine folder})."""
    db = world.copy(base / "coordinator")
    exported = export_jobs(db, world.plan_file, base / "jobs")
    machines = {}
    for i in indexes:
        machine = base / f"machine{i}"
        shutil.copytree(world.homes[i], machine / "home")
        shutil.copytree(base / "jobs" / exported.folders[i], machine / "job")
        machines[i] = machine
    return db, machines


def _start(machines, *args, env=None):
    return {i: start_party_cli(m / "home", m / "job", m / "log.txt", *args, env=env) for i, m in machines.items()}


def _stored(db):
    with open_store(db, write=False) as con:
        row = con.execute("SELECT result, signatures FROM joint_results").fetchone()
    return None if row is None else (json.loads(row[0]), json.loads(row[1]))


@pytest.fixture(scope="module")
def remote_run(world, tmp_path_factory):
    """Three separate party processes, noise off (test harness only) so the opened counts compare exactly."""
    base = tmp_path_factory.mktemp("remote-run")
    db, machines = _machines(world, base)
    for machine in machines.values():  # what each party got out of band: the coordinator's key, the published plan
        shutil.copy(world.plan_file.with_name("coordinator.pub"), machine / "coordinator.pub")
        shutil.copy(world.plan_file, machine / "published-plan.json")
    started = time.monotonic()
    procs = {i: start_party_cli(m / "home", m / "job", m / "log.txt", "--connect-timeout", "30", "--timeout", "60",
                                "--coordinator-key", str(m / "coordinator.pub"), "--plan",
                                str(m / "published-plan.json"), "--json", env=NO_NOISE)
             for i, m in machines.items()}
    codes = wait_all(list(procs.values()), HARD_TIMEOUT)
    seconds = time.monotonic() - started
    return {"db": db, "machines": machines, "codes": codes, "seconds": seconds,
            "groups_gone": all(group_gone(p.pid) for p in procs.values())}


@pytest.fixture(scope="module")
def local_run(world, tmp_path_factory):
    """The --local path on the same store (a copy), noise off the same way."""
    db = world.copy(tmp_path_factory.mktemp("local-run"))
    with pytest.MonkeyPatch.context() as mp:
        for key, value in NO_NOISE.items():
            mp.setenv(key, value)
        started = time.monotonic()
        run = compute_local(db, world.plan.digest, world.homes, timeout=60)
    return {"db": db, "run": run, "seconds": time.monotonic() - started}


def test_three_processes_give_the_local_result_and_the_store_accepts_it(world, remote_run, local_run):
    machines = remote_run["machines"]
    assert remote_run["codes"] == [0, 0, 0], [(m / "log.err").read_text() for m in machines.values()]
    assert remote_run["groups_gone"]  # no party process outlives its `aggregator compute`
    for i, machine in machines.items():
        report = json.loads((machine / "log.txt").read_text())
        assert (report["party"], report["name"]) == (i, NAMES[i])
        assert report["organisations"] == sorted(world.vectors) and report["excluded"] == {}
        assert (machine / "job" / "result.json").is_file()
    files = [str(machines[i] / "job" / "result.json") for i in (2, 0, 1)]  # any order
    shown = CliRunner().invoke(app, ["compute", "store", *files, "--plan", str(world.plan_file),
                                     "--db", str(remote_run["db"]), "--json"])
    assert shown.exit_code == 0, shown.output
    remote_result, remote_signatures = _stored(remote_run["db"])
    local_result, _ = _stored(local_run["db"])
    assert remote_result == local_result  # the same opened counts, included and excluded organisations
    assert remote_result["counts"] == reference_counts(world.plan, world.vectors)
    assert len(remote_signatures) == 3
    print(f"\nthree separate processes: {remote_run['seconds']:.1f} s wall (start to all exited); "
          f"local run: {local_run['seconds']:.1f} s")


def test_the_store_with_the_remote_result_passes_the_audit(remote_run):
    from aggregator.auditor.audit import audit_store

    if _stored(remote_run["db"]) is None:
        pytest.skip("needs the stored result of the test above")
    report = audit_store(remote_run["db"])
    assert report.ok, [c.problems for c in report.checks if not c.ok]


def test_a_party_that_never_starts_ends_the_other_two_with_a_clear_error(world, tmp_path):
    _, machines = _machines(world, tmp_path, indexes=(1, 2))  # party 0 never starts
    started = time.monotonic()
    procs = _start(machines, "--connect-timeout", "4", "--timeout", "30")
    seen = {}
    while time.monotonic() - started < 3.5 and len(seen) < 2:  # parties 1 and 2 listen while they wait
        for i in (1, 2):
            found = listening(world.ports[i])
            if found:
                seen[i] = found
        time.sleep(0.05)
    codes = wait_all(list(procs.values()), 60)
    elapsed = time.monotonic() - started
    assert seen == {1: ["127.0.0.1"], 2: ["127.0.0.1"]}  # only on the plan's address, never 0.0.0.0 or ::
    assert codes == [1, 1]
    assert elapsed < 4 + 20
    assert all(group_gone(p.pid) for p in procs.values())
    errors = {i: " ".join((m / "log.err").read_text().split()) for i, m in machines.items()}
    assert f"party 0 (coordinator-party at 127.0.0.1:{world.ports[0]}) did not connect" in errors[2]
    assert "party 0 (coordinator-party" in errors[1]
    assert all("nothing was computed" in e and "Traceback" not in e for e in errors.values())


def test_a_party_that_crashes_mid_computation_ends_the_other_two_with_a_clear_error(world, tmp_path):
    db, machines = _machines(world, tmp_path)
    crash = {TEST_HARNESS_ENV: "1", HARNESS_EXTRA_ENV: json.dumps({"die_party": 1, "die_after": 0.3})}
    started = time.monotonic()
    procs = _start(machines, "--connect-timeout", "30", "--timeout", "90", env=crash)
    codes = wait_all(list(procs.values()), HARD_TIMEOUT)
    elapsed = time.monotonic() - started
    assert all(code != 0 for code in codes), codes
    assert elapsed < 60  # the survivors notice the lost peer, they do not wait for their 90 s limit
    assert all(group_gone(p.pid) for p in procs.values())
    errors = {i: " ".join((machines[i] / "log.err").read_text().split()) for i in (0, 2)}
    for text in errors.values():  # a survivor may first lose the other survivor, which stopped for the crash
        assert "lost the connection to party" in text and "nothing was released" in text, text
        assert "Traceback" not in text, text
    assert any("party 1 (rapporteur" in text for text in errors.values()), errors  # the first to notice names it
    assert not any((m / "job" / "result.json").exists() for m in machines.values())  # nothing opened, nothing signed
    assert _stored(db) is None


def test_parties_given_different_jobs_stop_before_computing(world, tmp_path):
    _, machines = _machines(world, tmp_path)
    job_file = machines[2] / "job" / "job.json"
    job = json.loads(job_file.read_text())
    job["organisations"] = job["organisations"][1:]  # party 2 is handed one bundle fewer
    job_file.write_text(json.dumps(job))
    procs = _start(machines, "--connect-timeout", "30", "--timeout", "30")
    codes = wait_all(list(procs.values()), HARD_TIMEOUT)
    assert all(code != 0 for code in codes)
    errors = " ".join((m / "log.err").read_text() for m in machines.values())
    assert "was given another job" in " ".join(errors.split())
    assert not any((m / "job" / "result.json").exists() for m in machines.values())


def test_a_home_whose_keys_the_plan_does_not_name_is_refused(world, tmp_path):
    _, machines = _machines(world, tmp_path, indexes=(1, 2))
    stranger = init_party(tmp_path / "stranger", "rapporteur", f"127.0.0.1:{world.ports[1]}")
    with pytest.raises(PartyRunRefused, match="not those of any computing party the plan names"):
        run_party(stranger.home, machines[1] / "job", timeout=5, connect_timeout=5)
    shown = CliRunner().invoke(app, ["compute", "--no-local", "--party-home", str(stranger.home),
                                     "--job", str(machines[1] / "job")])
    assert shown.exit_code == 1 and "not those of any computing party" in " ".join(shown.output.split())
    # a party's own home with another party's job folder
    with pytest.raises(PartyRunRefused, match=r"this job folder is for party 2 \(trusted-third-party\)"):
        run_party(machines[1] / "home", machines[2] / "job", timeout=5, connect_timeout=5)
    # half the keys: the encryption key of party 1, another signing key
    (tmp_path / "half").mkdir()
    shutil.copy(machines[1] / "home" / "encryption.key", tmp_path / "half" / "encryption.key")
    for name in ("signing.key", "tls.key", "party.json"):
        shutil.copy(stranger.home / name, tmp_path / "half" / name)
    with pytest.raises(PartyRunRefused, match="match only one of the two keys"):
        run_party(tmp_path / "half", machines[1] / "job", timeout=5, connect_timeout=5)
    # a plan that does not verify with the coordinator's key the party was given out of band
    from aggregator.contract.keys import generate_keypair, public_key_text

    (tmp_path / "other.pub").write_text(public_key_text(generate_keypair()[1]))
    shown = CliRunner().invoke(app, ["compute", "--no-local", "--party-home", str(machines[1] / "home"),
                                     "--job", str(machines[1] / "job"), "--coordinator-key",
                                     str(tmp_path / "other.pub")])
    assert shown.exit_code == 1 and "not a usable computation plan" in " ".join(shown.output.split())
    # --plan names the plan the party expects; the job folder's must be that one
    shown = CliRunner().invoke(app, ["compute", "--no-local", "--party-home", str(machines[1] / "home"),
                                     "--job", str(machines[1] / "job"), "--plan", str(tmp_path / "nope.json")])
    assert shown.exit_code == 1 and "cannot read the plan file" in shown.output
    # no listening port was opened by any of these
    assert listening(world.ports[1]) == [] and listening(world.ports[2]) == []


def test_a_result_without_every_valid_signature_is_refused(world, remote_run, tmp_path):
    db = world.copy(tmp_path / "coordinator")
    machines = remote_run["machines"]
    if remote_run["codes"] != [0, 0, 0]:
        pytest.fail("needs the three parties' result files")
    files = [machines[i] / "job" / "result.json" for i in range(3)]
    with pytest.raises(JointRefused, match=r"missing: party 2 \(trusted-third-party\)"):
        store_party_results(db, world.plan_file, files[:2])
    shown = CliRunner().invoke(app, ["compute", "store", str(files[0]), str(files[1]), "--plan",
                                     str(world.plan_file), "--db", str(db)])
    assert shown.exit_code == 1 and "missing: party 2" in " ".join(shown.output.split())
    with pytest.raises(JointRefused, match="two result files are from party 1"):
        store_party_results(db, world.plan_file, [files[0], files[1], files[1]])

    def edited(i, change):
        doc = json.loads(files[i].read_text())
        change(doc)
        path = tmp_path / f"edited-{i}-{len(list(tmp_path.iterdir()))}.json"
        path.write_text(json.dumps(doc))
        return path

    other = json.loads(files[1].read_text())["signature"]
    forged = edited(2, lambda d: d.update(signature=other))  # party 1's signature passed off as party 2's
    with pytest.raises(JointRefused, match="signature of computing party trusted-third-party does not verify"):
        store_party_results(db, world.plan_file, [files[0], files[1], forged])
    unsigned = edited(2, lambda d: d.update(signature=""))
    with pytest.raises(JointRefused, match="does not verify"):
        store_party_results(db, world.plan_file, [files[0], files[1], unsigned])

    def more(d):
        d["result"]["counts"]["total"] += 1

    with pytest.raises(JointRefused, match="opened other counts than party 0"):
        store_party_results(db, world.plan_file, [files[0], files[1], edited(2, more)])
    everywhere = [edited(i, more) for i in range(3)]  # the same edit in all three: the signatures no longer fit
    with pytest.raises(JointRefused, match="does not verify"):
        store_party_results(db, world.plan_file, everywhere)
    assert _stored(db) is None  # nothing of the above was stored
    store_party_results(db, world.plan_file, files)
    assert _stored(db) is not None


def test_the_readme_three_machines_commands_parse():
    """README's "Three machines" block cannot run in one process (the parties run at the same time, on three
    machines); its commands must at least parse as the command line would."""
    import shlex
    from pathlib import Path

    from typer.main import get_command

    from tests.cli.test_walkthroughs import sh_blocks

    root = get_command(app)
    commands = sh_blocks(Path(__file__).resolve().parents[2] / "README.md", "## Three machines")
    assert any("compute export" in c for c in commands) and any("--no-local" in c for c in commands)
    for command in commands:
        words = shlex.split(command)[1:]
        group, rest = root, words
        while getattr(group, "commands", None) and rest and rest[0] in group.commands:
            group, rest = group.commands[rest[0]], rest[1:]
        with group.make_context(" ".join(words[: len(words) - len(rest)]), rest) as ctx:
            assert ctx.params is not None


def test_a_party_whose_port_is_taken_says_so(world, tmp_path):
    import socket

    _, machines = _machines(world, tmp_path, indexes=(2,))
    with socket.socket() as taken:
        taken.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        taken.bind(("127.0.0.1", world.ports[2]))
        taken.listen()
        procs = _start(machines, "--connect-timeout", "10", "--timeout", "10")
        codes = wait_all(list(procs.values()), 60)
    assert codes == [1]
    error = " ".join((machines[2] / "log.err").read_text().split())
    assert f"cannot listen on 127.0.0.1:{world.ports[2]}" in error and "Traceback" not in error
