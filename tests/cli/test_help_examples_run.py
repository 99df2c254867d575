"""Every --help example runs as written, in one fresh folder with a fresh home and store.

The examples are taken from the help texts (tests/cli/test_help_examples.py reads them); the README walkthroughs run
in tests/cli/test_walkthroughs.py. Between examples only the files an example names but the docs leave to the user
are put in place (the organisation's public key under the name the coordinator uses, bundles in the inbox, a second
key for the rotation, the three computing parties a plan names); the hex digest in explain's example stands for the bundle submit wrote.
"""

from __future__ import annotations

import glob
import re
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from aggregator.cli import app
from tests.cli.test_help_examples import LEAVES, examples

ROOT = Path(__file__).resolve().parents[2]
# The order a user meets them in: organisation, coordinator, joint release, auditor. The demo and synth examples
# build a whole synthetic nation (minutes), so they are run by `make demo`, not here; compute (the three-party
# computation, about a minute) runs in README's "By hand" walkthrough (tests/cli/test_walkthroughs.py), and estimate
# needs compute's result (tests/coordinator/test_darknumber.py runs it on a stored joint result); compute export and
# compute store (parties on their own machines) run in tests/joint/test_remote.py.
ORDER = ["org linkage-key", "org init", "validate", "submit", "explain", "registry add", "merge", "org receipt add",
         "registry list", "table", "report", "party init", "party address", "plan create", "budget", "audit", "registry rotate",
         "registry revoke"]
NOT_RUN = {"demo", "synth", "compute", "compute export", "compute store", "estimate"}


def prepare(name: str, folder: Path, env: dict[str, str]) -> None:
    if name == "registry add":
        shutil.copy(folder / ".aggregator" / "org.pub", folder / "shelter-noord.pub")
    elif name == "merge":
        (folder / "inbox").mkdir(exist_ok=True)
        for bundle in (folder / "out").glob("*.bundle.json"):
            shutil.copy(bundle, folder / "inbox" / bundle.name)
    elif name == "plan create":  # party init's example makes one party; a plan names three
        for i, party in enumerate(("coordinator-party", "rapporteur", "trusted-third-party")):
            assert run(["party", "init", "--name", party, "--home", str(folder / f"p{i}")], {}).exit_code == 0
    elif name == "registry rotate":
        run(["org", "init", "--org", "shelter-noord", "--kind", "non_investigative", "--reporter-type", "shelter",
             "--home", str(folder / "next")], {})
        shutil.copy(folder / "next" / "org.pub", folder / "shelter-noord-2026.pub")


def run(args: list[str], env: dict[str, str]):
    return CliRunner().invoke(app, args, env=env, catch_exceptions=False)


def expand(args: list[str]) -> list[str]:
    out = []
    for word in args:
        word = re.sub(r"\b[0-9a-f]{16}\.bundle\.json$", "*.bundle.json", word)
        out.extend(sorted(glob.glob(word)) if "*" in word else [word])
    return out


@pytest.mark.slow
def test_every_help_example_runs_on_a_fresh_home_and_store(tmp_path, monkeypatch):
    (tmp_path / "examples").symlink_to(ROOT / "examples")
    monkeypatch.chdir(tmp_path)
    by_name = {" ".join(path): command for path, command in LEAVES}
    assert set(by_name) == set(ORDER) | NOT_RUN, "a new command: place its example in ORDER"
    env = {"AGGREGATOR_HOME": "", "AGGREGATOR_LINKAGE_KEY": ""}
    for name in ORDER:
        prepare(name, tmp_path, env)
        for args in examples(by_name[name]):
            result = run(expand(args), env)
            announced = 1 if "so it exits 1" in (by_name[name].help or "") else 0
            assert result.exit_code == announced, f"`aggregator {' '.join(args)}` exited " \
                f"{result.exit_code}:\n{result.output}"
            assert "Traceback" not in result.output
        if name == "org linkage-key":
            env["AGGREGATOR_LINKAGE_KEY"] = (tmp_path / "shared-linkage.key").read_text().strip()
