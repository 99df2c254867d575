"""The docs' list of workloads (SECURITY.md's table, README's sentence, submit's help) is the code's list."""

from __future__ import annotations

import re
from pathlib import Path

from typer.main import get_command

from aggregator.cli import app, register_commands
from aggregator.privacy.workload import DEFAULT_WORKLOAD_NAME, WORKLOADS

ROOT = Path(__file__).resolve().parents[2]
NAMES = {"form": "form", "age band": "age_band", "gender": "gender", "nationality group": "nationality_group",
         "province": "province"}


def _marginal(text: str) -> tuple[str, ...]:
    return tuple(NAMES[part.strip()] for part in text.split(" x "))


def test_security_md_lists_every_workload_with_its_marginals_and_the_default():
    text = (ROOT / "SECURITY.md").read_text(encoding="utf-8")
    rows = re.findall(r"^\| `(\w+)`( \(default\))? \| (.+?) \|$", text, re.M)
    documented = {name: tuple(_marginal(m) for m in marginals.split(", ")) for name, _, marginals in rows}
    assert documented == WORKLOADS
    assert [name for name, default, _ in rows if default] == [DEFAULT_WORKLOAD_NAME]


def test_readme_and_submit_help_name_every_workload_and_the_default():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    sentence = readme[readme.index("`submit --workload`"):].split("\n\n", 1)[0]
    assert re.findall(r"`(\w+)` \(", sentence) == list(WORKLOADS)
    assert f"`{DEFAULT_WORKLOAD_NAME}` (the default" in sentence
    assert f"({len(WORKLOADS['equal'])} marginals" in sentence.replace("seven", "7")
    register_commands()
    submit = get_command(app).commands["submit"]
    (option,) = [p for p in submit.params if p.name == "workload"]
    assert option.default == DEFAULT_WORKLOAD_NAME
    for name in WORKLOADS:
        assert name in option.help
