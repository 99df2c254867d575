"""End to end through the CLI: org init, validate and submit on every example organisation; bad input; canaries."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from aggregator.contract.envelope import open_envelope, parse_payload, verify_envelope
from aggregator.contract.keys import parse_public_key
from aggregator.cli import app
from aggregator.cli import organisation  # noqa: F401  (registers the commands)
from aggregator.organisation.validate import validate_export
from tests.orgfactory import CANARIES, canary_rows, row, write_export

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = {
    "police-oost": ("investigative", "police", "export-2025.csv"),
    "shelter-noord": ("non_investigative", "shelter", "export-2025-clean.csv"),
    "helpline-chat": ("non_investigative", "help_line", "export-2025.xlsx"),
}
ENV = {"AGGREGATOR_LINKAGE_KEY": "example-linkage-key-not-secret"}


def invoke(*args: str):
    result = CliRunner().invoke(app, [str(a) for a in args], env=ENV, catch_exceptions=False)
    return result


@pytest.mark.parametrize("org", sorted(EXAMPLES))
def test_example_export_to_verified_bundle(tmp_path, org):
    kind, reporter, export = EXAMPLES[org]
    home, out = tmp_path / "home", tmp_path / "out"
    folder = ROOT / "examples" / org
    assert invoke("org", "init", "--org", org, "--kind", kind, "--reporter-type", reporter, "--home", home).exit_code == 0
    assert (home / "org.key").stat().st_mode & 0o777 == 0o600
    validated = invoke("validate", folder / export, "-m", folder / "mapping.toml", "--export-date", "2026-01-15", "--json")
    assert validated.exit_code == 0, validated.output
    report = json.loads(validated.output)
    assert report["rows_invalid"] == 0 and report["rows_read"] > 50
    submitted = invoke(
        "submit", folder / export, "-m", folder / "mapping.toml", "--period", "2025", "--epsilon", "1.0",
        "--export-date", "2026-01-15", "--out", out, "--home", home, "--json",
    )
    assert submitted.exit_code == 0, submitted.output
    result = json.loads(submitted.output)
    data = Path(result["path"]).read_bytes()
    opened = open_envelope(data)
    verify_envelope(opened, parse_public_key((home / "org.pub").read_text()))
    payload = parse_payload(opened)
    assert payload.organisation.id == org and payload.period == 2025 and payload.sequence == 1
    again = invoke(
        "submit", folder / export, "-m", folder / "mapping.toml", "--period", "2025", "--epsilon", "0.5",
        "--export-date", "2026-01-15", "--out", out, "--home", home,
    )
    if kind == "investigative":
        # Everyone has a statutory basis: no noisy counts, no budget spent, so a corrected resubmission is free.
        assert {r.basis for r in payload.records} == {"statutory"} and len(payload.records) > 100
        assert payload.release is None and result["epsilon"] == "0"
        assert again.exit_code == 0 and len(list(out.iterdir())) == 2
    else:
        assert {r.basis for r in payload.records} <= {"consent"} and payload.release is not None
        # A second submit at the full cap is refused with exit code 1, nothing written.
        assert again.exit_code == 1 and "exceed the cap" in again.output
        assert len(list(out.iterdir())) == 1


def test_validate_json_equals_the_library_report(tmp_path):
    folder = ROOT / "examples" / "shelter-noord"
    result = invoke("validate", folder / "export-2025.csv", "-m", folder / "mapping.toml", "--export-date", "2026-01-15", "--json")
    assert result.exit_code == 1
    report, con = validate_export(folder / "export-2025.csv", folder / "mapping.toml", export_date=__import__("datetime").date(2026, 1, 15))
    con.close()
    assert json.loads(result.output) == json.loads(json.dumps(report.as_dict()))
    assert report.rows_invalid == 3


def test_canaries_stay_out_of_every_output(tmp_path):
    export, mapping = write_export(tmp_path / "in", [row(i) for i in range(20)] + canary_rows())
    home = tmp_path / "home"
    invoke("org", "init", "--org", "shelter-c", "--kind", "non_investigative", "--reporter-type", "shelter", "--home", home)
    outputs = []
    for extra in ([], ["--json"]):
        r = invoke("validate", export, "-m", mapping, "--export-date", "2025-12-31", "--errors-out", tmp_path / "e.csv", *extra)
        assert r.exit_code == 1
        outputs.append(r.output)
    outputs.append((tmp_path / "e.csv").read_text(encoding="utf-8-sig"))
    refused = invoke("submit", export, "-m", mapping, "--period", "2025", "--export-date", "2025-12-31", "--out", tmp_path / "o", "--home", home)
    assert refused.exit_code == 1
    outputs.append(refused.output)
    done = invoke("submit", export, "-m", mapping, "--period", "2025", "--export-date", "2025-12-31", "--out", tmp_path / "o",
                  "--home", home, "--skip-invalid", "--json")
    assert done.exit_code == 0
    outputs.append(done.output)
    outputs.extend(p.read_text() for p in (tmp_path / "o").iterdir())
    outputs.extend(p.read_text() for p in (home).glob("*.jsonl"))
    for text in outputs:
        for canary in CANARIES:
            assert canary not in text


def _bad(tmp_path: Path, name: str, content: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(content)
    return path


@pytest.mark.parametrize(
    "name, content",
    [
        ("empty.csv", b""),
        ("header.csv", ";".join(["Dossier", "Client", "Meldingsdatum", "Vorm"]).encode() + b"\n"),
        ("binary.csv", bytes(range(256)) * 4096),
        ("commas.csv", b"Dossier,Client,Meldingsdatum,Vorm\n1,2,01-01-2025,arbeid\n"),
        ("latin.csv", "Dossier;Client;Meldingsdatum;Vorm\n1;2;01-01-2025;\xe9\xe9n\n".encode("utf-16")),
    ],
)
def test_bad_exports_give_one_clear_line(tmp_path, name, content):
    _, mapping = write_export(tmp_path / "m", [row(1)])
    result = CliRunner().invoke(app, ["validate", str(_bad(tmp_path, name, content)), "-m", str(mapping)], env=ENV)
    assert result.exit_code in (1, 2), result.output
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert "error:" in result.output


def test_fifty_megabyte_binary_renamed_csv_fails_fast(tmp_path):
    import time

    path = tmp_path / "big.csv"
    with path.open("wb") as fh:
        for _ in range(50):
            fh.write(os.urandom(1024 * 1024))
    _, mapping = write_export(tmp_path / "m", [row(1)])
    start = time.monotonic()
    result = CliRunner().invoke(app, ["validate", str(path), "-m", str(mapping)], env=ENV)
    assert result.exit_code in (1, 2) and "error:" in result.output and "Traceback" not in result.output
    assert time.monotonic() - start < 10


@pytest.mark.parametrize("eps", ["nan", "inf", "0", "-1", "1e999", "zero"])
def test_bad_epsilon_is_a_usage_error(tmp_path, eps):
    export, mapping = write_export(tmp_path, [row(1)])
    result = invoke("submit", export, "-m", mapping, "--period", "2025", "--epsilon", eps, "--home", tmp_path / "h")
    assert result.exit_code == 2 and "epsilon" in result.output


def test_missing_linkage_key_and_missing_org_are_clear(tmp_path):
    export, mapping = write_export(tmp_path, [row(1)])
    r = CliRunner().invoke(app, ["submit", str(export), "-m", str(mapping), "--period", "2025", "--home", str(tmp_path / "h")], env={"AGGREGATOR_LINKAGE_KEY": ""})
    assert r.exit_code == 1 and "linkage key" in r.output
    r = invoke("submit", export, "-m", mapping, "--period", "2025", "--home", tmp_path / "h")
    assert r.exit_code == 1 and "org init" in r.output


def test_org_init_warns_on_stderr_when_the_key_lands_in_a_git_work_tree(tmp_path):
    (tmp_path / "clone" / ".git").mkdir(parents=True)
    inside = CliRunner().invoke(app, ["org", "init", "--org", "shelter-a", "--kind", "non_investigative",
                                      "--home", str(tmp_path / "clone" / ".aggregator")], env=ENV)
    assert inside.exit_code == 0
    assert "warning:" in inside.stderr and "git work tree" in inside.stderr and "warning" not in inside.stdout
    outside = CliRunner().invoke(app, ["org", "init", "--org", "shelter-a", "--kind", "non_investigative",
                                       "--home", str(tmp_path / "home")], env=ENV)
    assert outside.exit_code == 0 and "warning" not in outside.output


def test_org_linkage_key_command_creates_once_and_refuses_to_overwrite(tmp_path):
    key = tmp_path / "shared-linkage.key"
    made = invoke("org", "linkage-key", "--out", key)
    assert made.exit_code == 0 and "never with the coordinator" in " ".join(made.output.split())
    assert key.stat().st_mode & 0o777 == 0o600 and len(key.read_text().strip()) == 64
    before = key.read_text()
    again = invoke("org", "linkage-key", "--out", key)
    assert again.exit_code == 1 and "already exists" in again.stderr and key.read_text() == before
    helped = invoke("org", "linkage-key", "--help")
    assert "shared by the organisations, never by the coordinator" in " ".join(helped.output.split())


def _spend_the_year(tmp_path, org: str):
    kind, reporter, export = EXAMPLES[org]
    home, out, folder = tmp_path / "home", tmp_path / "out", ROOT / "examples" / org
    assert invoke("org", "init", "--org", org, "--kind", kind, "--reporter-type", reporter, "--home", home).exit_code == 0
    args = ["submit", folder / export, "-m", folder / "mapping.toml", "--period", "2025", "--export-date",
            "2026-01-15", "--out", out, "--home", home]
    assert invoke(*args, "--epsilon", "1.0").exit_code == 0
    return args, out


def test_dry_run_past_the_cap_still_shows_what_would_leave_marked_over_budget(tmp_path):
    args, out = _spend_the_year(tmp_path, "shelter-noord")
    assert invoke(*args, "--epsilon", "0.5").exit_code == 1  # the real submit is refused
    shown = invoke(*args, "--epsilon", "0.5", "--dry-run")
    assert shown.exit_code == 0, shown.output
    text = " ".join(shown.stdout.split())
    assert "OVER BUDGET" in text and "a real submit would be refused" in text and "exceed the cap" in text
    assert "records (consent)" in text and "Noisy marginals" in text
    data = json.loads(invoke(*args, "--epsilon", "0.5", "--dry-run", "--json").stdout)
    assert data["dry_run"] and "exceed the cap" in data["over_budget"] and data["marginals"]
    assert len(list(out.iterdir())) == 1  # nothing written


def test_investigative_submit_says_it_releases_records_only(tmp_path):
    args, _ = _spend_the_year(tmp_path, "police-oost")
    shown = invoke(*args, "--dry-run")
    text = " ".join(shown.stdout.split())
    assert shown.exit_code == 0 and "investigative organisations release records only" in text
    assert "Noisy marginals (people" not in text and "OVER BUDGET" not in text


def test_submit_at_80_columns_shows_the_bundle_path_whole_for_explain(tmp_path, monkeypatch):
    from aggregator.cli import register_commands

    register_commands()  # explain lives with the coordinator's commands
    monkeypatch.setenv("COLUMNS", "80")
    kind, reporter, export = EXAMPLES["shelter-noord"]
    home, folder = tmp_path / "home", ROOT / "examples" / "shelter-noord"
    out = tmp_path / "a-folder-name-long-enough-that-the-bundle-path-needs-more-than-eighty-columns"
    assert invoke("org", "init", "--org", "shelter-noord", "--kind", kind, "--reporter-type", reporter,
                  "--home", home).exit_code == 0
    shown = invoke("submit", folder / export, "-m", folder / "mapping.toml", "--period", "2025", "--epsilon", "1",
                   "--export-date", "2026-01-15", "--out", out, "--home", home)
    assert shown.exit_code == 0, shown.output
    (path,) = out.iterdir()
    assert len(str(path)) > 80
    assert f"bundle: {path}\n" in shown.stdout  # whole, on one line, as `explain` needs it
    assert "…" not in shown.stdout
    copied = shown.stdout.split("bundle: ", 1)[1].split("\n", 1)[0]
    explained = invoke("explain", copied)
    assert explained.exit_code == 0, explained.output


def test_an_operating_system_error_is_one_clear_line_not_a_traceback(tmp_path, monkeypatch):
    import errno

    from aggregator.organisation import validate as module

    def full_disk(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", "work/stage.tmp")

    monkeypatch.setattr(module, "validate_export", full_disk)
    export, mapping = tmp_path / "export.csv", tmp_path / "mapping.toml"
    export.write_text("a\n1\n")
    mapping.write_text("")
    result = CliRunner().invoke(app, ["validate", str(export), "--mapping", str(mapping)])
    assert result.exit_code == 1
    said = " ".join(result.output.split())  # the console wraps long lines
    assert "Traceback" not in said and "No space left on device: work/stage.tmp" in said
