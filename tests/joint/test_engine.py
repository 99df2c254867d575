"""Three local MPC parties end to end: exact counts, input checks, failures, TLS."""

import os
import time

import numpy as np
import pytest

from aggregator.joint import runner
from aggregator.joint.errors import JointError, PartyFailed
from aggregator.joint.field import prime_for
from aggregator.joint.party import TEST_HARNESS_ENV

from .util import make_job, random_vectors, raw_sharing, reference, small_layout, write_raw

ORGS = [f"org{i}" for i in range(6)]


@pytest.fixture(autouse=True)
def harness(monkeypatch):
    monkeypatch.setenv(TEST_HARNESS_ENV, "1")


def _exact(res):
    return {"counts": res.exact.counts, "patterns": res.exact.patterns,
            "multiplicity": res.exact.multiplicity}


def test_opened_counts_before_noise_equal_numpy(tmp_path):
    lay = small_layout()
    vecs = random_vectors(lay, ORGS, density=0.25, seed=11)
    res = runner.run_local(make_job(tmp_path, lay, vecs, reveal_exact=True), timeout=60)
    ref = reference(lay, vecs)
    assert _exact(res) == ref
    assert sum(ref["patterns"]["minors/NL"]) == 90  # empty pattern included
    assert ref["multiplicity"]["minors/NL"]["3+"] > 0  # the test exercises every class
    assert res.included == ORGS and res.excluded == {}
    # the released values are the exact ones plus (small) noise, never the same object
    assert set(res.counts) == set(ref["counts"])
    assert all(abs(res.counts[c] - ref["counts"][c]) < 40 for c in ref["counts"])


def test_exact_counts_are_refused_outside_the_harness(tmp_path, monkeypatch):
    monkeypatch.delenv(TEST_HARNESS_ENV)
    lay = small_layout()
    job = make_job(tmp_path, lay, random_vectors(lay, ORGS[:3], 0.3, 1), reveal_exact=True)
    with pytest.raises(PartyFailed, match="test harness"):
        runner.run_local(job, timeout=30)


def test_bad_organisations_are_excluded_and_the_rest_counted(tmp_path):
    lay = small_layout()
    vecs = random_vectors(lay, ORGS, density=0.3, seed=5)
    job = make_job(tmp_path, lay, vecs, reveal_exact=True)
    p = prime_for(lay.bits)
    # org3: consistent sharing of a vector with a 2 in one bucket
    two = vecs["org3"].astype(np.uint64).copy()
    two[17] = 2
    write_raw(job, "org3", raw_sharing(two, p))
    # org4: a 0/1 vector whose party-2 share is off by one in a single bucket
    s = raw_sharing(vecs["org4"], p)
    s[2][100] = (s[2][100] + np.uint64(1)) % np.uint64(p)
    write_raw(job, "org4", s)
    # org5: party 1's file belongs to another organisation
    (tmp_path / "shares" / "org5.1.share").write_bytes(
        (tmp_path / "shares" / "org0.1.share").read_bytes())
    res = runner.run_local(job, timeout=60)
    assert res.included == ["org0", "org1", "org2"]
    assert set(res.excluded) == {"org3", "org4", "org5"}
    assert "not 0/1" in res.excluded["org3"]
    assert "consistent" in res.excluded["org4"]
    assert "party 1" in res.excluded["org5"]
    good = {o: vecs[o] for o in res.included}
    assert _exact(res) == reference(lay, good)


def test_a_party_that_exits_gives_a_clean_error(tmp_path):
    lay = small_layout()
    job = make_job(tmp_path, lay, random_vectors(lay, ORGS[:3], 0.3, 2), extra={"fail_party": 2})
    seen = []
    t = time.monotonic()
    with pytest.raises(PartyFailed) as ei:
        runner.run_local(job, timeout=30, on_start=seen.extend)
    assert time.monotonic() - t < 30
    assert ei.value.party == 2 and "party 2" in str(ei.value)
    assert all(pr.poll() is not None for pr in seen)


def test_a_killed_party_gives_a_clean_error_and_no_survivors(tmp_path):
    lay = small_layout()
    job = make_job(tmp_path, lay, random_vectors(lay, ORGS[:3], 0.3, 3))
    seen = []

    def kill_party_1(procs):
        seen.extend(procs)
        procs[1].kill()

    with pytest.raises(JointError) as ei:
        runner.run_local(job, timeout=30, on_start=kill_party_1)
    assert ei.value.party == 1
    assert all(pr.poll() is not None for pr in seen)


def test_a_party_that_hangs_times_out_and_all_are_stopped(tmp_path):
    lay = small_layout()
    job = make_job(tmp_path, lay, random_vectors(lay, ORGS[:3], 0.3, 4), extra={"hang_party": 0})
    seen = []
    t = time.monotonic()
    with pytest.raises(PartyFailed, match="did not finish within 4 s"):
        runner.run_local(job, timeout=4, on_start=seen.extend)
    assert time.monotonic() - t < 10
    assert all(pr.poll() is not None for pr in seen)


def test_tls_run(tmp_path):
    lay = small_layout()
    vecs = random_vectors(lay, ORGS[:4], 0.2, 9)
    tls = runner.make_tls(tmp_path / "tls")
    names = sorted(os.listdir(tls / ".config"))
    assert names == ["mpyc_ca.crt", "party_0.crt", "party_0.key", "party_1.crt", "party_1.key",
                     "party_2.crt", "party_2.key"]  # no CA key anywhere
    res = runner.run_local(make_job(tmp_path, lay, vecs, tls=str(tls), reveal_exact=True),
                           timeout=60)
    assert _exact(res) == reference(lay, vecs)


def test_tls_is_really_used(tmp_path):
    """Without the TLS files the parties cannot start: --ssl is in effect."""
    lay = small_layout()
    empty = tmp_path / "no-tls"
    (empty / ".config").mkdir(parents=True)
    job = make_job(tmp_path, lay, random_vectors(lay, ORGS[:2], 0.2, 1), tls=str(empty))
    with pytest.raises(PartyFailed, match="TLS needs"):
        runner.run_local(job, timeout=30)
