"""The pinned prime field of the joint engine.

Organisations secret-share their 0/1 vectors over GF(p) *before* any MPC
runtime exists, and the three computing parties later load those shares as
MPyC ``SecInt(l)`` values. Both sides must therefore agree on p without the
organisation importing MPyC: importing ``mpyc`` (even ``mpyc.finfields``) runs
``mpyc/__init__.py``, which parses ``sys.argv`` and configures logging, and
``mpyc.runtime`` additionally builds a runtime from ``sys.argv``. So p is
written here as a constant, equal to what MPyC 0.10 picks for ``SecInt(l)``
with its default security parameter k = 30 (``find_prime_root(l + k + 2,
n=2)``: the largest Blum prime below 2**(l+32)). A test asserts
``mpc.SecInt(l).field.modulus == prime_for(l)`` so an MPyC upgrade that
changes the choice fails loudly instead of silently mis-decoding shares.

The bit length l bounds MPyC's comparisons: ``x >= 1`` on an l-bit secure
integer is correct for -2**(l-1) <= x - 1 < 2**(l-1). The engine compares
org-sums s (0 <= s <= number of organisations) with 1, 2 and 3, so
l = bit_length(max_orgs) + 1 suffices (64 organisations -> l = 8).
"""

from __future__ import annotations

# MPyC's default security parameter (-K); p depends on it.
SEC_PARAM = 30

# l -> MPyC 0.10 default prime for SecInt(l), computed once with
#   from mpyc.runtime import mpc; mpc.SecInt(l).field.modulus
PRIMES: dict[int, int] = {
    3: 34359738319,
    4: 68719476731,
    5: 137438953447,
    6: 274877906899,
    7: 549755813723,
    8: 1099511627563,
    9: 2199023255531,
    10: 4398046511087,
    11: 8796093022151,
    12: 17592186044399,
}

MIN_BITS = min(PRIMES)
MAX_BITS = max(PRIMES)


def bit_length_for(max_orgs: int) -> int:
    """Comparison bit length l for a plan with at most ``max_orgs`` organisations."""
    if max_orgs < 1:
        raise ValueError("a plan needs at least one organisation")
    l = max(MIN_BITS, max_orgs.bit_length() + 1)
    if l > MAX_BITS:
        raise ValueError(f"at most {2 ** (MAX_BITS - 1) - 1} organisations are supported")
    return l


def prime_for(l: int) -> int:
    """The pinned prime p of ``SecInt(l)``."""
    try:
        return PRIMES[l]
    except KeyError:
        raise ValueError(f"no pinned prime for bit length {l}") from None


def width_for(p: int) -> int:
    """Bytes per field element in the fixed-width little-endian encoding."""
    return (p.bit_length() + 7) // 8
