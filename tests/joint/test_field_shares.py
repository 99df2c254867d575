"""Pinned field, organisation-side sharing, encoding and sealing."""

import subprocess
import sys
import time

import numpy as np
import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from aggregator.joint import shares as sh
from aggregator.joint.errors import JointError, ShareDecryptError
from aggregator.joint.field import PRIMES, bit_length_for, prime_for, width_for

from .util import chi2_uniform


def test_bit_length_follows_max_orgs():
    assert bit_length_for(64) == 8
    assert bit_length_for(60) == 7
    assert bit_length_for(1) == 3
    with pytest.raises(ValueError):
        bit_length_for(0)


def test_pinned_primes_are_mpycs_choice():
    # In a clean interpreter: importing mpyc.runtime parses sys.argv.
    code = ("from mpyc.runtime import mpc\n"
            f"print({{l: mpc.SecInt(l).field.modulus for l in {sorted(PRIMES)}}})")
    out = subprocess.run([sys.executable, "-c", code, "--no-log"], capture_output=True,
                         text=True, timeout=60, check=True).stdout
    assert eval(out) == PRIMES  # noqa: S307 - our own subprocess's dict literal


def test_organisation_side_does_not_load_mpyc():
    code = ("import sys, numpy as np\n"
            "from aggregator.joint import shares, runner, layout, noise\n"
            "shares.share_vectors(np.ones(10, np.uint8), 34359738319)\n"
            "print(any(m == 'mpyc' or m.startswith('mpyc.') for m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60, check=True).stdout
    assert out.strip() == "False"


def _reconstruct(s, p):
    f1, f2, f3 = (x.astype(object) for x in s)
    return (3 * f1 - 3 * f2 + f3) % p, (f1 - 2 * f2 + f3) % p


def test_sharing_reconstructs_and_is_degree_one():
    p = prime_for(7)
    v = (np.arange(1000) % 3 == 0).astype(np.uint8)
    s = sh.share_vectors(v, p)
    secret, line = _reconstruct(s, p)
    assert (secret == v).all()
    assert (line == 0).all()
    assert all(int(x.max()) < p for x in s)
    with pytest.raises(ValueError):
        sh.share_vectors(np.array([0, 2, 1]), p)


def test_encoding_round_trip_and_width():
    p = prime_for(8)
    v = np.random.default_rng(0).integers(0, 2, 5000).astype(np.uint8)
    s = sh.share_vectors(v, p, seed=b"k" * 32)
    enc = sh.encode_vector(s[1], p)
    assert len(enc) == 6 + width_for(p) * 5000 and width_for(p) == 5
    assert (sh.decode_payload(enc, p, 5000) == s[1]).all()
    assert (sh.decode_payload(sh.encode_seed(b"k" * 32, 5000), p, 5000) == s[0]).all()
    with pytest.raises(ValueError):
        sh.decode_payload(enc, p, 4999)
    bad = bytearray(enc)
    bad[6:11] = b"\xff" * 5  # 2**40 - 1 >= p
    with pytest.raises(ValueError):
        sh.decode_payload(bytes(bad), p, 5000)


def test_share_values_look_uniform_and_the_plain_vector_does_not():
    """Party 1's share values mod 256 are uniform, also within the 1-buckets and the
    0-buckets separately; the same test rejects a 'sharing' that is the vector itself."""
    p = prime_for(7)
    v = np.zeros(200_000, dtype=np.uint8)
    v[:100_000] = 1  # very structured secret
    share = sh.share_vectors(v, p)[1]
    for part in (share, share[v == 1], share[v == 0]):
        assert chi2_uniform((part % 256).astype(np.int64), 256) > 1e-4
    # bits of the encoded file (all bits of the low 4 bytes of each element)
    body = np.frombuffer(sh.encode_vector(share, p)[6:], np.uint8).reshape(-1, 5)[:, :4]
    assert chi2_uniform(body.reshape(-1).astype(np.int64), 256) > 1e-4
    # negative control: the plain vector fails the same tests
    plain = v.astype(np.uint64)
    assert chi2_uniform((plain % 256).astype(np.int64), 256) < 1e-6
    body = np.frombuffer(sh.encode_vector(plain, p)[6:], np.uint8).reshape(-1, 5)[:, :4]
    assert chi2_uniform(body.reshape(-1).astype(np.int64), 256) < 1e-6


def test_sealed_share_opens_only_with_its_key_and_context():
    keys = [X25519PrivateKey.generate() for _ in range(3)]
    pubs = [k.public_key() for k in keys]
    p = prime_for(7)
    ctx = [sh.share_context("plan", "orgA", i) for i in range(3)]
    blobs = sh.seal_shares(np.ones(100, np.uint8), p, pubs, ctx)
    for i in range(3):
        assert sh.decode_payload(sh.decrypt_share(blobs[i], keys[i], ctx[i]), p, 100).shape == (100,)
    attempts = [(blobs[1], keys[0], ctx[1]),  # wrong party key
                (blobs[1], keys[1], ctx[0]),  # context of another party index
                (blobs[1], keys[1], sh.share_context("plan", "orgB", 1)),  # another org
                (blobs[1], keys[1], sh.share_context("plan2", "orgA", 1)),  # another plan
                (blobs[1][:-1] + bytes([blobs[1][-1] ^ 1]), keys[1], ctx[1]),  # altered
                (b"garbage", keys[1], ctx[1])]
    for blob, key, c in attempts:
        with pytest.raises(ShareDecryptError) as ei:
            sh.decrypt_share(blob, key, c)
        assert isinstance(ei.value, JointError)
        assert "share" in str(ei.value)


def test_share_and_seal_is_fast():
    keys = [X25519PrivateKey.generate().public_key() for _ in range(3)]
    p = prime_for(7)
    v = np.random.default_rng(1).integers(0, 2, 300_000).astype(np.uint8)
    ctx = [sh.share_context("plan", "o", i) for i in range(3)]
    t = time.perf_counter()
    blobs = sh.seal_shares(v, p, keys, ctx)
    assert time.perf_counter() - t < 0.5
    assert len(blobs[0]) < 200  # party 0 gets a seed only
