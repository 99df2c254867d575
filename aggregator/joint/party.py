"""One computing party as a process: ``python -m aggregator.joint.party``.

    python -m aggregator.joint.party --job JOB.json --index I --key KEY --out RESULT.json

The job file (JSON, written by ``runner``) holds the public layout, plan
digest, organisation ids, noise scales, the three parties' host:port, the
share folder and the time limit. The party decrypts its own share of every
organisation (``<share_dir>/<org>.<I>.share``), runs ``program.run`` with
MPyC over TCP (TLS when the job names a TLS folder: MPyC then reads
``.config/party_I.crt``, ``.config/party_I.key`` and ``.config/mpyc_ca.crt``
relative to the working directory, which the runner sets), and writes the
result JSON atomically (and ``stats.json`` beside it: time, bytes sent, peak
memory, for benchmarks).

MPyC has no timeouts: a peer that dies leaves the others waiting forever. So
the whole run sits under ``asyncio.wait_for`` and, in case the event loop is
stuck in computation, a watchdog thread that ends the process hard (also when
the process that started this one is gone).
Exit codes: 0 done, 2 unusable job/input, 3 timeout, 1 anything else.

A job for a party on its own machine (written by ``remote``) also has
``connect_timeout`` (the other two must be connected within it; then the
computation has ``timeout``), ``names``, ``bind`` (listen only on this host),
``pins`` (base64 DER of the plan's three TLS certificates) and ``job_id`` (the
parties compare it first: all three must have been given the same plan,
organisations and bundles); ``wire`` installs the checks, and a lost peer
ends the run at once.

The MPyC command line is built here, before MPyC is imported (importing it
parses ``sys.argv``).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import errno
import json
import os
import resource
import sys
import threading
import time
import traceback
from pathlib import Path

EXIT_OK, EXIT_ERROR, EXIT_INPUT, EXIT_TIMEOUT = 0, 1, 2, 3
TEST_HARNESS_ENV = "AGGREGATOR_JOINT_TEST_HARNESS"


def _load_key(path: str):
    from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

    raw = Path(path).read_bytes()
    if len(raw) != 32:
        raise ValueError("party key file must hold the 32 raw bytes of an X25519 private key")
    return X25519PrivateKey.from_private_bytes(raw)


def load_shares(job: dict, index: int, key) -> tuple[dict, dict]:
    """Decrypt and decode this party's shares: (org -> vector or None, org -> problem)."""
    from . import shares as sh
    from .errors import JointError
    from .field import prime_for
    from .layout import Layout

    layout = Layout.from_json(job["layout"])
    p = prime_for(layout.bits)
    vecs, problems = {}, {}
    for org in job["orgs"]:
        path = Path(job["share_dir"]) / f"{org}.{index}.share"
        try:
            blob = path.read_bytes()
            ctx = sh.share_context(job["plan_digest"], org, index)
            vecs[org] = sh.decode_payload(sh.decrypt_share(blob, key, ctx), p, layout.size)
        except FileNotFoundError:
            vecs[org], problems[org] = None, "share file missing"
        except (JointError, ValueError) as exc:
            vecs[org], problems[org] = None, str(exc)
    return vecs, problems


def result_bytes(result: dict, plan_digest: str) -> bytes:
    """What a party co-signs: the plan's digest and the canonical JSON of the opened result (without the party's
    own index), so a signature never vouches for the same numbers under another plan."""
    from ..contract.envelope import canonical_json

    body = {k: v for k, v in result.items() if k != "party"}
    return b"aggregator-joint-result-v1\n" + plan_digest.encode("ascii") + b"\n" + canonical_json(body)


def sign_result(result: dict, key_path: str, plan_digest: str) -> str:
    import base64

    from cryptography.hazmat.primitives import serialization

    key = serialization.load_pem_private_key(Path(key_path).read_bytes(), password=None)
    return base64.b64encode(key.sign(result_bytes(result, plan_digest))).decode("ascii")


def _write_json(path: str, obj: dict) -> None:
    tmp = Path(path).with_suffix(".tmp")
    tmp.write_text(json.dumps(obj, sort_keys=True))
    os.replace(tmp, path)


class ConnectTimeout(Exception):
    """The other parties did not all connect in time."""


def _watch_parent(index: int) -> None:
    """End this process when the one that started it is gone (no party outlives its runner)."""
    parent = os.getppid()

    def watch() -> None:
        while True:
            time.sleep(0.5)
            if os.getppid() != parent:
                print(f"party {index}: the process that started it is gone; stopping", file=sys.stderr, flush=True)
                os._exit(EXIT_ERROR)

    threading.Thread(target=watch, daemon=True).start()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m aggregator.joint.party")
    ap.add_argument("--job", required=True)
    ap.add_argument("--index", type=int, required=True)
    ap.add_argument("--key", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--sign", help="Ed25519 PEM key: co-sign the result (result.sig next to --out)")
    args = ap.parse_args(argv)

    try:
        job = json.loads(Path(args.job).read_text())
        timeout = float(job["timeout"])
        parties = job["parties"]
        if len(parties) != 3 or not 0 <= args.index < 3:
            raise ValueError("a job has exactly three parties")
        reveal_exact = bool(job.get("reveal_exact", False))
        if reveal_exact and os.environ.get(TEST_HARNESS_ENV) != "1":
            raise ValueError("reveal_exact is only for the test harness")
        no_noise = bool(job.get("no_noise", False))
        if no_noise and os.environ.get(TEST_HARNESS_ENV) != "1":
            raise ValueError("no_noise is only for the test harness")
        if job.get("fail_party") == args.index:  # test hook: a party that exits early
            raise ValueError("the job asks this party to fail (test hook)")
        connect_timeout = float(job["connect_timeout"]) if "connect_timeout" in job else None
        key = _load_key(args.key)
    except (OSError, ValueError, KeyError) as exc:
        print(f"party {args.index}: unusable job: {exc}", file=sys.stderr)
        return EXIT_INPUT

    def _expire() -> None:
        print(f"party {args.index}: timed out after {timeout:.0f} s", file=sys.stderr, flush=True)
        os._exit(EXIT_TIMEOUT)

    watchdog = threading.Timer(timeout + (connect_timeout or 0.0) + 5.0, _expire)
    watchdog.daemon = True
    watchdog.start()
    _watch_parent(args.index)

    vecs, problems = load_shares(job, args.index, key)
    if job.get("hang_party") == args.index:  # test hook: a party that stops responding
        threading.Event().wait()

    mpyc_args = [sys.argv[0], "-I", str(args.index), "--no-log"]
    for party in parties:
        mpyc_args += ["-P", f"{party['host']}:{party['port']}"]
    if job.get("tls"):
        mpyc_args.append("--ssl")
    sys.argv = mpyc_args
    from mpyc.runtime import mpc  # noqa: E402  (parses sys.argv: built just above)

    from . import program
    from .layout import Layout

    from . import wire

    layout = Layout.from_json(job["layout"])
    net = wire.Net(args.index, list(job.get("names") or [f"party {i}" for i in range(3)]),
                   [(p["host"], int(p["port"])) for p in parties],
                   pins=[base64.b64decode(c) for c in job["pins"]] if job.get("pins") else None,
                   bind=job.get("bind"))
    wire.install(mpc, net)

    stats: dict = {}

    async def _compute():
        t0 = time.perf_counter()
        if "job_id" in job:  # parties on their own machines: the same plan, organisations and bundles everywhere
            ids = await mpc.transfer(job["job_id"])
            other = [i for i, j in enumerate(ids) if j != job["job_id"]]
            if other:
                raise ValueError(f"{net.who(other[0])} was given another job (plan, organisations or bundles) "
                                 "than this party; export the job folders again and give every party its own")
        if job.get("die_party") == args.index:  # test hook: a party that crashes in the middle of the computation
            asyncio.get_running_loop().call_later(float(job.get("die_after", 0.5)), os._exit, EXIT_ERROR)
        result = await program.run(mpc, layout, vecs, problems, job["scales"], job["noise"],
                                   reveal_exact=reveal_exact, noise_free=no_noise)
        stats["mpc_seconds"] = time.perf_counter() - t0
        stats["bytes_sent"] = sum(pr.protocol.nbytes_sent for pr in mpc.parties
                                  if pr.pid != mpc.pid and pr.protocol is not None)
        net.closing = True
        await mpc.shutdown()
        return result

    async def _go():
        if connect_timeout is None:  # local runs: one limit for everything
            return await wire.guarded(net, asyncio.wait_for(_all(), timeout))
        try:
            await wire.guarded(net, asyncio.wait_for(mpc.start(), connect_timeout))
        except (asyncio.TimeoutError, TimeoutError):
            raise ConnectTimeout(net.waiting_for(connect_timeout)) from None
        net.connected = True
        return await wire.guarded(net, asyncio.wait_for(_compute(), timeout))

    async def _all():
        await mpc.start()
        net.connected = True
        return await _compute()

    try:
        result = mpc.run(_go())
    except ConnectTimeout as exc:
        print(f"party {args.index}: {exc}", file=sys.stderr)
        return EXIT_TIMEOUT
    except (asyncio.TimeoutError, TimeoutError):
        print(f"party {args.index}: timed out after {timeout:.0f} s", file=sys.stderr)
        return EXIT_TIMEOUT
    except wire.PeerProblem as exc:
        print(f"party {args.index}: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except ValueError as exc:
        print(f"party {args.index}: {exc}", file=sys.stderr)
        return EXIT_INPUT
    except Exception as exc:  # noqa: BLE001 - report every failure in one line for people
        traceback.print_exc()
        hint = ""
        if isinstance(exc, OSError) and exc.errno in (errno.EADDRINUSE, errno.EADDRNOTAVAIL):
            own = parties[args.index]
            hint = (f" (cannot listen on {job.get('bind') or own['host']}:{own['port']}: the port is taken or the "
                    "address is not this machine's; --listen binds another local address)")
        elif isinstance(exc, OSError) and job.get("tls"):
            hint = " (TLS needs .config/party_<i>.crt, .config/party_<i>.key, .config/mpyc_ca.crt)"
        print(f"party {args.index}: {type(exc).__name__}: {exc}{hint}", file=sys.stderr)
        return EXIT_ERROR
    if job.get("bundles") is not None:  # signed with the counts: the coordinator cannot name other bundles later
        result.bundles = [str(b) for b in job["bundles"]]
    out = result.to_json()
    out["party"] = args.index
    stats["peak_rss_kib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    _write_json(str(Path(args.out).with_name("stats.json")), stats)
    if args.sign:
        Path(args.out).with_name("result.sig").write_text(sign_result(out, args.sign, job["plan_digest"]), encoding="ascii")
    _write_json(args.out, out)
    watchdog.cancel()
    return EXIT_OK


if __name__ == "__main__":
    code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)  # no interpreter teardown: MPyC's pending tasks would print after the one-line reason
