"""Budget properties: the local ledger never passes the cap, sums are exact, refusals change nothing.

Long random sequences run on privacy.SpendingFile directly (a Hypothesis state machine); a few short random sequences run
real submits (release.submit, ~0.3 s each) and check the home folder and the output folder byte for byte after
every refusal.
"""

from __future__ import annotations

import json

import datetime as dt
from fractions import Fraction
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from aggregator.errors import BudgetExceeded, UsageError
from aggregator.privacy.epsilon import MAX_EPSILON, parse_epsilon
from aggregator.organisation.spending import Spend, SpendingFile

from tests.orgfactory import row, write_export

EPSILON_TEXTS = ["1/3", "0.25", "0.1", "1/7", "0.5", "1", "3/10", "0.05", "2/9"]


def snapshot(*folders: Path) -> dict[str, bytes]:
    """Every file under the folders, by path, with its bytes."""
    files: dict[str, bytes] = {}
    for folder in folders:
        if folder.exists():
            for p in sorted(folder.rglob("*")):
                if p.is_file():
                    files[str(p)] = p.read_bytes()
    return files


# ---------------------------------------------------------------- parse_epsilon


@pytest.mark.parametrize(
    "text",
    ["nan", "NaN", "-nan", "snan", "inf", "-inf", "Infinity", "0", "0.0", "-0", "0/5", "-1", "-0.5", "-1/3", "1e400",
     "101", "abc", "", " ", "1/0", "1/-0", "0x1", "1,5", "½", "1/2/3", "--1", "1e", "None"],
)
def test_parse_epsilon_refuses(text: str) -> None:
    with pytest.raises(UsageError):
        parse_epsilon(text)


def test_parse_epsilon_refuses_floats() -> None:
    with pytest.raises(UsageError):
        parse_epsilon(0.1)  # type: ignore[arg-type]
    with pytest.raises(UsageError):
        parse_epsilon(float("nan"))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "text, value",
    [("1/3", Fraction(1, 3)), ("0.25", Fraction(1, 4)), ("0.1", Fraction(1, 10)), (" 1 ", Fraction(1)),
     ("1e-1", Fraction(1, 10)), ("100", Fraction(100)), ("2/6", Fraction(1, 3))],
)
def test_parse_epsilon_exact(text: str, value: Fraction) -> None:
    parsed = parse_epsilon(text)
    assert isinstance(parsed, Fraction) and parsed == value


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=30) | st.from_regex(r"-?[0-9]{0,4}(\.[0-9]{0,6})?(e-?[0-9]{1,4})?(/-?[0-9]{1,4})?", fullmatch=True))
def test_parse_epsilon_total(text: str) -> None:
    """Any text: either an exact epsilon in (0, MAX] or UsageError; never another exception."""
    try:
        value = parse_epsilon(text)
    except UsageError:
        return
    assert isinstance(value, Fraction) and 0 < value <= MAX_EPSILON


def test_tiny_epsilon_refused_or_calibrated() -> None:
    from aggregator.privacy.mechanism import calibrated_measurement

    try:
        eps = parse_epsilon("1e-400")
    except UsageError:
        return
    calibrated_measurement(eps)


# ---------------------------------------------------------------- the ledger as a state machine


def _entry(period: int, sequence: int, epsilon: Fraction) -> Spend:
    return Spend(period, sequence, str(epsilon), f"{sequence:064x}", "2026-01-01T00:00:00+00:00", 0, 4)


class LedgerMachine(RuleBasedStateMachine):
    """Random appends to a ledger with a random exact cap; a model keeps the exact sums."""

    def __init__(self) -> None:
        super().__init__()
        import tempfile

        self._dir = tempfile.TemporaryDirectory(prefix="ledger-prop-")
        self.path = Path(self._dir.name) / "ledger.jsonl"

    @initialize(cap=st.sampled_from([Fraction(1), Fraction(1, 2), Fraction(7, 10), Fraction(2), Fraction(1, 3)]))
    def setup(self, cap: Fraction) -> None:
        self.ledger = SpendingFile(self.path, cap)
        self.cap = cap
        self.model: dict[int, Fraction] = {}
        self.refusals = 0

    @rule(period=st.sampled_from([2024, 2025]), text=st.sampled_from(EPSILON_TEXTS))
    def append(self, period: int, text: str) -> None:
        eps = parse_epsilon(text)
        before = self.path.read_bytes() if self.path.exists() else None
        spent = self.model.get(period, Fraction(0))
        sequence = self.ledger.next_sequence(period)
        if spent + eps > self.cap:
            with pytest.raises(BudgetExceeded):
                self.ledger.append(_entry(period, sequence, eps))
            after = self.path.read_bytes() if self.path.exists() else None
            assert after == before  # a refusal leaves the file byte-identical
            self.refusals += 1
        else:
            self.ledger.append(_entry(period, sequence, eps))
            self.model[period] = spent + eps

    @rule(period=st.sampled_from([2024, 2025]), text=st.sampled_from(EPSILON_TEXTS))
    def check_only(self, period: int, text: str) -> None:
        eps = parse_epsilon(text)
        before = self.path.read_bytes() if self.path.exists() else None
        fits = self.model.get(period, Fraction(0)) + eps <= self.cap
        if fits:
            self.ledger.check(period, eps)
        else:
            with pytest.raises(BudgetExceeded):
                self.ledger.check(period, eps)
        assert (self.path.read_bytes() if self.path.exists() else None) == before

    @invariant()
    def exact_and_capped(self) -> None:
        if not hasattr(self, "ledger"):
            return
        for period in (2024, 2025):
            spent = self.ledger.spent(period)
            assert isinstance(spent, Fraction)
            assert spent == self.model.get(period, Fraction(0))
            assert spent <= self.cap
            assert self.ledger.remaining(period) == self.cap - spent
        sequences = [(e.period, e.sequence) for e in self.ledger.entries()]
        assert len(sequences) == len(set(sequences))

    def teardown(self) -> None:
        self._dir.cleanup()


LedgerMachine.TestCase.settings = settings(max_examples=60, stateful_step_count=30, deadline=None)
TestLedgerMachine = LedgerMachine.TestCase


def test_exact_sums_reach_the_cap_exactly(tmp_path: Path) -> None:
    """Ten times 0.1 is exactly 1 (a float sum is 0.9999999999999999); thirds add up to 1 exactly too."""
    for text, times in (("0.1", 10), ("1/3", 3), ("1/7", 7)):
        ledger = SpendingFile(tmp_path / f"l-{times}.jsonl", Fraction(1))
        eps = parse_epsilon(text)
        for i in range(times):
            ledger.append(_entry(2025, i + 1, eps))
        assert ledger.spent(2025) == 1 and ledger.remaining(2025) == 0
        with pytest.raises(BudgetExceeded):
            ledger.append(_entry(2025, times + 1, Fraction(1, 10**9)))
        assert ledger.spent(2025) == 1


def test_damaged_ledger_refuses(tmp_path: Path) -> None:
    from aggregator.errors import ConfigError

    path = tmp_path / "ledger.jsonl"
    path.write_text('{"period": 2025, "epsilon": "0.5"\n')
    with pytest.raises(ConfigError):
        SpendingFile(path).spent(2025)


# ---------------------------------------------------------------- real submits


@pytest.fixture(scope="module")
def export(tmp_path_factory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("budget-export")
    return write_export(folder, [row(i) for i in range(24)])


def _new_org(root: Path, cap: str = "1") -> Path:
    from aggregator.organisation.home import init_org

    home = root / "home"
    init_org("shelter-budget", "non_investigative", reporter_type="shelter", cap=cap, home=home)
    return home


def _submit(export: tuple[Path, Path], home: Path, out: Path, text: str):
    from aggregator.organisation.release import submit

    return submit(
        export[0], export[1], period=2025, epsilon=parse_epsilon(text), out=out, home=home,
        linkage_key=b"k" * 32, export_date=dt.date(2026, 1, 15), dry_run=False,
    )


@settings(max_examples=3, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(texts=st.lists(st.sampled_from(["1/3", "0.25", "0.1", "0.5"]), min_size=3, max_size=6))
def test_random_submit_sequences(tmp_path_factory, export: tuple[Path, Path], texts: list[str]) -> None:
    root = tmp_path_factory.mktemp("seq")
    home = _new_org(root)
    out = root / "out"
    spent = Fraction(0)
    sequence = 0
    for text in texts:
        eps = parse_epsilon(text)
        if spent + eps > 1:
            before = snapshot(home, out)
            with pytest.raises(BudgetExceeded):
                _submit(export, home, out, text)
            assert snapshot(home, out) == before
        else:
            result = _submit(export, home, out, text)
            spent += eps
            sequence += 1
            assert result.sequence == sequence
            assert Fraction(result.epsilon_spent) == spent
            assert Path(result.path).exists()
        ledger = SpendingFile(home / "spending.jsonl", Fraction(1))
        assert ledger.spent(2025) == spent <= 1
    assert len(list(out.glob("*"))) == sequence if out.exists() else sequence == 0


def test_resubmission_spends_again_until_refused(tmp_path: Path, export: tuple[Path, Path]) -> None:
    """A corrected (or repeated) submit is a new release: it spends again; the one past the cap changes nothing."""
    home = _new_org(tmp_path)
    out = tmp_path / "out"
    first = _submit(export, home, out, "0.5")
    second = _submit(export, home, out, "0.5")
    assert (first.sequence, second.sequence) == (1, 2)
    assert first.digest != second.digest  # fresh noise and timestamp
    assert Fraction(second.epsilon_spent) == 1
    before = snapshot(home, out)
    with pytest.raises(BudgetExceeded):
        _submit(export, home, out, "0.1")
    assert snapshot(home, out) == before
    # A dry run at zero remaining is also refused, and a dry run that fits writes nothing.
    with pytest.raises(BudgetExceeded):
        from aggregator.organisation.release import submit

        submit(export[0], export[1], period=2025, epsilon=Fraction(1, 10), out=out, home=home,
               linkage_key=b"k" * 32, export_date=dt.date(2026, 1, 15), dry_run=True)
    assert snapshot(home, out) == before


def test_refused_submit_through_cli_is_one_line(tmp_path: Path, export: tuple[Path, Path]) -> None:
    from typer.testing import CliRunner

    import aggregator.cli.organisation  # noqa: F401
    from aggregator.cli import app

    home = _new_org(tmp_path, cap="1/4")
    out = tmp_path / "out"
    key = tmp_path / "linkage.key"
    key.write_bytes(b"k" * 32)
    args = ["submit", str(export[0]), "-m", str(export[1]), "--period", "2025", "--out", str(out), "--home", str(home),
            "--linkage-key", str(key), "--export-date", "2026-01-15", "--json"]
    ok = CliRunner().invoke(app, [*args, "--epsilon", "1/4"], env={"COLUMNS": "2000"})
    assert ok.exit_code == 0, ok.output
    before = snapshot(home, out)
    refused = CliRunner().invoke(app, [*args, "--epsilon", "0.01"], env={"COLUMNS": "2000"})
    assert refused.exit_code == 1
    assert "Traceback" not in refused.output
    # With --json the error is one JSON object on stdout (issue 16); without it, one line on stderr.
    error = json.loads(refused.stdout)["error"]
    assert error["code"] == "budget-exceeded" and error["exit_code"] == 1 and "cap" in error["message"]
    plain = CliRunner().invoke(app, [a for a in args if a != "--json"] + ["--epsilon", "0.01"], env={"COLUMNS": "2000"})
    assert plain.exit_code == 1 and "Traceback" not in plain.output
    lines = [line for line in plain.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:") and "cap" in lines[0]
    assert snapshot(home, out) == before
