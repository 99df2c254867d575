"""Time the aggregator's commands as whole processes against bare DuckDB on the same files, in one run.

    .venv/bin/python benchmarks/run_all.py                     # 1M-row export, 1,000 bundles (a few minutes)
    .venv/bin/python benchmarks/run_all.py --rows 20000 --bundles 50 --reps 3 --no-peers   # smoke run, < 1 minute
    .venv/bin/python benchmarks/run_all.py --large             # adds peak RSS of submit on 10M rows (slow)
    .venv/bin/python benchmarks/run_all.py --only none --no-peers --scaling   # floor/validate/submit at 10k-1M rows

Inputs are generated with a fixed seed into a scratch folder (default: $TMPDIR/aggregator-bench, reused between
runs; never committed). Every figure is the median wall time of --reps runs of a fresh process; the subject and its
baselines run in turn so that load on the machine hits all alike. validate and submit are timed against two bare
DuckDB baselines: today's read + 4-column group-by, and the floor (every mapped column cast to its type and counted),
on which their targets are judged. Then the peers (frictionless, pandera on pandas and on polars, patito,
dataframely, OpenDP), after `peers.py selfcheck`. Results go to stdout and to benchmarks/results-latest.json (not
committed). See benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import data  # noqa: E402  (benchmarks/data.py; only constants here, the work runs in a child process)

PEERS = HERE / "peers.py"
LINKAGE_KEY = "benchmark-linkage-key-0123456789abcdef"
GIB = 1024**3


@dataclass
class Run:
    seconds: float
    max_rss: int  # bytes, of that child alone (os.wait4)
    returncode: int
    cpu: float = 0.0  # user + system seconds of that child


@dataclass
class Figure:
    name: str
    command: str
    baseline_command: str
    seconds: float | None = None
    baseline_seconds: float | None = None
    ratio: float | None = None
    target: str = ""
    status: str = ""
    max_rss: int | None = None
    runs: list[float] = field(default_factory=list)
    baseline_runs: list[float] = field(default_factory=list)
    cpu_seconds: float | None = None
    baseline_cpu_seconds: float | None = None
    cpu_ratio: float | None = None
    cpu_runs: list[float] = field(default_factory=list)
    baseline_cpu_runs: list[float] = field(default_factory=list)
    note: str = ""
    # the floor (validate and submit): bare DuckDB casting every mapped column; their targets are judged on it
    floor_command: str = ""
    floor_seconds: float | None = None
    floor_ratio: float | None = None
    floor_runs: list[float] = field(default_factory=list)
    floor_cpu_seconds: float | None = None
    floor_cpu_ratio: float | None = None
    floor_cpu_runs: list[float] = field(default_factory=list)
    floor_max_rss: int | None = None
    judged_on: str = "baseline"  # "baseline" or "floor"


def aggregator_script() -> str:
    script = Path(sys.executable).parent / "aggregator"
    if script.exists():
        return str(script)
    found = shutil.which("aggregator")
    if not found:
        sys.exit("cannot find the `aggregator` command; run `make install` first")
    return found


def run_once(argv: list[str], *, env: dict[str, str], cwd: Path, timeout: float | None = None, expect: int = 0) -> Run:
    """Run one process, output discarded (stderr kept for errors); wall time and the child's own peak RSS. An exit
    code other than `expect` is an error (1 for `aggregator validate` on an export that fails)."""
    with tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=err, env=env, cwd=cwd)
        deadline = None if timeout is None else start + timeout
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if deadline is not None and time.perf_counter() > deadline:
                proc.kill()
                os.wait4(proc.pid, 0)
                raise TimeoutError(f"timed out after {timeout:.0f} s")
            time.sleep(0.002)
        seconds = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode != expect:
            err.seek(0)
            tail = err.read().decode("utf-8", "replace").strip().splitlines()[-5:]
            raise RuntimeError(f"exit {proc.returncode}: {' | '.join(tail)}")
    return Run(seconds, usage.ru_maxrss * 1024, proc.returncode, usage.ru_utime + usage.ru_stime)


def failing_copy(export: Path, path: Path) -> Path:
    """`export` with the age of its last row made a word (not-an-integer): one failing row, where it costs most."""
    if not path.exists():
        # Streamed in small blocks: reading the export into this process would raise the peak RSS that every child
        # reports (a forked child's ru_maxrss counts its parent's pages until exec).
        start = max(0, export.stat().st_size - 65536)
        with export.open("rb") as src, path.open("wb") as dst:
            src.seek(start)
            tail = src.read().rstrip(b"\n")
            newline = tail.rfind(b"\n")
            cells = tail[newline + 1:].split(b",")
            cells[5] = b"twelve"  # data.py's column order: record_id, person_id, family_name, given_names, dob, age, ...
            src.seek(0)
            left = start + newline + 1  # everything before the last line, as it is
            while left:
                block = src.read(min(left, 1 << 20))
                dst.write(block)
                left -= len(block)
            dst.write(b",".join(cells) + b"\n")
    return path


def generate(what: str, folder: Path, n: int, env: dict[str, str]) -> dict:
    """Make inputs in a child process (keeps this process small, see data.main)."""
    out = subprocess.run([sys.executable, str(HERE / "data.py"), what, str(folder), str(n)], env=env,
                         check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def shell_text(argv: list[str]) -> str:
    import shlex

    shown = [a if len(a) < 80 else a[:36] + "..." for a in argv[:14]]
    return " ".join(shlex.quote(a) for a in shown) + (" ..." if len(argv) > 14 else "")


def compare(
    fig: Figure,
    subject: "callable",
    baseline: "callable",
    *,
    reps: int,
    env: dict[str, str],
    cwd: Path,
    limit: float,
    floor: "callable | None" = None,
    expect: int = 0,
) -> Figure:
    """Alternate baseline, floor and subject runs (after one untimed warm-up of each); medians and ratios.

    With a floor the target is judged on the ratio to the floor; the ratio to the baseline is printed beside it.
    """
    try:
        run_once(baseline(-1), env=env, cwd=cwd)
        if floor is not None:
            run_once(floor(-1), env=env, cwd=cwd)
        run_once(subject(-1), env=env, cwd=cwd, expect=expect)
        for i in range(reps):
            b = run_once(baseline(i), env=env, cwd=cwd)
            fig.baseline_runs.append(b.seconds)
            fig.baseline_cpu_runs.append(b.cpu)
            if floor is not None:
                f = run_once(floor(i), env=env, cwd=cwd)
                fig.floor_runs.append(f.seconds)
                fig.floor_cpu_runs.append(f.cpu)
                fig.floor_max_rss = max(fig.floor_max_rss or 0, f.max_rss)
            r = run_once(subject(i), env=env, cwd=cwd, expect=expect)
            fig.runs.append(r.seconds)
            fig.cpu_runs.append(r.cpu)
            fig.max_rss = max(fig.max_rss or 0, r.max_rss)
    except (RuntimeError, TimeoutError) as exc:
        fig.status = "ERROR"
        fig.note = str(exc)
        return fig
    fig.seconds = statistics.median(fig.runs)
    fig.baseline_seconds = statistics.median(fig.baseline_runs)
    fig.ratio = fig.seconds / fig.baseline_seconds
    fig.cpu_seconds = statistics.median(fig.cpu_runs)
    fig.baseline_cpu_seconds = statistics.median(fig.baseline_cpu_runs)
    fig.cpu_ratio = fig.cpu_seconds / fig.baseline_cpu_seconds if fig.baseline_cpu_seconds else None
    judged = fig.ratio
    if floor is not None:
        fig.floor_seconds = statistics.median(fig.floor_runs)
        fig.floor_ratio = fig.seconds / fig.floor_seconds
        fig.floor_cpu_seconds = statistics.median(fig.floor_cpu_runs)
        fig.floor_cpu_ratio = fig.cpu_seconds / fig.floor_cpu_seconds if fig.floor_cpu_seconds else None
        fig.judged_on, judged = "floor", fig.floor_ratio
    fig.target = f"<= {limit:.1f}x" + (" floor" if floor is not None else "")
    fig.status = "PASS" if judged <= limit else "MISS"
    return fig


def show(fig: Figure) -> None:
    if fig.status == "ERROR" or fig.status == "FAILED":
        print(f"  {fig.name}: {fig.status} {fig.note}", flush=True)
        return
    if fig.seconds is None:
        print(f"  {fig.name}: {fig.status} {fig.note}", flush=True)
        return
    base = f", baseline {fig.baseline_seconds:.3f} s, ratio {fig.ratio:.2f}x" if fig.baseline_seconds else ""
    if fig.floor_seconds:
        base += f"; floor {fig.floor_seconds:.3f} s, ratio {fig.floor_ratio:.2f}x"
    rss = f", peak RSS {fig.max_rss / 2**20:.0f} MiB" if fig.max_rss else ""
    if fig.floor_max_rss:
        rss += f" (floor {fig.floor_max_rss / 2**20:.0f} MiB)"
    if fig.floor_cpu_ratio:
        rss += f"; CPU {fig.cpu_seconds:.3f} s vs floor {fig.floor_cpu_seconds:.3f} s = {fig.floor_cpu_ratio:.2f}x"
    elif fig.cpu_ratio:
        rss += f"; CPU {fig.cpu_seconds:.3f} s vs {fig.baseline_cpu_seconds:.3f} s = {fig.cpu_ratio:.2f}x"
    verdict = fig.status if fig.status == "INFO" else f"{fig.status} {fig.target}"
    print(f"  {fig.name}: {fig.seconds:.3f} s{base}{rss}  [{verdict}] {fig.note}", flush=True)


def profile(argv: list[str], *, env: dict[str, str], cwd: Path, out: Path, top: int = 25) -> str:
    """Run argv (a python console script + args) under cProfile; the top functions by cumulative time."""
    import io
    import pstats

    subprocess.run([sys.executable, "-m", "cProfile", "-o", str(out), *argv], env=env, cwd=cwd,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
    buf = io.StringIO()
    stats = pstats.Stats(str(out), stream=buf)
    stats.sort_stats("cumulative").print_stats(top)
    buf.write("\n--- by own time ---\n")
    stats.sort_stats("tottime").print_stats(15)
    return buf.getvalue()


def selfcheck_text(entry: dict | None) -> str:
    """One line from `peers.py selfcheck --json` for one peer."""
    if not entry:
        return "not run"
    text = f"clean file: {entry['clean']}; rejects {entry['rejects']} of {entry['cases']} bad rows (one per case)"
    if entry["misses"]:
        text += "; MISSES " + ", ".join(entry["misses"])
    if entry["declared_misses"]:
        text += "; misses as declared " + ", ".join(entry["declared_misses"])
    if entry["errors"]:
        text += "; ERRORS on " + ", ".join(entry["errors"])
    return text


def short_rows(n: int) -> str:
    """10000 -> 10k, 1000000 -> 1M, 2500000 -> 2.5M."""
    for unit, size in (("M", 1_000_000), ("k", 1_000)):
        if n >= size:
            return f"{n / size:g}{unit}"
    return str(n)


def growth_limit(rows_ratio: float) -> float:
    """Linear growth with 10% slack: 10x rows -> at most 11x time (issue #17)."""
    return 1.1 * rows_ratio


def scaling_table(points: list[dict]) -> list[str]:
    """The --scaling table: per size the time, ratio to the floor, growth over the size before and peak memory."""
    lines = []
    head = (f"{'rows':>11} {'reps':>4} | {'floor s':>8} {'growth':>7} {'MiB':>6} | {'validate s':>10} {'x floor':>7} "
            f"{'growth':>7} {'MiB':>6} | {'submit s':>9} {'x floor':>7} {'growth':>7} {'MiB':>6}")
    lines += [head, "-" * len(head)]
    prev = None
    for p in points:
        def cell(key: str) -> tuple[str, str, str, str]:
            t = p.get(f"{key}_seconds")
            if t is None:
                return f"{'-':>8}", f"{'-':>7}", f"{'-':>7}", f"{'-':>6}"
            grow = p.get(f"{key}_growth")
            ratio = p.get(f"{key}_floor_ratio")
            return (f"{t:8.3f}", f"{ratio:6.2f}x" if ratio else f"{'':>7}",
                    f"{grow:6.2f}x" if grow else f"{'-':>7}", f"{p[f'{key}_max_rss'] / 2**20:6.0f}")

        if "error" in p:
            lines.append(f"{p['rows']:>11,} {p['reps']:>4} | ERROR {p['error'][-80:]}")
            continue
        f, v, s = cell("floor"), cell("validate"), cell("submit")
        lines.append(f"{p['rows']:>11,} {p['reps']:>4} | {f[0]} {f[2]} {f[3]} | {v[0]:>10} {v[1]} {v[2]} {v[3]} | "
                     f"{s[0]:>9} {s[1]} {s[2]} {s[3]}")
        prev = p
    if prev is not None and len(points) > 1:
        steps = {round(b["rows"] / a["rows"], 2) for a, b in zip(points, points[1:])}
        lines.append(f"growth = time / time at the size before ({', '.join(f'{x:g}x' for x in sorted(steps))} rows); "
                     f"linear is 10x per 10x rows, the target from 1M to 10M rows is <= 11x")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000, help="rows in the export (default 1,000,000)")
    parser.add_argument("--bundles", type=int, default=1000, help="bundles to merge (default 1,000)")
    parser.add_argument("--reps", type=int, default=5, help="timed repetitions per figure (median; default 5)")
    parser.add_argument("--large", action="store_true",
                        help="also measure peak RSS of submit on --large-rows rows (with --scaling: add that size)")
    parser.add_argument("--large-rows", type=int, default=10_000_000, help="rows for --large (default 10,000,000)")
    parser.add_argument("--scaling", action="store_true",
                        help="run the floor, validate and submit at each of --scaling-sizes (and --large-rows with "
                             "--large): time, ratio to the floor, growth per 10x rows and peak memory per size")
    parser.add_argument("--scaling-sizes", default="10000,100000,1000000",
                        help="comma-separated row counts for --scaling (default 10000,100000,1000000)")
    parser.add_argument("--no-peers", action="store_true",
                        help="skip the peers (frictionless, pandera, pandera-polars, patito, dataframely, OpenDP)")
    parser.add_argument("--peers", default="",
                        help="comma-separated peers to run (default all); see `python benchmarks/peers.py describe`")
    parser.add_argument("--peer-timeout", type=float, default=900, help="seconds before a peer run is given up")
    parser.add_argument("--only", default="validate,submit,joint,merge,help",
                        help="comma-separated figures to run: validate, submit, joint (submit with a joint plan "
                             "against submit without), merge, help (default all; 'none' for only --scaling/--large)")
    parser.add_argument("--profile", action="store_true", help="cProfile every figure that misses its target")
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "aggregator-bench",
                        help="scratch folder for generated inputs (reused when present)")
    parser.add_argument("--results", type=Path, default=HERE / "results-latest.json", help="JSON results file")
    args = parser.parse_args()
    only = {name.strip() for name in args.only.split(",") if name.strip() and name.strip() != "none"}
    unknown = only - {"validate", "submit", "joint", "merge", "help"}
    if unknown:
        parser.error(f"--only: unknown figure(s) {', '.join(sorted(unknown))}")
    try:
        scaling_sizes = [int(x.replace("_", "")) for x in args.scaling_sizes.split(",") if x.strip()]
    except ValueError:
        parser.error("--scaling-sizes: comma-separated whole numbers")
    if args.scaling and args.large and args.large_rows not in scaling_sizes:
        scaling_sizes.append(args.large_rows)
    scaling_sizes = sorted(set(scaling_sizes))

    agg = aggregator_script()
    py = sys.executable
    work = args.work.resolve()
    work.mkdir(parents=True, exist_ok=True)
    run_dir = Path(tempfile.mkdtemp(prefix="run-", dir=work))
    env = dict(os.environ, AGGREGATOR_LINKAGE_KEY=LINKAGE_KEY, COLUMNS="120", NO_COLOR="1")
    env.pop("AGGREGATOR_HOME", None)
    figures: list[Figure] = []
    peers: list[dict] = []
    scaling: list[dict] = []

    import resource

    parent_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(f"aggregator benchmarks: {args.rows:,} rows, {args.bundles:,} bundles, {args.reps} reps; "
          f"{platform.python_implementation()} {platform.python_version()}, {os.cpu_count()} CPUs; work {work}; "
          f"this process {parent_rss / 2**20:.0f} MiB (a floor under every child's peak RSS)",
          flush=True)
    need_export = bool(only & {"validate", "submit", "joint"}) or not args.no_peers
    export = work / "none"
    mapping = work / "exports" / "mapping.toml"  # data.make_export writes the same mapping beside every export
    if need_export:
        t0 = time.perf_counter()
        made = generate("export", work / "exports", args.rows, env)
        export, mapping = Path(made["export"]), Path(made["mapping"])
        print(f"  export ready ({export.stat().st_size / 2**20:.0f} MiB) in {time.perf_counter() - t0:.1f} s",
              flush=True)
    bundle_files: list[Path] = []
    registry = work / "none"
    if "merge" in only:
        t0 = time.perf_counter()
        made = generate("bundles", work / f"bundles-{args.bundles}", args.bundles, env)
        bundle_files, registry = [Path(f) for f in made["files"]], Path(made["registry"])
        print(f"  {len(bundle_files)} bundles ready in {time.perf_counter() - t0:.1f} s", flush=True)

    # ---------------------------------------------------------------- validate / submit
    date = ["--export-date", data.EXPORT_DATE]

    def validate_argv(rows_export: Path) -> list[str]:
        return [agg, "validate", str(rows_export), "-m", str(mapping), *date, "--quiet"]

    def floor_argv(rows_export: Path) -> list[str]:
        return [py, str(PEERS), "duckdb-floor", str(rows_export), str(mapping)]

    validate = validate_argv(export)
    duck_csv = [py, str(PEERS), "duckdb-csv", str(export)]
    duck_floor = floor_argv(export)
    if "validate" in only:
        print("validate", flush=True)
        fig = Figure("validate", shell_text(validate), shell_text(duck_csv), floor_command=shell_text(duck_floor))
        figures.append(compare(fig, lambda i: validate, lambda i: duck_csv, floor=lambda i: duck_floor,
                               reps=args.reps, env=env, cwd=run_dir, limit=1.5))
        show(fig)
        # The same export with its last row failing: `aggregator validate` first stores the rows in any order and
        # hands a failing export to the staged read (in file order), so a failing export costs more than a valid one;
        # a row that fails only in the last row is its worst case (an early failing row stops the first pass).
        failing = failing_copy(export, run_dir / f"failing-{export.name}")
        validate_failing = validate_argv(failing)
        fig = Figure("validate (last row fails)", shell_text(validate_failing), shell_text(duck_csv),
                     floor_command=shell_text(duck_floor))
        figures.append(compare(fig, lambda i: validate_failing, lambda i: duck_csv, floor=lambda i: duck_floor,
                               reps=args.reps, env=env, cwd=run_dir, limit=1.5, expect=1))
        if fig.status in ("PASS", "MISS"):
            fig.target, fig.status = "(info)", "INFO"
        show(fig)

    def org_home(path: Path) -> Path:
        subprocess.run([agg, "org", "init", "--org", "bench-shelter", "--kind", "non_investigative",
                        "--reporter-type", "shelter", "--cap", "100", "--home", str(path)],
                       env=env, check=True, stdout=subprocess.DEVNULL)
        return path

    home = org_home(run_dir / "home")

    def submit(i: int, rows_export: Path = export, home: Path = home, tag: str = "") -> list[str]:
        return [agg, "submit", str(rows_export), "-m", str(mapping), *date, "--period", str(data.PERIOD),
                "--epsilon", "1", "--out", str(run_dir / f"out{tag}-{i + 1}"), "--home", str(home), "--quiet"]

    if "submit" in only:
        print("submit", flush=True)
        fig = Figure("submit", shell_text(submit(0)), shell_text(duck_csv), floor_command=shell_text(duck_floor))
        figures.append(compare(fig, submit, lambda i: duck_csv, floor=lambda i: duck_floor, reps=args.reps, env=env,
                               cwd=run_dir, limit=2.0))
        show(fig)

    if "joint" in only:
        # the organisation side of the joint release: bucket vectors, Shamir shares and their encryption for the
        # planned cells (the default plan, and one with four lists by age and origin), against the same submit
        # without a plan
        print("submit with a joint plan", flush=True)
        parties = []
        for name in ("p0", "p1", "p2"):
            subprocess.run([agg, "party", "init", "--name", name, "--home", str(run_dir / "parties" / name)],
                           env=env, check=True, stdout=subprocess.DEVNULL)
            parties += ["--party", str(run_dir / "parties" / name / "party.json")]
        for label, extra in (("default plan", []), ("four lists x 4 strata", ["--lists", "four", "--strata", "age,origin"])):
            plan = run_dir / f"plan-{len(extra)}.json"
            subprocess.run([agg, "plan", "create", "--period", str(data.PERIOD), *parties, "--key",
                            str(run_dir / "coordinator.key"), "--out", str(plan), "--db",
                            str(run_dir / f"plans-{len(extra)}.duckdb"), *extra],
                           env=env, check=True, stdout=subprocess.DEVNULL)

            def joint_submit(i: int, plan: Path = plan, tag: int = len(extra)) -> list[str]:
                return [*submit(1000 + 100 * tag + i), "--plan", str(plan)]

            fig = Figure(f"submit --plan ({label})", shell_text(joint_submit(0)), shell_text(submit(0)))
            figures.append(compare(fig, joint_submit, lambda i: submit(2000 + i), reps=args.reps, env=env,
                                   cwd=run_dir, limit=1.3))
            show(fig)

    # ---------------------------------------------------------------- merge
    listfile = run_dir / "bundles.txt"
    listfile.write_text("\n".join(str(p) for p in bundle_files) + "\n", encoding="utf-8")

    def merge(i: int) -> list[str]:
        target = run_dir / f"merge-{i + 1}" / "national.duckdb"
        if target.parent.exists():
            shutil.rmtree(target.parent)
        target.parent.mkdir(parents=True)
        shutil.copy(registry, target)
        return [agg, "merge", *map(str, bundle_files), "--db", str(target), "--quiet"]

    def duck_merge(i: int) -> list[str]:
        target = run_dir / f"duck-merge-{i + 1}.duckdb"
        target.unlink(missing_ok=True)
        return [py, str(PEERS), "duckdb-bundles", str(listfile), str(target)]

    if "merge" in only:
        print("merge", flush=True)
        fig = Figure("merge", f"aggregator merge <{len(bundle_files)} bundles> --db national.duckdb --quiet",
                     shell_text(duck_merge(0)))
        figures.append(compare(fig, merge, duck_merge, reps=args.reps, env=env, cwd=run_dir, limit=2.0))
        show(fig)

    # ---------------------------------------------------------------- startup
    helps = [agg, "--help"]
    typer_only = [py, "-c", "import typer"]
    sub_help = [agg, "submit", "--help"]
    if "help" in only:
        print("--help", flush=True)
        fig = Figure("--help", shell_text(helps), shell_text(typer_only))
        figures.append(compare(fig, lambda i: helps, lambda i: typer_only, reps=max(args.reps, 10), env=env,
                               cwd=run_dir, limit=1.3))
        show(fig)
        fig = Figure("submit --help", shell_text(sub_help), shell_text(typer_only))
        figures.append(compare(fig, lambda i: sub_help, lambda i: typer_only, reps=max(args.reps, 10), env=env,
                               cwd=run_dir, limit=1.3))
        if fig.status in ("PASS", "MISS"):
            fig.target, fig.status = "(info)", "INFO"
        fig.note = "typer 0.29 imports pydantic for any subcommand"
        show(fig)

    # ---------------------------------------------------------------- growth: floor, validate, submit per size
    large_run: Run | None = None
    if args.scaling:
        print(f"scaling: floor, validate and submit at {', '.join(f'{n:,}' for n in scaling_sizes)} rows "
              f"(median of {args.reps} up to 1,000,000 rows, one run above)", flush=True)
        for n in scaling_sizes:
            size_export = Path(generate("export", work / "exports", n, env)["export"])
            size_home = org_home(run_dir / f"home-{n}")
            reps = args.reps if n <= 1_000_000 else 1
            point: dict = {"rows": n, "reps": reps}
            argvs = {
                "floor": lambda i: floor_argv(size_export),
                "validate": lambda i: validate_argv(size_export),
                "submit": lambda i: submit(i, size_export, size_home, f"-scale-{n}"),
            }
            runs: dict[str, list[Run]] = {k: [] for k in argvs}
            try:
                for key, argv in argvs.items():  # warm-up (page cache, imports); only the cheap floor above 1M rows
                    if reps > 1 or key == "floor":
                        run_once(argv(-1), env=env, cwd=run_dir)
                for i in range(reps):
                    for key, argv in argvs.items():
                        runs[key].append(run_once(argv(i), env=env, cwd=run_dir))
            except (RuntimeError, TimeoutError) as exc:
                point["error"] = str(exc)
                print(f"  {n:,} rows: ERROR {exc}", flush=True)
                scaling.append(point)
                continue
            for key, rs in runs.items():
                point[f"{key}_seconds"] = statistics.median(r.seconds for r in rs)
                point[f"{key}_cpu_seconds"] = statistics.median(r.cpu for r in rs)
                point[f"{key}_max_rss"] = max(r.max_rss for r in rs)
                point[f"{key}_runs"] = [r.seconds for r in rs]
            for key in ("validate", "submit"):
                point[f"{key}_floor_ratio"] = point[f"{key}_seconds"] / point["floor_seconds"]
            before = next((p for p in reversed(scaling) if "error" not in p), None)
            if before is not None:
                for key in argvs:
                    point[f"{key}_growth"] = point[f"{key}_seconds"] / before[f"{key}_seconds"]
            scaling.append(point)
            print(f"  {n:>11,} rows: floor {point['floor_seconds']:.3f} s; validate {point['validate_seconds']:.3f} s "
                  f"({point['validate_floor_ratio']:.2f}x floor, {point['validate_max_rss'] / 2**20:.0f} MiB); "
                  f"submit {point['submit_seconds']:.3f} s ({point['submit_floor_ratio']:.2f}x floor, "
                  f"{point['submit_max_rss'] / 2**20:.0f} MiB)", flush=True)
            if args.large and n == args.large_rows:
                large_run = max(runs["submit"], key=lambda r: r.max_rss)
            # judge the step to the large size: 10x rows -> at most 11x time
            if args.large and n == args.large_rows and before is not None:
                ratio_rows = n / before["rows"]
                for key in ("validate", "submit"):
                    g = point[f"{key}_growth"]
                    limit = growth_limit(ratio_rows)
                    fig = Figure(f"{key} growth {short_rows(before['rows'])}->{short_rows(n)}",
                                 f"{key} at {n:,} rows", f"{key} at {before['rows']:,} rows",
                                 seconds=point[f"{key}_seconds"], baseline_seconds=before[f"{key}_seconds"], ratio=g,
                                 target=f"<= {limit:.1f}x", status="PASS" if g <= limit else "MISS",
                                 note=f"{ratio_rows:g}x rows; floor grew {point['floor_growth']:.2f}x")
                    figures.append(fig)
                    show(fig)
        print()
        for line in scaling_table(scaling):
            print("  " + line)
        print(flush=True)

    # ---------------------------------------------------------------- 10M rows peak RSS
    if args.large:
        label = f"submit {short_rows(args.large_rows)} peak RSS"
        argv = submit(1000, work / "exports" / f"export-{args.large_rows}.csv")
        fig = Figure(label, shell_text(argv), "")
        if large_run is None:
            print(f"submit on {args.large_rows:,} rows (peak RSS)", flush=True)
            big = Path(generate("export", work / "exports", args.large_rows, env)["export"])
            argv = submit(1000, big)
            try:
                large_run = run_once(argv, env=env, cwd=run_dir)
            except (RuntimeError, TimeoutError) as exc:
                fig.status, fig.note = "ERROR", str(exc)
        if large_run is not None:
            r = large_run
            fig.seconds, fig.max_rss, fig.runs = r.seconds, r.max_rss, [r.seconds]
            fig.target = "<= 1.0 GiB"
            fig.status = "PASS" if r.max_rss <= 1 * GIB else "MISS"
            fig.note = f"peak RSS {r.max_rss / GIB:.2f} GiB" + (" (the --scaling run)" if args.scaling else "")
            small = next((f for f in figures if f.name == "submit" and f.seconds), None)
            if small is not None and not args.scaling:
                fig.note += (f"; {r.seconds:.1f} s = {r.seconds / small.seconds:.1f}x submit on {args.rows:,} rows "
                             f"({args.large_rows / args.rows:g}x rows; --scaling judges the growth)")
        figures.append(fig)
        show(fig)

    # ---------------------------------------------------------------- peers (one run each)
    if not args.no_peers:
        described = json.loads(subprocess.run([py, str(PEERS), "describe"], env=env, check=True,
                                              capture_output=True, text=True).stdout)
        wanted = [p.strip() for p in args.peers.split(",") if p.strip()] or list(described)
        missing = [p for p in wanted if p not in described]
        if missing:
            sys.exit(f"--peers: unknown peer(s) {', '.join(missing)}; one of {', '.join(described)}")
        val = next((f for f in figures if f.name == "validate" and f.seconds), None)
        ours = val.seconds if val else None
        ours_cpu = val.cpu_seconds if val else None
        floor_s = val.floor_seconds if val else None
        if ours is None or floor_s is None:  # references for the ratios: one run each
            try:
                floor_s = run_once(duck_floor, env=env, cwd=run_dir).seconds
                ref = run_once(validate, env=env, cwd=run_dir)
                ours, ours_cpu = ref.seconds, ref.cpu
            except (RuntimeError, TimeoutError) as exc:
                print(f"  (no reference times for the peers: {exc})", flush=True)
        # the self-check first: a peer that lets a bad row through on a rule it claims would look faster than it is
        checked = subprocess.run([py, str(PEERS), "selfcheck", "--json"], env=env, capture_output=True, text=True)
        try:
            selfcheck = json.loads(checked.stdout.strip().splitlines()[-1])
        except (ValueError, IndexError):
            selfcheck = {}
            print(f"  selfcheck did not run: {checked.stderr.strip().splitlines()[-1:]}", flush=True)
        print(f"peers (one run each, same export, same rules; the selfcheck gives each a small export with one bad "
              f"row per rule kind); aggregator validate {ours or 0:.3f} s, floor {floor_s or 0:.3f} s", flush=True)
        for name in wanted:
            meta = described[name]
            argv = [py, str(PEERS), name, str(export)]
            entry = {"peer": name, "what": meta["what"], "command": shell_text(argv),
                     "cannot_express": meta.get("cannot", {}), "notes": meta.get("notes", ""),
                     "selfcheck": selfcheck.get(name)}
            try:
                r = run_once(argv, env=env, cwd=run_dir, timeout=args.peer_timeout)
            except (RuntimeError, TimeoutError) as exc:
                entry["status"] = f"not run: {exc}"
                print(f"  {name}: {entry['status']}", flush=True)
            else:
                entry.update(seconds=r.seconds, cpu_seconds=r.cpu, max_rss=r.max_rss,
                             ratio_to_floor=r.seconds / floor_s if floor_s else None,
                             ratio_to_aggregator_validate=r.seconds / ours if ours else None,
                             cpu_ratio_to_aggregator_validate=r.cpu / ours_cpu if ours_cpu else None, status="ok")
                extra = f", {entry['ratio_to_aggregator_validate']:.1f}x aggregator validate" if ours else ""
                extra += f", {entry['ratio_to_floor']:.1f}x floor" if floor_s else ""
                print(f"  {name}: {r.seconds:.2f} s{extra}, peak RSS {r.max_rss / 2**20:.0f} MiB", flush=True)
                print(f"      {meta['what']}", flush=True)
            if meta.get("validates"):
                cannot = meta.get("cannot") or {}
                print("      cannot express: " + ("; ".join(f"{k} ({why})" for k, why in cannot.items())
                                                  if cannot else "none (all rule kinds of aggregator validate)"),
                      flush=True)
                print(f"      selfcheck: {selfcheck_text(selfcheck.get(name))}", flush=True)
            if meta.get("notes"):
                print(f"      note: {meta['notes']}", flush=True)
            peers.append(entry)

    # ---------------------------------------------------------------- profiles of misses
    profiles = {}
    if args.profile:
        for fig in figures:
            if fig.status != "MISS" or fig.name not in ("validate", "submit", "merge", "--help"):
                continue
            commands = {"validate": lambda: validate, "submit": lambda: submit(2000), "merge": lambda: merge(2000),
                        "--help": lambda: helps}
            argv = commands[fig.name]()  # build only the profiled one: the others may lack their inputs
            print(f"\nprofile of {fig.name} (cProfile, cumulative):", flush=True)
            text = profile(argv, env=env, cwd=run_dir, out=run_dir / f"{fig.name.strip('-')}.prof")
            profiles[fig.name] = text
            print(text, flush=True)

    # ---------------------------------------------------------------- summary
    print()
    w = max([24, *(len(f.name) for f in figures)])
    header = (f"{'figure':<{w}} {'seconds':>9} {'baseline':>9} {'ratio':>7} {'floor':>8} {'ratio':>7}  {'target':<14} "
              f"{'result':<6} {'CPU ratio':>9}")
    print(header)
    print("-" * len(header))
    for f in figures:
        sec = f"{f.seconds:9.3f}" if f.seconds is not None else f"{'-':>9}"
        bas = f"{f.baseline_seconds:9.3f}" if f.baseline_seconds else f"{'-':>9}"
        rat = f"{f.ratio:6.2f}x" if f.ratio else f"{'-':>7}"
        if "RSS" in f.name and f.max_rss:
            rat = f"{f.max_rss / GIB:5.2f}G"
        flo = f"{f.floor_seconds:8.3f}" if f.floor_seconds else f"{'-':>8}"
        frat = f"{f.floor_ratio:6.2f}x" if f.floor_ratio else f"{'-':>7}"
        cpu_ratio = f.floor_cpu_ratio if f.judged_on == "floor" else f.cpu_ratio
        cpu = f"{cpu_ratio:8.2f}x" if cpu_ratio else f"{'-':>9}"
        print(f"{f.name:<{w}} {sec} {bas} {rat} {flo} {frat}  {f.target:<14} {f.status:<6} {cpu}")
    if any(f.judged_on == "floor" for f in figures):
        print("baseline = DuckDB read + 4-column group-by; floor = DuckDB casting every mapped column (targets of "
              "validate and submit are judged on the floor); CPU ratio against what the target is judged on")
    if peers:
        print()
        ph = (f"{'peer':<16} {'seconds':>9} {'x validate':>10} {'x floor':>8} {'CPU x val.':>10} {'peak MiB':>9}  "
              f"{'selfcheck':<10} "
              f"cannot express")
        print(ph)
        print("-" * len(ph))
        for p in peers:
            if p.get("status") != "ok":
                print(f"{p['peer']:<16} {p.get('status', '')}")
                continue
            xv = f"{p['ratio_to_aggregator_validate']:9.1f}x" if p.get("ratio_to_aggregator_validate") else f"{'-':>10}"
            xf = f"{p['ratio_to_floor']:7.1f}x" if p.get("ratio_to_floor") else f"{'-':>8}"
            meta = described[p["peer"]]
            gaps = ", ".join(p["cannot_express"]) if p["cannot_express"] else ("-" if meta.get("validates") else
                                                                                "(not a validator)")
            sc = p.get("selfcheck")
            sc = "-" if not meta.get("validates") else "?" if not sc else \
                f"{sc['rejects']}/{sc['cases']}" + ("" if not (sc["misses"] or sc["errors"]) else " FAIL")
            xc = f"{p['cpu_ratio_to_aggregator_validate']:9.1f}x" if p.get("cpu_ratio_to_aggregator_validate") \
                else f"{'-':>10}"
            print(f"{p['peer']:<16} {p['seconds']:9.2f} {xv} {xf} {xc} {p['max_rss'] / 2**20:9.0f}  {sc:<10} {gaps}")
        print("one run per peer against the medians of validate and the floor; on a busy machine trust the CPU ratio; "
              "selfcheck = bad rows rejected of those given (peers.py selfcheck)")
    results = {
        "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "rows": args.rows,
        "bundles": len(bundle_files),
        "reps": args.reps,
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "load_average": os.getloadavg(),
        "figures": [asdict(f) for f in figures],
        "peers": peers,
        "scaling": scaling,
        "profiles": profiles,
    }
    args.results.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    print(f"\nwritten {args.results}")
    shutil.rmtree(run_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
