"""report.py / `aggregator report`: one self-contained HTML file with tables, SVG charts, trend and budget."""

from __future__ import annotations

import itertools
import json
import random
import re
import shutil
import struct
import subprocess
from collections import Counter
from pathlib import Path

import pytest
from typer.testing import CliRunner

from aggregator.coordinator.national import national_table
from aggregator.coordinator import report
from aggregator.coordinator.merge import merge_bundles
from aggregator.coordinator.registry import register_org
from aggregator.cli import app
from aggregator.contract.codelists import codes
from tests import bundlefactory as bf

import aggregator.cli.report  # noqa: F401  (registers report and explain on the app)

PERIODS = (2024, 2025)
MARGINAL_DIMS = (["form"], ["age_band"], ["nationality_group"], ["form", "age_band"])
EXTERNAL = re.compile(r"https?:|//cdn|<script|<link|<img|<iframe|@import|url\(|src=|href=\"(?!#)", re.IGNORECASE)


def _people(rng: random.Random, n: int) -> list[dict[str, str]]:
    weights = {"form": [5, 3, 2, 0.2, 1], "age_band": [1, 2, 3, 5, 1], "nationality_group": [4, 2, 3, 1]}
    return [{d: rng.choices(codes(d), w)[0] for d, w in weights.items()} for _ in range(n)]


def build_store(folder: Path, periods=PERIODS, seed: int = 11) -> Path:
    """Three organisations; consented/statutory people as records, the others as noisy marginals (+-3 noise)."""
    rng = random.Random(seed)
    db = folder / "national.duckdb"
    orgs = [bf.new_org("shelter-a"), bf.new_org("help-b", reporter_type="help_line"), bf.new_org("police-x", "investigative")]
    for org in orgs:
        register_org(db, org.id, kind=org.kind, reporter_type=org.reporter_type, public_key=org.raw_public)
    paths = []
    for period in periods:
        for org in orgs:
            police = org.kind == "investigative"
            seen = _people(rng, rng.randint(25, 45))
            records = [bf.record(f"{org.id}-{period}-{i}", basis="statutory" if police else "consent", **p)
                       for i, p in enumerate(seen)]
            marginals = []
            if not police:
                hidden = _people(rng, rng.randint(60, 90))
                for dims in MARGINAL_DIMS:
                    truth = Counter(tuple(p[d] for d in dims) for p in hidden)
                    counts = {key: truth[key] + rng.randint(-3, 3)
                              for key in itertools.product(*(codes(d) for d in dims))}
                    marginals.append(bf.marginal(dims, "1/5", counts))
            paths.append(bf.bundle_file(folder / "bundles", org, period=period, records=records, marginals=marginals))
    result = merge_bundles(db, paths)
    assert result.refused == 0, result.as_dict()
    return db


@pytest.fixture(scope="module")
def db(tmp_path_factory) -> Path:
    return build_store(tmp_path_factory.mktemp("report"))


@pytest.fixture(scope="module")
def rendered(db, tmp_path_factory):
    out = tmp_path_factory.mktemp("html")
    results = {lang: report.render_report(db, out / f"report-{lang}.html", lang) for lang in ("en", "nl")}
    return {lang: (r, Path(r.out).read_text(encoding="utf-8")) for lang, r in results.items()}


def test_report_is_self_contained(rendered):
    for _, html in rendered.values():
        assert EXTERNAL.search(html) is None, EXTERNAL.search(html).group(0)
        assert "<style>" in html and "Content-Security-Policy" in html


def test_report_has_charts_with_bars_and_whiskers(rendered):
    result, html = rendered["en"]
    charts = re.findall(r'<svg class="chart[^"]*" id="([^"]+)"', html)
    for period in PERIODS:
        for name in ("form", "age_band", "nationality_group", "compare", "budget"):
            assert f"chart-{name}-{period}" in charts
    assert "chart-trend" in charts
    assert result.charts == len(charts) == 11
    for svg in re.findall(r'<svg class="chart".*?</svg>', html, re.S):
        assert len(re.findall(r'<rect class="bar', svg)) >= 2
    assert html.count('class="whisker"') >= 3 * 20
    # minors (under 15, 15-17) are highlighted in the age chart of each period
    assert html.count('<rect class="bar minor"') == 2 * len(PERIODS)


def test_report_table_matches_the_national_table(db, rendered):
    result, html = rendered["en"]
    rows = re.findall(r"<tr class=\"[^\"]*\"><td>(.*?)</td><td class=\"n\">(-?[\d,]+)</td><td class=\"n\">(-?[\d,]+)</td>"
                      r"<td class=\"n\">(-?[\d,]+)</td>", html)
    assert len(rows) >= result.table_rows > 0
    table = national_table(db, 2025, ["form"])
    by_label = {r[0]: r[1:] for r in rows}
    sexual = next(r for r in table.cells(2025) if r.dims["form"] == "sexual")
    assert sexual.estimate > 0
    assert (f"{sexual.individual:,}", f"{sexual.noisy:,}", f"{sexual.estimate:,}") in [r[1:] for r in rows
                                                                                          if r[0] == "Sexual exploitation"]
    assert "Sexual exploitation" in by_label and "Total" in by_label
    total = national_table(db, 2025, []).total(2025)
    assert f">{total.estimate:,}<" in html and f"{total.lower:,.1f} – {total.upper:,.1f}" in html


def test_every_chart_has_an_axis_title_and_the_records_row_says_statutory_or_consent(rendered):
    for lang, count_title, eps_title, row in (
        ("en", "Presumed victims (number of people)", "Epsilon spent (privacy loss)", "Individual records (statutory or consent)"),
        ("nl", "Vermoedelijke slachtoffers (aantal personen)", "Besteed epsilon (privacyverlies)",
         "Individuele registraties (wettelijk of toestemming)"),
    ):
        _, html = rendered[lang]
        for chart_id, svg in re.findall(r'<svg class="chart[^"]*" id="([^"]+)"(.*?)</svg>', html, re.S):
            titles = re.findall(r'<text class="axis-title"[^>]*>([^<]+)</text>', svg)
            assert titles == [eps_title if "budget" in chart_id else count_title], (lang, chart_id, titles)
        assert f">{row}<" in html
        assert "Consent-only" not in html and "Alleen toestemming" not in html


def test_the_noisy_column_is_explained_before_the_first_table(rendered):
    _, html = rendered["en"]
    first_period = html[html.index('<section id="period-'):]
    explained = first_period.index("The noisy-counts column shows the raw sums")
    assert explained < first_period.index("<table>")


def test_how_to_read_states_the_limits_security_md_states(rendered):
    _, html = rendered["en"]
    explain = html[html.index('<section id="explain">'):]
    for limit in ("at one organisation in one period", "several years", "exact at the coordinator",
                  "counted twice", "two spellings of a name", "invents records or skips the noise"):
        assert limit in explain, limit


def test_budget_per_organisation_for_auditors(rendered):
    _, html = rendered["en"]
    for org in ("shelter-a", "help-b", "police-x"):
        assert f"<td>{org}</td>" in html
    assert "ε 0.8 / 1" in html  # four marginals at 1/5 each
    assert "over the cap" not in html


def test_dutch_labels(rendered):
    _, html = rendered["nl"]
    assert '<html lang="nl">' in html
    for text in ("Seksuele uitbuiting", "Arbeidsuitbuiting", "Jonger dan 15 (minderjarig)", "Nationaliteitsgroep",
                 "Niet-EU", "Schatting", "95%-interval", "Privacybudget per organisatie", "Hoe u deze cijfers leest"):
        assert text in html
    for text in ("Sexual exploitation", "Estimate", "How to read"):
        assert text not in html


def test_single_period_has_no_trend(db, tmp_path):
    result = report.render_report(db, tmp_path / "r.html", "en", 2025)
    html = (tmp_path / "r.html").read_text(encoding="utf-8")
    assert result.periods == [2025] and "chart-trend" not in html and "chart-form-2024" not in html
    assert "chart-form-2025" in html


def test_empty_store_says_so(tmp_path):
    db = tmp_path / "national.duckdb"
    org = bf.new_org("shelter-a")
    register_org(db, org.id, kind=org.kind, reporter_type=org.reporter_type, public_key=org.raw_public)
    result = report.render_report(db, tmp_path / "r.html", "en")
    html = (tmp_path / "r.html").read_text(encoding="utf-8")
    assert result.periods == [] and result.charts == 0 and "No bundles have been merged" in html


def test_cli(db, tmp_path):
    out = tmp_path / "cli.html"
    res = CliRunner().invoke(app, ["report", "--db", str(db), "--out", str(out), "--lang", "nl", "--json"])
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)
    assert data["periods"] == list(PERIODS) and data["lang"] == "nl" and out.is_file()
    res = CliRunner().invoke(app, ["report", "--db", str(tmp_path / "none.duckdb"), "--out", str(out)])
    assert res.exit_code == 1 and "no coordinator store" in res.output
    res = CliRunner().invoke(app, ["report", "--db", str(db), "--out", str(out), "--lang", "fr"])
    assert res.exit_code == 2
    for bad_out in (tmp_path, tmp_path / "cli.html" / "inside.html"):  # a folder; below a file
        res = CliRunner().invoke(app, ["report", "--db", str(db), "--out", str(bad_out)])
        assert res.exit_code == 1 and "error:" in res.output and "Traceback" not in res.output, res.output


# ------------------------------------------------------------------ a real browser

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def _chromium(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [CHROMIUM, *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'profile'}", *args],
        capture_output=True, text=True, timeout=120,
    )


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (CI installs it with apt-get; install it to run this test)")
def test_renders_in_headless_chromium(rendered, tmp_path):
    result, _ = rendered["en"]
    url = Path(result.out).resolve().as_uri()
    shot = tmp_path / "shot.png"
    proc = _chromium(tmp_path, "--enable-logging=stderr", "--v=0", f"--screenshot={shot}", "--window-size=1280,2400", url)
    assert proc.returncode == 0, proc.stderr[-2000:]
    log = proc.stderr
    for bad in ("Uncaught", "CONSOLE", "console error", "ERR_FILE_NOT_FOUND", "ERR_BLOCKED", "Refused to"):
        assert bad not in log, [line for line in log.splitlines() if bad in line]
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    assert (width, height) == (1280, 2400)
    assert len(data) > 50_000  # a page with charts, not a blank one

    dom = _chromium(tmp_path, "--dump-dom", url)
    assert dom.returncode == 0, dom.stderr[-2000:]
    assert len(re.findall(r"<svg class=\"chart", dom.stdout)) == result.charts
    assert len(re.findall(r"<rect class=\"bar", dom.stdout)) >= 40
    assert len(re.findall(r"<tr class=\"[^\"]*\"><td>", dom.stdout)) >= result.table_rows
    # the browser's DOM, not only our file: every chart carries an axis title, the records row is named for both bases
    assert len(re.findall(r'<text class="axis-title"[^>]*>[^<]+</text>', dom.stdout)) == result.charts
    assert "Individual records (statutory or consent)" in dom.stdout and "Consent-only" not in dom.stdout
