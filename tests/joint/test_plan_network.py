"""Addresses and TLS certificates in the plan (joint/tls.py, plan create --party FILE@HOST:PORT, party init
--address); plans without addresses stay local-only and readable."""

from __future__ import annotations

import json
import stat

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from typer.testing import CliRunner

from aggregator.cli import app, register_commands
from aggregator.coordinator.joint import JointRefused
from aggregator.coordinator.joint_jobs import export_jobs
from aggregator.errors import UsageError
from aggregator.joint.plan import read_plan_file
from aggregator.joint.remote import run_party
from aggregator.joint.errors import PartyRunRefused
from aggregator.joint.tls import parse_address
from tests import bundlefactory as bf

register_commands()
NAMES = ("coordinator-party", "rapporteur", "trusted-third-party")


def invoke(*args: str):
    return CliRunner().invoke(app, list(args), catch_exceptions=False)


@pytest.fixture
def parties(tmp_path):
    """Three party homes made by the CLI, the second with its own address; a store to register plans in."""
    for i, name in enumerate(NAMES):
        extra = ["--address", "127.0.0.1:7101"] if i == 1 else []
        assert invoke("party", "init", "--name", name, "--home", str(tmp_path / f"p{i}"), *extra).exit_code == 0
    bf.register(tmp_path / "national.duckdb", bf.new_org("shelter-a"))
    return tmp_path


def _create(folder, *party_args: str, out="plan.json"):
    return invoke("plan", "create", "--period", "2025", *[a for p in party_args for a in ("--party", p)],
                  "--key", str(folder / "coordinator.key"), "--out", str(folder / out),
                  "--db", str(folder / "national.duckdb"), "--json")


def test_party_init_makes_a_tls_key_and_a_request_and_keeps_the_address(parties):
    home = parties / "p1"
    public = json.loads((home / "party.json").read_text())
    assert public["address"] == "127.0.0.1:7101"
    request = x509.load_pem_x509_csr(public["tls_request"].encode())
    assert request.is_signature_valid
    key = serialization.load_pem_private_key((home / "tls.key").read_bytes(), None)
    assert request.public_key().public_numbers() == key.public_key().public_numbers()
    assert stat.S_IMODE((home / "tls.key").stat().st_mode) == 0o600
    assert "address" not in json.loads((parties / "p0" / "party.json").read_text())
    bad = invoke("party", "init", "--name", "x", "--home", str(parties / "px"), "--address", "no-port")
    assert bad.exit_code == 2 and "--address" in bad.output
    assert not (parties / "px").exists()


def test_a_plan_with_addresses_carries_certificates_for_the_parties_own_tls_keys(parties):
    shown = _create(parties, f"{parties}/p0/party.json@127.0.0.1:7100", f"{parties}/p1/party.json",
                    f"{parties}/p2/party.json@[::1]:7102")
    assert shown.exit_code == 0, shown.output
    assert json.loads(shown.stdout)["addresses"] == ["127.0.0.1:7100", "127.0.0.1:7101", "[::1]:7102"]
    plan = read_plan_file(parties / "plan.json")
    assert plan.networked
    ca = x509.load_pem_x509_certificate(plan.tls_ca.encode())
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    for i, party in enumerate(plan.parties):
        cert = x509.load_pem_x509_certificate(party.certificate.encode())
        cert.verify_directly_issued_by(ca)
        names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        assert names.get_values_for_type(x509.DNSName) == [f"MPyC party {i}"]  # the name MPyC checks
        key = serialization.load_pem_private_key((parties / f"p{i}" / "tls.key").read_bytes(), None)
        assert cert.public_key().public_numbers() == key.public_key().public_numbers()
        assert cert.not_valid_after_utc.replace(tzinfo=None) > plan.deadline.replace(tzinfo=None)
    text = (parties / "plan.json").read_text()
    assert "PRIVATE KEY" not in text and "tls_request" not in text  # no key, no request in the plan


def test_addresses_for_some_parties_only_or_twice_are_usage_errors(parties):
    some = _create(parties, *(f"{parties}/p{i}/party.json" for i in range(3)))  # only p1's file has one
    assert some.exit_code == 2 and "missing: coordinator-party, trusted-third-party" in " ".join(some.output.split())
    twice = _create(parties, f"{parties}/p0/party.json@127.0.0.1:7101", f"{parties}/p1/party.json",
                    f"{parties}/p2/party.json@127.0.0.1:7102")
    assert twice.exit_code == 2 and "same address" in twice.output
    bad = _create(parties, f"{parties}/p0/party.json@127.0.0.1:99999", f"{parties}/p1/party.json",
                  f"{parties}/p2/party.json@127.0.0.1:7102")
    assert bad.exit_code == 2 and "--party" in bad.output and "outside 1-65535" in bad.output


def test_a_party_file_without_a_tls_request_cannot_join_a_plan_with_addresses(parties):
    old = json.loads((parties / "p0" / "party.json").read_text())
    del old["tls_request"]  # as `party init` wrote it before this version
    (parties / "old.json").write_text(json.dumps(old))
    shown = _create(parties, f"{parties}/old.json@127.0.0.1:7100", f"{parties}/p1/party.json",
                    f"{parties}/p2/party.json@127.0.0.1:7102")
    assert shown.exit_code == 1 and "no TLS certificate request" in shown.output
    local = _create(parties, f"{parties}/old.json", f"{parties}/p1/party.json@", f"{parties}/p2/party.json")
    assert local.exit_code == 1  # "p1/party.json@" is no file and no address


def test_a_plan_without_addresses_stays_local_only(parties, tmp_path):
    public = json.loads((parties / "p1" / "party.json").read_text())
    del public["address"]
    (parties / "p1" / "party.json").write_text(json.dumps(public))
    shown = _create(parties, *(f"{parties}/p{i}/party.json" for i in range(3)))
    assert shown.exit_code == 0, shown.output
    assert json.loads(shown.stdout)["addresses"] is None
    plan = read_plan_file(parties / "plan.json")
    assert not plan.networked and plan.tls_ca is None
    assert set(plan.document["parties"][0]) == {"name", "encryption_key", "signing_key"}  # as before
    with pytest.raises(JointRefused, match="no merged bundle"):
        export_jobs(parties / "national.duckdb", parties / "plan.json", tmp_path / "jobs")


def test_addresses_parse_and_refuse():
    assert parse_address("127.0.0.1:7100") == ("127.0.0.1", 7100)
    assert parse_address("party-1.example.org:443") == ("party-1.example.org", 443)
    assert parse_address("[::1]:7100") == ("::1", 7100)
    for bad in ("127.0.0.1", ":7100", "host:", "host:0", "host:70000", "ho st:1", "a/b:1", "::1:7100"):
        with pytest.raises(UsageError):
            parse_address(bad)


def test_a_job_folder_that_is_not_one_is_refused(tmp_path, parties):
    with pytest.raises(PartyRunRefused, match="not a job folder"):
        run_party(parties / "p0", tmp_path)


def test_party_address_gives_an_old_home_its_tls_material_and_keeps_its_keys(parties):
    home = parties / "p0"
    old = json.loads((home / "party.json").read_text())
    del old["tls_request"]  # as `party init` wrote it before parties had TLS material
    (home / "party.json").write_text(json.dumps(old))
    (home / "tls.key").unlink()
    moved = invoke("party", "address", "--home", str(home), "--address", "127.0.0.1:7100", "--json")
    assert moved.exit_code == 0, moved.output
    new = json.loads((home / "party.json").read_text())
    assert new["address"] == "127.0.0.1:7100" and new["tls_request"].startswith("-----BEGIN CERTIFICATE REQUEST")
    assert {k: new[k] for k in ("name", "encryption_key", "signing_key")} == \
        {k: old[k] for k in ("name", "encryption_key", "signing_key")}
    assert stat.S_IMODE((home / "tls.key").stat().st_mode) == 0o600
    invoke("party", "address", "--home", str(parties / "p2"), "--address", "127.0.0.1:7102")
    shown = _create(parties, *(f"{parties}/p{i}/party.json" for i in range(3)))
    assert shown.exit_code == 0, shown.output  # the old home now joins a plan for parties on their own machines
    assert read_plan_file(parties / "plan.json").networked
    again = invoke("party", "address", "--home", str(home), "--address", "127.0.0.1:7200")  # moving keeps the keys
    assert again.exit_code == 0 and (home / "tls.key").read_bytes()
    assert json.loads((home / "party.json").read_text())["tls_request"] == new["tls_request"]
    bad = invoke("party", "address", "--home", str(home), "--address", "nowhere")
    assert bad.exit_code == 2 and "host:port" in bad.output
    assert invoke("party", "address", "--home", str(parties / "nobody"), "--address", "127.0.0.1:7300").exit_code == 1
