"""Hostile numbers in a signed bundle (issue 15, item 2): whatever a registered organisation signs, one bundle
never stops a merge run. The bundle is refused with the reason, the other organisations' bundles merge, and a later
run that includes the same file again behaves the same."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings, strategies as st

from aggregator.contract.envelope import sign_payload
from aggregator.coordinator.merge import merge_bundles
from aggregator.errors import BundleRejected
from aggregator.contract.refusals import REFUSALS
from tests import bundlefactory as bf

HUGE_INTS = st.one_of(
    st.integers(min_value=2**31 - 5, max_value=2**31 + 5),
    st.integers(min_value=2**40, max_value=2**70),
    st.integers(min_value=2**62, max_value=2**66),
    st.integers(max_value=-(2**31)),
    st.sampled_from([2**40, 2**63, 2**64, -(2**63) - 1, 10**30, -(10**30), 0, -1]),
)
HOSTILE_FLOATS = st.one_of(
    st.sampled_from([1e300, 1.7976931348623157e308, 5e-324, 1e-300, 1e15, 1e30, 2.2250738585072014e-308]),
    st.floats(min_value=1e12, max_value=1e308, allow_nan=False, allow_infinity=False),
    st.floats(min_value=5e-324, max_value=1e-9, allow_nan=False, allow_infinity=False),
)
HOSTILE_EPSILONS = st.one_of(
    st.sampled_from(["1/" + "9" * 70, "0." + "0" * 70 + "1", "9" * 70, "1/1" + "0" * 20, "0.0000000001", "10000"]),
    st.integers(min_value=10**8, max_value=10**70).map(lambda n: f"1/{n}"),
)


def _sign(org: bf.TestOrg, payload: dict) -> bytes:
    """Signed envelope bytes; a payload canonical JSON cannot hold (integers beyond 2**53) is signed as plain JSON,
    as a hostile signer could."""
    try:
        return bf.sign(org, payload)
    except BundleRejected:
        return sign_payload(json.dumps(payload, sort_keys=True, separators=(",", ":")).encode(), org.private_key)


def _set_marginal(field: str, value: Any):
    def change(payload: dict) -> None:
        payload["release"]["marginals"][0][field] = value
    return change


def _hostile(draw: Any) -> Any:
    """One way to break the numbers of a valid payload dict (a function that edits it in place)."""
    kind = draw(st.sampled_from(["sequence", "period", "withdrawal_period", "count", "scale", "variance",
                                 "error", "epsilon", "release_epsilon", "scale_and_epsilon"]))
    if kind == "sequence":
        value = draw(HUGE_INTS)
        return kind, lambda p: p.__setitem__("sequence", value)
    if kind == "period":
        value = draw(HUGE_INTS)
        return kind, lambda p: p.__setitem__("period", value)
    if kind == "withdrawal_period":
        value = draw(HUGE_INTS)
        return kind, lambda p: p["withdrawals"][0].__setitem__("period", value)
    if kind == "count":
        value = draw(HUGE_INTS)
        return kind, lambda p: p["release"]["marginals"][0]["cells"][0].__setitem__("count", value)
    if kind in ("scale", "variance", "error"):
        field = {"scale": "scale", "variance": "variance", "error": "expected_error_95"}[kind]
        return kind, _set_marginal(field, draw(HOSTILE_FLOATS))
    if kind == "epsilon":
        return kind, _set_marginal("epsilon", draw(HOSTILE_EPSILONS))
    if kind == "release_epsilon":
        value = draw(HOSTILE_EPSILONS)
        return kind, lambda p: p["release"].__setitem__("epsilon", value)
    # a consistent but hostile marginal: tiny epsilon, the matching huge scale and variance
    eps = draw(HOSTILE_EPSILONS)
    scale = draw(HOSTILE_FLOATS)

    def change(payload: dict) -> None:
        m = payload["release"]["marginals"][0]
        m["epsilon"] = payload["release"]["epsilon"] = eps
        m["scale"], m["variance"] = scale, scale * scale * 2
    return kind, change


@st.composite
def hostile_edits(draw: Any) -> list:
    return [draw(st.composite(lambda d: _hostile(d))()) for _ in range(draw(st.integers(1, 3)))]


def _merge_run(edits: list) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        db = folder / "national.duckdb"
        bad_org, good_org = bf.new_org("shelter-bad"), bf.new_org("shelter-good")
        bf.register(db, bad_org, good_org)
        payload = bf.make_payload(
            bad_org, records=[bf.record(1)], withdrawals=[(bf.pseudonym(9), 2024)],
            marginals=[bf.marginal(["form"], "1/2")],
        ).model_dump(mode="json")
        for _, change in edits:
            change(payload)
        bad = bf.write(folder / "in", _sign(bad_org, payload), "hostile.bundle.json")
        good = bf.bundle_file(folder / "in", good_org, records=[bf.record(2)], marginals=[bf.marginal(["form"], "1/2")])
        for _ in range(2):  # a later run with the same file is not stuck either
            result = merge_bundles(db, [bad, good])
            first, second = result.bundles
            assert second.status in ("accepted", "duplicate"), second
            if first.status == "refused":
                assert first.reason in REFUSALS and first.message and first.file == "hostile.bundle.json"
                assert first.reason != "check-failed", first  # the schema's bounds name the reason
                assert "Traceback" not in first.message


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(hostile_edits())
def test_hostile_numbers_never_stop_a_merge(edits):
    _merge_run(edits)


def test_named_hostile_numbers_are_refused_with_their_reason():
    """The cases of the issue, each refused as malformed (the rest of the run merges)."""
    cases = {
        "sequence 2**40": lambda p: p.__setitem__("sequence", 2**40),
        "count beyond 64 bits": lambda p: p["release"]["marginals"][0]["cells"][0].__setitem__("count", 2**64),
        "huge scale": _set_marginal("scale", 1e300),
        "tiny epsilon": _set_marginal("epsilon", "1/" + "9" * 70),
    }
    for name, change in cases.items():
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp)
            db = folder / "national.duckdb"
            bad_org, good_org = bf.new_org("shelter-bad"), bf.new_org("shelter-good")
            bf.register(db, bad_org, good_org)
            payload = bf.make_payload(bad_org, marginals=[bf.marginal(["form"], "1/2")]).model_dump(mode="json")
            change(payload)
            bad = bf.write(folder / "in", _sign(bad_org, payload), "hostile.bundle.json")
            good = bf.bundle_file(folder / "in", good_org, records=[bf.record(2)])
            result = merge_bundles(db, [bad, good])
            assert [b.status for b in result.bundles] == ["refused", "accepted"], name
            assert result.bundles[0].reason in ("malformed-payload", "malformed-release"), name


def test_an_unexpected_error_while_checking_refuses_that_bundle_only(tmp_path, monkeypatch):
    """A check that breaks in a way no rule foresaw refuses the one bundle (no traceback, the file named)."""
    from aggregator.coordinator import admission

    db = tmp_path / "national.duckdb"
    bad_org, good_org = bf.new_org("shelter-bad"), bf.new_org("shelter-good")
    bf.register(db, bad_org, good_org)
    bad = bf.bundle_file(tmp_path / "in", bad_org, "odd.bundle.json", records=[bf.record(1)])
    good = bf.bundle_file(tmp_path / "in", good_org, records=[bf.record(2)])
    real = admission._release_epsilon

    def breaks(payload, *rest):
        if payload.organisation.id == "shelter-bad":
            raise OverflowError("int too large to convert")
        return real(payload, *rest)

    monkeypatch.setattr(admission, "_release_epsilon", breaks)
    result = merge_bundles(db, [bad, good])
    assert [(b.status, b.reason) for b in result.bundles] == [("refused", "check-failed"), ("accepted", None)]
    assert "odd.bundle.json" in result.bundles[0].message and "too large" not in result.bundles[0].message
