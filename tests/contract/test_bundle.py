"""bundle.py: canonical JSON equals RFC 8785 on every value a bundle can hold."""

from __future__ import annotations

import pytest
import rfc8785
from hypothesis import given, settings
from hypothesis import strategies as st

from aggregator.contract.envelope import canonical_json
from aggregator.errors import BundleRejected

leaves = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**60), 2**60),
    st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=8),
    st.sampled_from([0.0, -0.0, 1e-7, 5e-324, 1e21, 7.000000000000009, 97.8335032637296, 0.1, 2.0**53, 2.0**53 - 1,
                     2.0**60, 1e20, -(2.0**53)]),
)
# lists of flat dicts of text, like a bundle's records, which canonical_json checks in one go
records = st.lists(st.dictionaries(st.text(max_size=4), st.one_of(st.text(max_size=6), st.none()), max_size=3), max_size=4)
values = st.recursive(st.one_of(leaves, records), lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=6), inner, max_size=4)), max_leaves=20)


@settings(max_examples=400, deadline=None)
@given(values)
def test_canonical_json_is_rfc8785(value):
    try:
        expected = rfc8785.dumps(value)
    except rfc8785.CanonicalizationError:
        with pytest.raises(BundleRejected):
            canonical_json(value)
        return
    assert canonical_json(value) == expected


@settings(max_examples=400, deadline=None)
@given(st.text(max_size=12), st.binary(max_size=64), st.text(max_size=20), st.binary(max_size=64))
def test_envelope_put_together_directly_is_its_canonical_json(payload_type, payload, keyid, signature):
    """open_envelope's canonical form check builds the usual envelope without canonical_json: the same bytes."""
    import base64

    from aggregator.contract.envelope import _canonical_envelope

    expected = rfc8785.dumps({
        "payloadType": payload_type,
        "payload": base64.b64encode(payload).decode("ascii"),
        "signatures": [{"keyid": keyid, "sig": base64.b64encode(signature).decode("ascii")}],
    })
    assert _canonical_envelope(payload_type, payload, keyid, signature) == expected
