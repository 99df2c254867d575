"""Organisation side: split 0/1 vectors into three Shamir shares and seal them.

No MPC runtime runs here (see ``field``: importing MPyC parses ``sys.argv``).

Sharing. Each bucket value v is shared with a degree-1 (threshold t = 1)
polynomial f(X) = v + a X over GF(p); party i receives f(i + 1), the
evaluation points MPyC uses. Any single share is uniform and independent of v;
any two determine v. To shrink the bundle by a third, party 0's share is not
sent as a vector but as a 32-byte seed: f(1) = PRG(seed) is uniform in GF(p),
which fixes the slope a = f(1) - v, so f(2) = 2 f(1) - v and f(3) = 3 f(1) - 2 v.
The seed is drawn from ``secrets`` (a CSPRNG); the PRG is ChaCha20 keyed by it.

Sealing. Each party's payload is encrypted to that party's X25519 public key:
an ephemeral X25519 key agreement, HKDF-SHA256 over the shared secret (info
binds both public keys), ChaCha20-Poly1305 with the caller's context (plan
digest, organisation, party index; see ``share_context``) as associated data.
A share therefore only opens for its own plan, organisation and party; moving
it anywhere else fails authentication.
"""

from __future__ import annotations

import secrets
import struct

import numpy as np
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from . import arith
from .errors import ShareDecryptError
from .field import width_for

N_PARTIES = 3
SEED_BYTES = 32
_MAGIC = b"AJS1"  # aggregator joint share, format 1
_KIND_VECTOR = b"V"
_KIND_SEED = b"S"
_HKDF_INFO = b"aggregator.joint share v1"


def prg_stream(seed: bytes):
    """Deterministic byte stream ``read(n)`` from a 32-byte seed (ChaCha20 keystream)."""
    if len(seed) != SEED_BYTES:
        raise ValueError("seed must be 32 bytes")
    enc = Cipher(algorithms.ChaCha20(seed, b"\0" * 16), mode=None).encryptor()

    def read(n: int) -> bytes:
        return enc.update(b"\0" * n)

    return read


def expand_seed(seed: bytes, n: int, p: int) -> np.ndarray:
    """Party 0's share vector f(1) for all n buckets, from its seed."""
    return arith.uniform(n, p, stream=prg_stream(seed))


def share_vectors(vectors: np.ndarray, p: int, seed: bytes | None = None
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Shamir-share a flat 0/1 vector: returns (f(1), f(2), f(3)) as uint64 arrays.

    f(1) is ``expand_seed(seed)``; pass ``seed`` only to reproduce a sharing
    (``seal_shares`` draws a fresh one).
    """
    v = np.asarray(vectors)
    if v.ndim != 1:
        raise ValueError("vectors must be one flat array over all cells")
    if v.size and (v.min() < 0 or v.max() > 1):
        raise ValueError("vectors must be 0/1")
    v = v.astype(np.uint64)
    if seed is None:
        seed = secrets.token_bytes(SEED_BYTES)
    pp = np.uint64(p)
    f1 = expand_seed(seed, v.size, p)
    f2 = (np.uint64(2) * f1 + (pp - v)) % pp
    f3 = (np.uint64(3) * f1 + np.uint64(2) * (pp - v)) % pp
    return f1, f2, f3


def encode_vector(share: np.ndarray, p: int) -> bytes:
    """Fixed-width little-endian bytes of a share vector (width from p)."""
    w = width_for(p)
    raw = np.ascontiguousarray(share, dtype="<u8").view(np.uint8).reshape(-1, 8)
    return _KIND_VECTOR + struct.pack("<BI", w, len(share)) + raw[:, :w].tobytes()


def encode_seed(seed: bytes, n: int) -> bytes:
    """Payload of a seeded share (party 0)."""
    return _KIND_SEED + struct.pack("<I", n) + seed


def decode_payload(payload: bytes, p: int, n: int) -> np.ndarray:
    """Share vector (uint64, reduced mod p) from a payload; ValueError if malformed."""
    kind, body = payload[:1], payload[1:]
    if kind == _KIND_SEED:
        if len(body) != 4 + SEED_BYTES:
            raise ValueError("seeded share has the wrong size")
        (count,) = struct.unpack_from("<I", body)
        if count != n:
            raise ValueError(f"share covers {count} buckets, the layout has {n}")
        return expand_seed(body[4:], n, p)
    if kind == _KIND_VECTOR:
        if len(body) < 5:
            raise ValueError("share is truncated")
        w, count = struct.unpack_from("<BI", body)
        if w != width_for(p):
            raise ValueError(f"share uses {w}-byte elements, the field needs {width_for(p)}")
        if count != n:
            raise ValueError(f"share covers {count} buckets, the layout has {n}")
        data = body[5:]
        if len(data) != w * n:
            raise ValueError("share is truncated")
        buf = np.zeros((n, 8), dtype=np.uint8)
        buf[:, :w] = np.frombuffer(data, dtype=np.uint8).reshape(n, w)
        vec = buf.view("<u8").reshape(n).astype(np.uint64)
        if n and int(vec.max()) >= p:
            raise ValueError("share holds a value outside the field")
        return vec
    raise ValueError("unknown share payload kind")


def share_context(plan_digest: str, org_id: str, party: int) -> bytes:
    """Canonical associated data binding a share to plan, organisation and party."""
    parts = [b"aggregator.joint/v1", plan_digest.encode(), org_id.encode(), str(int(party)).encode()]
    return b"".join(struct.pack("<I", len(x)) + x for x in parts)


def _public_bytes(key: X25519PublicKey | bytes) -> bytes:
    return key if isinstance(key, bytes) else key.public_bytes_raw()


def _key(shared: bytes, eph_pub: bytes, recipient_pub: bytes) -> bytes:
    return HKDF(hashes.SHA256(), 32, salt=None,
                info=_HKDF_INFO + eph_pub + recipient_pub).derive(shared)


def encrypt_share(payload: bytes, recipient: X25519PublicKey | bytes, context: bytes) -> bytes:
    """Seal ``payload`` for the holder of ``recipient``'s private key, bound to ``context``."""
    rpub = _public_bytes(recipient)
    eph = X25519PrivateKey.generate()
    epub = eph.public_key().public_bytes_raw()
    key = _key(eph.exchange(X25519PublicKey.from_public_bytes(rpub)), epub, rpub)
    # The key is fresh for every message (ephemeral sender key), so a fixed nonce is safe.
    return _MAGIC + epub + ChaCha20Poly1305(key).encrypt(b"\0" * 12, payload, _MAGIC + context)


def decrypt_share(blob: bytes, private_key: X25519PrivateKey, context: bytes) -> bytes:
    """Open a sealed share; ShareDecryptError if key, context or bytes do not match."""
    if len(blob) < len(_MAGIC) + 32 + 16 or not blob.startswith(_MAGIC):
        raise ShareDecryptError("this is not a sealed joint share (wrong format or truncated)")
    epub = blob[len(_MAGIC):len(_MAGIC) + 32]
    rpub = private_key.public_key().public_bytes_raw()
    try:
        key = _key(private_key.exchange(X25519PublicKey.from_public_bytes(epub)), epub, rpub)
        return ChaCha20Poly1305(key).decrypt(b"\0" * 12, blob[len(_MAGIC) + 32:], _MAGIC + context)
    except (InvalidTag, ValueError):
        raise ShareDecryptError(
            "the share does not open: it was sealed for another party's key, or for another "
            "plan, organisation or party index, or it was altered in transit") from None


def seal_shares(vectors: np.ndarray, p: int, recipients: list, contexts: list[bytes]) -> list[bytes]:
    """Share a flat 0/1 vector and seal one blob per party (party 0 gets a seed).

    ``recipients[i]`` is party i's X25519 public key, ``contexts[i]`` its
    ``share_context``. Returns the three sealed blobs.
    """
    if len(recipients) != N_PARTIES or len(contexts) != N_PARTIES:
        raise ValueError("need one key and one context per party")
    seed = secrets.token_bytes(SEED_BYTES)
    _, f2, f3 = share_vectors(vectors, p, seed=seed)
    n = int(np.asarray(vectors).size)
    payloads = [encode_seed(seed, n), encode_vector(f2, p), encode_vector(f3, p)]
    return [encrypt_share(pl, r, c) for pl, r, c in zip(payloads, recipients, contexts)]
