"""When a bundle is valid, judged by the coordinator's clock: the times a signer writes are claims, not facts.

The coordinator decides by its receipt time (`now` of the merge; the auditor's rebuild replays the recorded receipt
time), allowing CLOCK_SKEW between the organisation's clock and its own:
- a bundle received at or after its signing key's retirement is refused (`retired-key`), whatever it claims about
  when it was created;
- a bundle created more than CLOCK_SKEW after receipt is refused (`created-in-future`);
- a bundle whose lifetime (expires_at - created_at) is longer than BUNDLE_LIFETIME is refused (`lifetime-too-long`),
  so a backdated or far-future claim cannot stretch how long a signature stays usable;
- a bundle received more than CLOCK_SKEW after its `expires_at` is refused (`expired`).
"""

from __future__ import annotations

import datetime as dt

from ..errors import BundleRejected
from ..util.clock import iso, utc_naive

BUNDLE_LIFETIME = dt.timedelta(days=90)  # the organisation side writes expires_at = created_at + BUNDLE_LIFETIME
CLOCK_SKEW = dt.timedelta(minutes=5)  # how far an organisation's clock may differ from the coordinator's


def check_times(
    created_at: dt.datetime,
    expires_at: dt.datetime,
    received: dt.datetime,
    *,
    key_retired_at: dt.datetime | None = None,
    keyid: str = "",
) -> None:
    """Refuse (BundleRejected) a bundle whose claimed times do not fit its receipt time `received`."""
    created, expires, now = utc_naive(created_at), utc_naive(expires_at), utc_naive(received)
    if key_retired_at is not None and now >= utc_naive(key_retired_at):
        raise BundleRejected(
            f"bundle is signed with key {keyid}, which was retired by a rotation at {iso(key_retired_at)}, "
            "before the bundle was received",
            "retired-key",
        )
    if expires < created:
        raise BundleRejected("bundle expires before it was created", "malformed-payload")
    if created > now + CLOCK_SKEW:
        raise BundleRejected(
            f"bundle claims to be created at {iso(created)}, after its receipt at {iso(now)} "
            f"(more than {int(CLOCK_SKEW.total_seconds() // 60)} minutes of clock skew)",
            "created-in-future",
        )
    if expires - created > BUNDLE_LIFETIME:
        raise BundleRejected(
            f"bundle lifetime from creation to expiry is longer than {BUNDLE_LIFETIME.days} days",
            "lifetime-too-long",
        )
    if expires + CLOCK_SKEW < now:
        raise BundleRejected(f"bundle expired at {iso(expires)}", "expired")
