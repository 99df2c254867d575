"""Vectorised GF(p) arithmetic on uint64 numpy arrays (no MPyC, no Python ints).

MPyC works on numpy *object* arrays of Python ints, which costs ~100 ns per
element operation. The local, linear parts of the engine (sharing, summing
shares, the random linear combinations of the input checks) touch every bucket
of every organisation, so they run here in uint64 instead. All primes of
``field.PRIMES`` are below 2**44, so sums of up to 2**19 reduced values and
products split into limbs never overflow 64 bits.
"""

from __future__ import annotations

import os

import numpy as np

_U64 = np.uint64


def uniform(n: int, p: int, *, stream=None) -> np.ndarray:
    """``n`` independent uniform elements of GF(p) as uint64.

    Randomness comes from ``os.urandom`` (a CSPRNG), or, if ``stream`` is
    given, from ``stream(nbytes) -> bytes`` (a deterministic PRG for seeded
    shares). Rejection sampling on ``bit_length(p)``-bit words keeps the
    result exactly uniform; the primes are close to a power of two, so almost
    no words are rejected.
    """
    read = stream or os.urandom
    mask = _U64((1 << p.bit_length()) - 1)
    out = np.empty(n, dtype=_U64)
    filled = 0
    while filled < n:
        need = n - filled
        words = np.frombuffer(read(8 * (need + 16)), dtype="<u8") & mask
        words = words[words < _U64(p)][:need]
        out[filled:filled + len(words)] = words
        filled += len(words)
    return out


def small_coefficients(seed_stream, shape: tuple[int, ...], bits: int = 20) -> np.ndarray:
    """Public random coefficients below 2**bits (uint64) from a byte stream."""
    n = int(np.prod(shape))
    raw = np.frombuffer(seed_stream(4 * n), dtype="<u4").astype(_U64)
    return (raw & _U64((1 << bits) - 1)).reshape(shape)


def mulmod(a: np.ndarray, b: np.ndarray, p: int) -> np.ndarray:
    """Elementwise a*b mod p for reduced uint64 arrays (any p < 2**48).

    b is split into limbs so that each partial product stays below 2**64.
    """
    pb = p.bit_length()
    limb = 64 - pb
    pp = _U64(p)
    a = np.asarray(a, dtype=_U64)
    b = np.asarray(b, dtype=_U64)
    nlimbs = -(-pb // limb)
    res = np.zeros(np.broadcast_shapes(a.shape, b.shape), dtype=_U64)
    lmask = _U64((1 << limb) - 1)
    for k in reversed(range(nlimbs)):
        part = (b >> _U64(k * limb)) & lmask
        res = (res << _U64(limb)) % pp
        res = (res + (a * part) % pp) % pp
    return res


def summod(x: np.ndarray, p: int, axis: int = -1) -> np.ndarray:
    """Sum of reduced uint64 values mod p along ``axis`` without overflow."""
    x = np.moveaxis(np.asarray(x, dtype=_U64), axis, -1)
    pp = _U64(p)
    chunk = 1 << (63 - p.bit_length())
    total = np.zeros(x.shape[:-1], dtype=_U64)
    for start in range(0, x.shape[-1], chunk):
        total = (total + x[..., start:start + chunk].sum(axis=-1, dtype=_U64) % pp) % pp
    return total


def lincomb(rows: np.ndarray, coeffs: np.ndarray, p: int) -> np.ndarray:
    """``rows @ coeffs.T mod p`` for reduced rows (k, n) and small coefficients (r, n).

    Coefficients must be below 2**(64 - bit_length(p)); returns shape (k, r).
    """
    pp = _U64(p)
    out = np.empty((rows.shape[0], coeffs.shape[0]), dtype=_U64)
    for j in range(coeffs.shape[0]):
        out[:, j] = summod((rows * coeffs[j]) % pp, p, axis=-1)
    return out
