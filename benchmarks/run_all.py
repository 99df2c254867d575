"""Time the aggregator's commands as whole processes against bare DuckDB on the same files, in one run.

    .venv/bin/python benchmarks/run_all.py                     # 1M-row export, 1,000 bundles (a few minutes)
    .venv/bin/python benchmarks/run_all.py --rows 20000 --bundles 50 --reps 3 --no-peers   # smoke run, < 1 minute
    .venv/bin/python benchmarks/run_all.py --large             # adds peak RSS of submit on 10M rows (slow)

Inputs are generated with a fixed seed into a scratch folder (default: $TMPDIR/aggregator-bench, reused between
runs; never committed). Every figure is the median wall time of --reps runs of a fresh process; the subject and its
baseline run alternately so that load on the machine hits both alike. Results go to stdout and to
benchmarks/results-latest.json (not committed). See benchmarks/README.md.
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


def aggregator_script() -> str:
    script = Path(sys.executable).parent / "aggregator"
    if script.exists():
        return str(script)
    found = shutil.which("aggregator")
    if not found:
        sys.exit("cannot find the `aggregator` command; run `make install` first")
    return found


def run_once(argv: list[str], *, env: dict[str, str], cwd: Path, timeout: float | None = None) -> Run:
    """Run one process, output discarded (stderr kept for errors); wall time and the child's own peak RSS."""
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
        if proc.returncode != 0:
            err.seek(0)
            tail = err.read().decode("utf-8", "replace").strip().splitlines()[-5:]
            raise RuntimeError(f"exit {proc.returncode}: {' | '.join(tail)}")
    return Run(seconds, usage.ru_maxrss * 1024, proc.returncode, usage.ru_utime + usage.ru_stime)


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
) -> Figure:
    """Alternate baseline and subject runs (after one untimed warm-up of each); medians and ratio."""
    try:
        run_once(baseline(-1), env=env, cwd=cwd)
        run_once(subject(-1), env=env, cwd=cwd)
        for i in range(reps):
            b = run_once(baseline(i), env=env, cwd=cwd)
            fig.baseline_runs.append(b.seconds)
            fig.baseline_cpu_runs.append(b.cpu)
            r = run_once(subject(i), env=env, cwd=cwd)
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
    fig.target = f"<= {limit:.1f}x"
    fig.status = "PASS" if fig.ratio <= limit else "MISS"
    return fig


def show(fig: Figure) -> None:
    if fig.status == "ERROR" or fig.status == "FAILED":
        print(f"  {fig.name}: {fig.status} {fig.note}", flush=True)
        return
    if fig.seconds is None:
        print(f"  {fig.name}: {fig.status} {fig.note}", flush=True)
        return
    base = f", baseline {fig.baseline_seconds:.3f} s, ratio {fig.ratio:.2f}x" if fig.baseline_seconds else ""
    rss = f", peak RSS {fig.max_rss / 2**20:.0f} MiB" if fig.max_rss else ""
    if fig.cpu_ratio:
        rss += f"; CPU {fig.cpu_seconds:.3f} s vs {fig.baseline_cpu_seconds:.3f} s = {fig.cpu_ratio:.2f}x"
    print(f"  {fig.name}: {fig.seconds:.3f} s{base}{rss}  [{fig.status}] {fig.note}", flush=True)


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000, help="rows in the export (default 1,000,000)")
    parser.add_argument("--bundles", type=int, default=1000, help="bundles to merge (default 1,000)")
    parser.add_argument("--reps", type=int, default=5, help="timed repetitions per figure (median; default 5)")
    parser.add_argument("--large", action="store_true", help="also measure peak RSS of submit on --large-rows rows")
    parser.add_argument("--large-rows", type=int, default=10_000_000, help="rows for --large (default 10,000,000)")
    parser.add_argument("--no-peers", action="store_true", help="skip frictionless, pandera and OpenDP")
    parser.add_argument("--peer-timeout", type=float, default=900, help="seconds before a peer run is given up")
    parser.add_argument("--only", default="validate,submit,joint,merge,help",
                        help="comma-separated figures to run: validate, submit, joint (submit with a joint plan "
                             "against submit without), merge, help (default all)")
    parser.add_argument("--profile", action="store_true", help="cProfile every figure that misses its target")
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "aggregator-bench",
                        help="scratch folder for generated inputs (reused when present)")
    parser.add_argument("--results", type=Path, default=HERE / "results-latest.json", help="JSON results file")
    args = parser.parse_args()
    only = {name.strip() for name in args.only.split(",") if name.strip()}
    unknown = only - {"validate", "submit", "joint", "merge", "help"}
    if unknown:
        parser.error(f"--only: unknown figure(s) {', '.join(sorted(unknown))}")

    agg = aggregator_script()
    py = sys.executable
    work = args.work.resolve()
    work.mkdir(parents=True, exist_ok=True)
    run_dir = Path(tempfile.mkdtemp(prefix="run-", dir=work))
    env = dict(os.environ, AGGREGATOR_LINKAGE_KEY=LINKAGE_KEY, COLUMNS="120", NO_COLOR="1")
    env.pop("AGGREGATOR_HOME", None)
    figures: list[Figure] = []
    peers: list[dict] = []

    import resource

    parent_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(f"aggregator benchmarks: {args.rows:,} rows, {args.bundles:,} bundles, {args.reps} reps; "
          f"{platform.python_implementation()} {platform.python_version()}, {os.cpu_count()} CPUs; work {work}; "
          f"this process {parent_rss / 2**20:.0f} MiB (a floor under every child's peak RSS)",
          flush=True)
    t0 = time.perf_counter()
    made = generate("export", work / "exports", args.rows, env)
    export, mapping = Path(made["export"]), Path(made["mapping"])
    print(f"  export ready ({export.stat().st_size / 2**20:.0f} MiB) in {time.perf_counter() - t0:.1f} s", flush=True)
    bundle_files: list[Path] = []
    registry = work / "none"
    if "merge" in only:
        t0 = time.perf_counter()
        made = generate("bundles", work / f"bundles-{args.bundles}", args.bundles, env)
        bundle_files, registry = [Path(f) for f in made["files"]], Path(made["registry"])
        print(f"  {len(bundle_files)} bundles ready in {time.perf_counter() - t0:.1f} s", flush=True)

    # ---------------------------------------------------------------- validate / submit
    date = ["--export-date", data.EXPORT_DATE]
    validate = [agg, "validate", str(export), "-m", str(mapping), *date, "--quiet"]
    duck_csv = [py, str(PEERS), "duckdb-csv", str(export)]
    if "validate" in only:
        print("validate", flush=True)
        fig = Figure("validate", shell_text(validate), shell_text(duck_csv))
        figures.append(compare(fig, lambda i: validate, lambda i: duck_csv, reps=args.reps, env=env, cwd=run_dir,
                               limit=1.5))
        show(fig)

    home = run_dir / "home"
    subprocess.run([agg, "org", "init", "--org", "bench-shelter", "--kind", "non_investigative",
                    "--reporter-type", "shelter", "--cap", "100", "--home", str(home)],
                   env=env, check=True, stdout=subprocess.DEVNULL)

    def submit(i: int, rows_export: Path = export) -> list[str]:
        return [agg, "submit", str(rows_export), "-m", str(mapping), *date, "--period", str(data.PERIOD),
                "--epsilon", "1", "--out", str(run_dir / f"out-{i + 1}"), "--home", str(home), "--quiet"]

    if "submit" in only:
        print("submit", flush=True)
        fig = Figure("submit", shell_text(submit(0)), shell_text(duck_csv))
        figures.append(compare(fig, submit, lambda i: duck_csv, reps=args.reps, env=env, cwd=run_dir, limit=2.0))
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
        figures.append(compare(fig, merge, duck_merge, reps=args.reps, env=env, cwd=run_dir, limit=3.0))
        show(fig)

    # ---------------------------------------------------------------- startup
    helps = [agg, "--help"]
    typer_only = [py, "-c", "import typer"]
    sub_help = [agg, "submit", "--help"]
    if "help" in only:
        print("--help", flush=True)
        fig = Figure("--help", shell_text(helps), shell_text(typer_only))
        figures.append(compare(fig, lambda i: helps, lambda i: typer_only, reps=max(args.reps, 10), env=env,
                               cwd=run_dir, limit=1.5))
        show(fig)
        fig = Figure("submit --help", shell_text(sub_help), shell_text(typer_only))
        figures.append(compare(fig, lambda i: sub_help, lambda i: typer_only, reps=max(args.reps, 10), env=env,
                               cwd=run_dir, limit=1.5))
        if fig.status in ("PASS", "MISS"):
            fig.target, fig.status = "(info)", "INFO"
        fig.note = "typer 0.29 imports pydantic for any subcommand"
        show(fig)

    # ---------------------------------------------------------------- 10M rows peak RSS
    if args.large:
        print(f"submit on {args.large_rows:,} rows (peak RSS)", flush=True)
        big = Path(generate("export", work / "exports", args.large_rows, env)["export"])
        argv = submit(1000, big)
        fig = Figure(f"submit {args.large_rows // 1_000_000}M peak RSS", shell_text(argv), "")
        try:
            r = run_once(argv, env=env, cwd=run_dir)
        except (RuntimeError, TimeoutError) as exc:
            fig.status, fig.note = "ERROR", str(exc)
        else:
            fig.seconds, fig.max_rss, fig.runs = r.seconds, r.max_rss, [r.seconds]
            fig.target = "<= 2.0 GiB"
            fig.status = "PASS" if r.max_rss <= 2 * GIB else "MISS"
            fig.note = f"peak RSS {r.max_rss / GIB:.2f} GiB"
        figures.append(fig)
        show(fig)

    # ---------------------------------------------------------------- peers (one run each)
    if not args.no_peers:
        print("peers (one run each, same export)", flush=True)
        base = next((f.baseline_seconds for f in figures if f.name == "validate"), None)
        ours = next((f.seconds for f in figures if f.name == "validate"), None)
        for name, what in (
            ("frictionless", "frictionless-py validate, same field rules"),
            ("pandera", "pandas read_csv + pandera DataFrameSchema, same field and row rules"),
            ("opendp", "OpenDP split_dataframe >> select_column >> count_by_categories >> laplace, 3 raw-column marginals"),
        ):
            argv = [py, str(PEERS), name, str(export)]
            entry = {"peer": name, "what": what, "command": shell_text(argv)}
            try:
                r = run_once(argv, env=env, cwd=run_dir, timeout=args.peer_timeout)
            except (RuntimeError, TimeoutError) as exc:
                entry["status"] = f"not run: {exc}"
                print(f"  {name}: {entry['status']}", flush=True)
            else:
                entry.update(seconds=r.seconds, max_rss=r.max_rss,
                             ratio_to_duckdb=r.seconds / base if base else None,
                             ratio_to_aggregator_validate=r.seconds / ours if ours else None, status="ok")
                extra = f", {entry['ratio_to_duckdb']:.1f}x bare DuckDB" if base else ""
                extra += f", {entry['ratio_to_aggregator_validate']:.1f}x aggregator validate" if ours else ""
                print(f"  {name}: {r.seconds:.2f} s{extra}, peak RSS {r.max_rss / 2**20:.0f} MiB ({what})", flush=True)
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
    header = f"{'figure':<22} {'seconds':>9} {'baseline':>9} {'ratio':>7}  {'target':<11} {'result':<6} {'CPU ratio':>9}"
    print(header)
    print("-" * len(header))
    for f in figures:
        sec = f"{f.seconds:9.3f}" if f.seconds is not None else f"{'-':>9}"
        bas = f"{f.baseline_seconds:9.3f}" if f.baseline_seconds else f"{'-':>9}"
        rat = f"{f.ratio:6.2f}x" if f.ratio else f"{'-':>7}"
        if "RSS" in f.name and f.max_rss:
            rat = f"{f.max_rss / GIB:5.2f}G"
        cpu = f"{f.cpu_ratio:8.2f}x" if f.cpu_ratio else f"{'-':>9}"
        print(f"{f.name:<22} {sec} {bas} {rat}  {f.target:<11} {f.status:<6} {cpu}")
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
        "profiles": profiles,
    }
    args.results.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    print(f"\nwritten {args.results}")
    shutil.rmtree(run_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
