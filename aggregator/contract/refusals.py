"""The catalogue of reasons a bundle is refused: one code and one description each, in the order the checks run.

`BundleRejected(message, reason)` accepts only codes listed here, so SECURITY.md, `aggregator merge --help` and the
tests can list every refusal from this one place (`refusal_table()`).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Refusal:
    code: str
    stage: str
    description: str


REFUSALS: dict[str, Refusal] = {
    r.code: r
    for r in (
        Refusal("not-found", "read", "the bundle file does not exist, is a folder or cannot be read"),
        Refusal("oversized", "read", "the file is larger than the bundle size cap"),
        Refusal("not-utf8", "envelope", "the file is not UTF-8 text"),
        Refusal("malformed-json", "envelope", "the file is empty, not JSON or nested too deeply"),
        Refusal("duplicate-key", "envelope", "a JSON object repeats a key"),
        Refusal("not-an-envelope", "envelope", "the JSON is not a signed envelope (payloadType, payload, signatures)"),
        Refusal("unknown-payload-type", "envelope", "the envelope's payload type is not a registration bundle"),
        Refusal("not-canonical", "envelope", "the envelope is not in its one canonical encoding (re-encoded or altered)"),
        Refusal("unknown-key", "registry", "the signing key is not in the registry (unknown organisation or key)"),
        Refusal("bad-signature", "signature", "the Ed25519 signature does not verify with the registered key"),
        Refusal("revoked", "registry", "the organisation or its key is revoked"),
        Refusal("retired-key", "registry", "the key was retired by a rotation before the bundle was received"),
        Refusal("unknown-schema-version", "payload", "the payload's schema version is not one this aggregator knows"),
        Refusal("malformed-payload", "payload", "the payload breaks the bundle schema"),
        Refusal("key-mismatch", "payload", "the payload names another key than the one that signed the envelope"),
        Refusal("org-mismatch", "payload", "the payload claims another organisation than the key's"),
        Refusal("kind-mismatch", "payload", "the payload's organisation kind differs from the registry's"),
        Refusal("reporter-type-mismatch", "payload", "the payload's reporter type differs from the registry's"),
        Refusal("statutory-from-non-investigative", "payload",
                "a non-investigative organisation sent records on a statutory basis"),
        Refusal("created-in-future", "payload",
                "the bundle claims a creation time later than its receipt (beyond the allowed clock skew)"),
        Refusal("lifetime-too-long", "payload", "the bundle's expiry is more than 90 days after its creation"),
        Refusal("expired", "payload", "the bundle's expiry time has passed at its receipt"),
        Refusal("malformed-release", "payload", "the noisy release is incomplete or inconsistent (cells, epsilons, scale)"),
        Refusal("scale-too-small", "payload", "a marginal's noise scale is too small for the epsilon it claims"),
        Refusal("unknown-plan", "payload", "the bundle carries joint shares for a plan this store does not know"),
        Refusal("plan-mismatch", "payload", "the bundle's joint section differs from its plan (period or epsilon)"),
        Refusal("plan-closed", "payload", "the plan's deadline has passed or its joint result is already computed"),
        Refusal("check-failed", "payload",
                "checking the bundle failed unexpectedly (a number or value outside what the checks handle)"),
        Refusal("equivocation", "replay", "the organisation signed another bundle for the same period and sequence"),
        Refusal("stale-sequence", "replay", "the sequence is lower than the latest accepted one (rollback)"),
        Refusal("over-budget", "budget", "the bundle would take the organisation past its epsilon cap for the period"),
    )
}


def refusal_table() -> list[tuple[str, str]]:
    """(code, description) of every refusal, for --help and the docs."""
    return [(r.code, r.description) for r in REFUSALS.values()]
