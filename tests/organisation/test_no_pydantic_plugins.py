"""No pydantic plugin installed in the environment sees an export (SECURITY.md, "No pydantic plugin sees an export").

A spy plugin is installed the way a real one is (an entry point of the `pydantic` group in a *.dist-info folder on
sys.path). pydantic would load it and hand it every value it validates; `aggregator validate`, which explains a failing
row with pydantic, must never load it. The control run shows that the spy is found when aggregator is not imported, so
the test fails if the package stops disabling plugins.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

CANARY = "Zyxwvutsrq"

SPY = textwrap.dedent(
    """
    import os

    with open(os.environ["SPY_LOG"], "a", encoding="utf-8") as log:
        log.write("loaded\\n")


    class _Spy:
        def new_schema_validator(self, schema, schema_type, schema_type_path, schema_kind, config, plugin_settings):
            def on_enter(*args, **kwargs):
                with open(os.environ["SPY_LOG"], "a", encoding="utf-8") as log:
                    log.write(repr((args, kwargs)) + "\\n")
            class Handler:
                pass
            handler = Handler()
            handler.on_enter = on_enter
            return handler, handler, handler


    plugin = _Spy()
    """
)


def _install_spy(root: Path) -> None:
    (root / "spy_plugin.py").write_text(SPY, encoding="utf-8")
    dist = root / "spy_plugin-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: spy-plugin\nVersion: 1.0\n", encoding="utf-8")
    (dist / "entry_points.txt").write_text("[pydantic]\nspy = spy_plugin:plugin\n", encoding="utf-8")


def _run(code: str, root: Path, log: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(root), "SPY_LOG": str(log)}
    env.pop("PYDANTIC_DISABLE_PLUGINS", None)
    return subprocess.run([sys.executable, "-c", code, *args], env=env, capture_output=True, text=True, timeout=120)


def test_validate_never_loads_a_pydantic_plugin(tmp_path):
    root = tmp_path / "site"
    root.mkdir()
    _install_spy(root)

    # control: without aggregator, pydantic finds the spy and shows it the values it validates
    control_log = tmp_path / "control.log"
    control = _run(
        f"from pydantic import BaseModel\nclass M(BaseModel):\n    name: int\ntry:\n    M(name={CANARY!r})\nexcept Exception:\n    pass",
        root, control_log,
    )
    assert control.returncode == 0, control.stderr
    assert CANARY in control_log.read_text(encoding="utf-8"), "the spy plugin is not found: the test proves nothing"

    export = tmp_path / "export.csv"
    export.write_text(
        "record_id,person_id,family_name,given_names,date_of_birth,report_date,form,gender,nationality,province,consent\n"
        f"R1,P1,{CANARY},Anna,1990-02-30,2025-03-01,sexual,female,NL,NL-UT,yes\n",  # a failing row: pydantic explains it
        encoding="utf-8",
    )
    mapping = tmp_path / "mapping.toml"
    mapping.write_text(
        'date_formats = ["%Y-%m-%d"]\n[file]\nformat = "csv"\n[columns]\n'
        + "".join(f'{c} = "{c}"\n' for c in ("record_id", "person_id", "family_name", "given_names", "date_of_birth",
                                               "report_date", "form", "gender", "nationality", "province", "consent")),
        encoding="utf-8",
    )
    log = tmp_path / "aggregator.log"
    run = _run("import sys; from aggregator.cli import main; sys.argv[0] = 'aggregator'; main()", root, log,
               "validate", str(export), "-m", str(mapping), "--export-date", "2026-01-15")
    assert run.returncode == 1, run.stdout + run.stderr  # invalid export: the report was made
    assert "date_of_birth" in run.stdout
    assert not log.exists(), "a pydantic plugin was loaded by `aggregator validate`"
