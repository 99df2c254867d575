"""Run the three computing parties locally, and make their TLS material.

``run_local(job, timeout)`` writes one job file per party, starts the three
party processes (``python -m aggregator.joint.party``) on free ports of
127.0.0.1, and waits. If any party exits with an error, every other party is
killed at once and a ``PartyFailed`` names it; if the time runs out, all are
killed and ``PartyFailed`` says so. It never hangs and never returns a partial
result: it returns only when all three wrote results, and those must agree.

``make_tls(folder)`` writes the files MPyC 0.10's ``--ssl`` reads, in
``folder/.config/``: ``party_<i>.crt``, ``party_<i>.key`` (common name
``MPyC party <i>``, which MPyC checks as the server host name) and
``mpyc_ca.crt``. The CA's private key lives only in memory while the three
certificates are signed, and is then dropped: nobody can issue another
certificate that the parties would trust.
"""

from __future__ import annotations

import datetime
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field as dc_field
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.x509.oid import NameOID

from .errors import PartyFailed
from .layout import Layout
from .noise import POLYA
from .program import JointResult

N_PARTIES = 3
ORG_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_PKG_ROOT = str(Path(__file__).resolve().parents[2])


@dataclass
class Job:
    """Everything the parties need; the share files are ``<share_dir>/<org>.<i>.share``."""
    layout: Layout
    plan_digest: str
    orgs: list[str]
    scales: dict[str, float]
    share_dir: str
    keys: list[str]  # per party: file with the raw 32-byte X25519 private key
    tls: str | None = None  # folder made by make_tls, or None for plain TCP
    reveal_exact: bool = False  # test harness only
    extra: dict = dc_field(default_factory=dict)  # test hooks passed to the job file
    sign_keys: list[str] | None = None  # per party: Ed25519 PEM key that co-signs the result
    bundles: list[str] | None = None  # the bundle digest of each organisation, in `orgs` order; signed with the result
    noise: str = POLYA  # the plan's noise model (joint/noise.py: model_of)

    def __post_init__(self) -> None:
        bad = [o for o in self.orgs if not ORG_ID.match(o)]
        if bad:
            raise ValueError(f"organisation ids must be short and plain: {bad[:3]}")
        if len(set(self.orgs)) != len(self.orgs):
            raise ValueError("organisation ids must be unique")
        if len(self.keys) != N_PARTIES:
            raise ValueError("one key file per party")
        self.layout.check_orgs(self.orgs)


def make_party_keys(folder: str | Path) -> list[str]:
    """Create three X25519 party keys (raw private bytes, mode 0600); return their paths."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(N_PARTIES):
        path = folder / f"party_{i}.x25519"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(X25519PrivateKey.generate().private_bytes_raw())
        paths.append(str(path))
    return paths


def public_keys(key_paths: list[str]) -> list[bytes]:
    return [X25519PrivateKey.from_private_bytes(Path(p).read_bytes()).public_key().public_bytes_raw()
            for p in key_paths]


def _free_ports(n: int) -> list[int]:
    socks = []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def _kill_all(procs) -> None:
    for pr in procs:
        if pr.poll() is None:
            pr.kill()
    for pr in procs:
        try:
            pr.wait(timeout=10)
        except subprocess.TimeoutExpired:  # pragma: no cover - kill is not ignorable
            pass


def last_line(path: Path, limit: int = 400) -> str:
    """The party's one-line reason (its last stderr line); details stay in the file."""
    try:
        lines = [ln for ln in path.read_text(errors="replace").splitlines() if ln.strip()]
    except OSError:
        return ""
    return lines[-1].strip()[:limit] if lines else ""


def run_local(job: Job, timeout: float = 600.0, workdir: str | Path | None = None,
              on_start=None) -> JointResult:
    """Run all three parties on 127.0.0.1; the agreed result, or PartyFailed.

    ``on_start(processes)``, if given, is called once all three are started
    (tests use it to kill one).
    """
    own_tmp = None
    if workdir is None:
        own_tmp = tempfile.TemporaryDirectory(prefix="joint-")
        workdir = own_tmp.name
    workdir = Path(workdir)
    try:
        return _run(job, timeout, workdir, on_start, keep=own_tmp is None)
    finally:
        if own_tmp is not None:
            own_tmp.cleanup()


HARNESS_EXTRA_ENV = "AGGREGATOR_JOINT_TEST_EXTRA"


def harness_extra() -> dict:
    """Test hooks for the job file from the environment (JSON in AGGREGATOR_JOINT_TEST_EXTRA), honoured only
    inside the test harness (party.TEST_HARNESS_ENV=1), so tests can reach parties started by the CLI."""
    from .party import TEST_HARNESS_ENV

    text = os.environ.get(HARNESS_EXTRA_ENV)
    if not text or os.environ.get(TEST_HARNESS_ENV) != "1":
        return {}
    extra = json.loads(text)
    return extra if isinstance(extra, dict) else {}


def party_env() -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = _PKG_ROOT + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env


def start_party(job_path: Path, index: int, key: str, out: Path, err: Path, cwd: Path,
                sign: str | None = None) -> subprocess.Popen:
    """Start one party process (``python -m aggregator.joint.party``); its stderr goes to `err`."""
    with open(err, "wb") as ef:
        return subprocess.Popen(
            [sys.executable, "-m", "aggregator.joint.party", "--job", str(job_path),
             "--index", str(index), "--key", str(Path(key).resolve()), "--out", str(out)]
            + (["--sign", str(Path(sign).resolve())] if sign else []),
            cwd=cwd, env=party_env(), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=ef)


def _run(job: Job, timeout: float, workdir: Path, on_start, keep: bool) -> JointResult:
    ports = _free_ports(N_PARTIES)
    spec = {"layout": job.layout.to_json(), "plan_digest": job.plan_digest, "orgs": job.orgs,
            "scales": job.scales, "noise": job.noise, "share_dir": str(Path(job.share_dir).resolve()),
            "parties": [{"host": "127.0.0.1", "port": port} for port in ports],
            "timeout": timeout, "tls": bool(job.tls), "reveal_exact": job.reveal_exact,
            **({"bundles": job.bundles} if job.bundles is not None else {}), **harness_extra(), **job.extra}
    procs, outs, errs = [], [], []
    deadline = time.monotonic() + timeout
    try:
        for i in range(N_PARTIES):
            pdir = workdir / f"party{i}"
            pdir.mkdir(parents=True, exist_ok=True)
            jpath = pdir / "job.json"
            jpath.write_text(json.dumps(spec))
            outs.append(pdir / "result.json")
            errs.append(pdir / "stderr.txt")
            cwd = Path(job.tls).resolve() if job.tls else pdir
            procs.append(start_party(jpath, i, job.keys[i], outs[-1], errs[-1], cwd,
                                     job.sign_keys[i] if job.sign_keys else None))
        if on_start is not None:
            on_start(list(procs))
        while True:
            codes = [pr.poll() for pr in procs]
            failed = [i for i, c in enumerate(codes) if c not in (None, 0)]
            if failed:
                i = failed[0]
                _kill_all(procs)
                why = last_line(errs[i]) or "no message (killed?)"
                raise PartyFailed(f"party {i} failed (exit code {codes[i]}): {why}. "
                                  "The other parties were stopped; nothing was released."
                                  + (f" Details: {errs[i]}" if keep else ""), party=i)
            if all(c == 0 for c in codes):
                break
            if time.monotonic() > deadline:
                waiting = [i for i, c in enumerate(codes) if c is None]
                _kill_all(procs)
                raise PartyFailed(f"the joint computation did not finish within {timeout:.0f} s "
                                  f"(still running: parties {waiting}); all parties were stopped "
                                  "and nothing was released.", party=waiting[0])
            time.sleep(0.05)
    finally:
        _kill_all(procs)

    results = []
    for i, path in enumerate(outs):
        try:
            d = json.loads(path.read_text())
        except (OSError, ValueError):
            raise PartyFailed(f"party {i} exited without a readable result", party=i) from None
        d.pop("party", None)
        results.append(d)
    if any(r != results[0] for r in results[1:]):
        bad = next(i for i, r in enumerate(results) if r != results[0])
        raise PartyFailed(f"party {bad}'s result differs from party 0's; nothing is released",
                          party=bad)
    result = JointResult.from_json(results[0])
    if job.sign_keys:
        result.signatures = [(path.with_name("result.sig")).read_text(encoding="ascii") for path in outs]
    return result


def make_tls(folder: str | Path, n: int = N_PARTIES) -> Path:
    """Write MPyC TLS files into ``folder/.config`` (CA key never written); returns folder."""
    folder = Path(folder)
    cfg = folder / ".config"
    cfg.mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.timezone.utc)
    not_after = now + datetime.timedelta(days=30)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "MPyC joint CA")])
    ca_cert = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
               .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(not_after)
               .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
               .sign(ca_key, hashes.SHA256()))
    (cfg / "mpyc_ca.crt").write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    for i in range(n):
        key = ec.generate_private_key(ec.SECP256R1())
        cn = f"MPyC party {i}"
        cert = (x509.CertificateBuilder()
                .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)]))
                .issuer_name(ca_name).public_key(key.public_key())
                .serial_number(x509.random_serial_number())
                .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(not_after)
                .add_extension(x509.SubjectAlternativeName([x509.DNSName(cn)]), critical=False)
                .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
                .sign(ca_key, hashes.SHA256()))
        kpath = cfg / f"party_{i}.key"
        fd = os.open(kpath, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(key.private_bytes(serialization.Encoding.PEM,
                                      serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption()))
        (cfg / f"party_{i}.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    del ca_key  # only ever in memory
    return folder


def write_shares(share_dir: str | Path, layout: Layout, plan_digest: str,
                 vectors: dict[str, "object"], key_paths: list[str]) -> None:
    """Organisation-side helper for local runs: seal each org's vector into share files."""
    from . import shares as sh
    from .field import prime_for

    share_dir = Path(share_dir)
    share_dir.mkdir(parents=True, exist_ok=True)
    pubs = public_keys(key_paths)
    p = prime_for(layout.bits)
    for org, vec in vectors.items():
        blobs = sh.seal_shares(vec, p, pubs, [sh.share_context(plan_digest, org, i)
                                             for i in range(N_PARTIES)])
        for i, blob in enumerate(blobs):
            (share_dir / f"{org}.{i}.share").write_bytes(blob)
