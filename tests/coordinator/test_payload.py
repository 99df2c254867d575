"""payload.py: merge's direct check of plain cells gives what the Payload model and the cell rule give, refusals
and their messages included, whatever the cells hold."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aggregator.contract.envelope import OpenedEnvelope, PAYLOAD_TYPE, canonical_json, parse_payload
from aggregator.coordinator.admission import _release_epsilon
from aggregator.coordinator.payload import RecordColumns, parse_staged_payload
from aggregator.errors import BundleRejected
from tests import bundlefactory as bf

ORG = bf.new_org("shelter-noord")


def _base() -> dict[str, Any]:
    payload = bf.make_payload(
        ORG, records=[bf.record(1), bf.record(2)],
        marginals=[bf.marginal(["form"], "1/4", fill=3), bf.marginal(["gender", "province"], "1/4", fill=-2)],
    )
    return payload.model_dump(mode="json")


BASE = _base()


def _opened(raw: Any) -> OpenedEnvelope:
    data = json.dumps(raw).encode() if not isinstance(raw, bytes) else raw
    return OpenedEnvelope("0" * 64, PAYLOAD_TYPE, data, ORG.keyid, b"")


def _outcome(parse, release_check, raw: Any) -> tuple:
    """What merge makes of a payload: the refusal (reason, message), or the checked release, the records as
    columns and the model's dump without records and cells."""
    try:
        payload, counts, records = parse(_opened(raw))
        total, texts, all_counts = release_check(payload, counts)
    except BundleRejected as exc:
        return ("refused", exc.reason, exc.message)
    dump = payload.model_dump(mode="json")
    dump.pop("records")
    for marginal in (dump.get("release") or {}).get("marginals", []):
        marginal.pop("cells")
    return ("ok", total, texts, all_counts, records, dump)


def _before(raw: Any) -> tuple:
    def parse(opened):
        payload = parse_payload(opened)
        return payload, None, RecordColumns.of(payload.records)

    return _outcome(parse, lambda p, counts: _release_epsilon(p), raw)


def _now(raw: Any) -> tuple:
    return _outcome(parse_staged_payload, _release_epsilon, raw)


def _edited(change) -> dict[str, Any]:
    raw = copy.deepcopy(BASE)
    change(raw)
    return raw


def _cell(raw, m=1, c=3):
    return raw["release"]["marginals"][m]["cells"][c]


EDITS = {
    "unchanged": lambda r: None,
    "count float whole": lambda r: _cell(r).update(count=3.0),
    "count float": lambda r: _cell(r).update(count=3.5),
    "count text": lambda r: _cell(r).update(count="3"),
    "count true": lambda r: _cell(r).update(count=True),
    "count null": lambda r: _cell(r).update(count=None),
    "count at bound": lambda r: _cell(r).update(count=10**12),
    "count below bound": lambda r: _cell(r).update(count=-(10**12)),
    "count over bound": lambda r: _cell(r).update(count=10**12 + 1),
    "count huge": lambda r: _cell(r).update(count=10**40),
    "count missing": lambda r: _cell(r).pop("count"),
    "key missing": lambda r: _cell(r).pop("key"),
    "extra field": lambda r: _cell(r).update(note="x"),
    "key swapped": lambda r: _cell(r).update(key=list(reversed(_cell(r)["key"]))),
    "key other cell": lambda r: _cell(r).update(key=_cell(r, c=4)["key"]),
    "key too long": lambda r: _cell(r).update(key=_cell(r)["key"] + ["x"] * 4),
    "key empty": lambda r: _cell(r).update(key=[]),
    "key text": lambda r: _cell(r).update(key="female"),
    "key number": lambda r: _cell(r).update(key=[1, 2]),
    "cell list": lambda r: r["release"]["marginals"][1]["cells"].__setitem__(3, [["female", "NL-DR"], 1]),
    "cell null": lambda r: r["release"]["marginals"][1]["cells"].__setitem__(3, None),
    "cells short": lambda r: r["release"]["marginals"][1]["cells"].pop(),
    "cells long": lambda r: r["release"]["marginals"][0]["cells"].append({"key": ["sexual"], "count": 1}),
    "cells reordered": lambda r: r["release"]["marginals"][0]["cells"].reverse(),
    "cells empty": lambda r: r["release"]["marginals"][0].update(cells=[]),
    "cells null": lambda r: r["release"]["marginals"][0].update(cells=None),
    "cells missing": lambda r: r["release"]["marginals"][0].pop("cells"),
    "dimension unknown": lambda r: r["release"]["marginals"][0].update(dimensions=["colour"]),
    "dimension repeated": lambda r: r["release"]["marginals"][0].update(dimensions=["form", "form"]),
    "dimensions empty": lambda r: r["release"]["marginals"][0].update(dimensions=[]),
    "dimensions six": lambda r: r["release"]["marginals"][0].update(dimensions=["form"] * 6),
    "dimensions text": lambda r: r["release"]["marginals"][0].update(dimensions="form"),
    "dimensions other order": lambda r: r["release"]["marginals"][1].update(dimensions=["province", "gender"]),
    "marginal null": lambda r: r["release"]["marginals"].__setitem__(0, None),
    "marginals empty": lambda r: r["release"].update(marginals=[]),
    "marginals null": lambda r: r["release"].update(marginals=None),
    "release null": lambda r: r.update(release=None),
    "release list": lambda r: r.update(release=[]),
    "release missing": lambda r: r.pop("release"),
    "bad cell and bad scale": lambda r: (_cell(r, m=0, c=0).update(count="x"),
                                         r["release"]["marginals"][1].update(scale=0.01)),
    "bad key and bad scale later": lambda r: (_cell(r, m=0, c=0).update(key=["labour"]),
                                              r["release"]["marginals"][1].update(scale=0.01)),
    "bad record and bad cell": lambda r: (r["records"][0].update(pseudonym="x"), _cell(r).update(count=1.5)),
    "bad record": lambda r: r["records"][0].update(pseudonym="x"),
    "unknown field": lambda r: r.update(colour="blue"),
    "schema version 2": lambda r: r.update(schema_version=2),
    "scale too small": lambda r: r["release"]["marginals"][0].update(scale=0.1),
    "epsilon sum off": lambda r: r["release"].update(epsilon="1"),
    "pseudonym upper case": lambda r: r["records"][0].update(pseudonym=r["records"][0]["pseudonym"].upper()),
    "pseudonym and newline": lambda r: r["records"][0].update(pseudonym=r["records"][0]["pseudonym"] + "\n"),
    "pseudonym short": lambda r: r["records"][1].update(pseudonym=r["records"][1]["pseudonym"][:63]),
    "pseudonym number": lambda r: r["records"][1].update(pseudonym=7),
    "pseudonym null": lambda r: r["records"][1].update(pseudonym=None),
    "pseudonyms shared": lambda r: r["records"][1].update(pseudonym=r["records"][0]["pseudonym"]),
    "basis statutory": lambda r: r["records"][0].update(basis="statutory"),
    "basis other case": lambda r: r["records"][0].update(basis="Consent"),
    "basis list": lambda r: r["records"][0].update(basis=["consent"]),
    "code unknown": lambda r: r["records"][1].update(form="fishing"),
    "code of another list": lambda r: r["records"][1].update(gender="NL-ZH"),
    "code number": lambda r: r["records"][1].update(province=3),
    "code list": lambda r: r["records"][1].update(age_band=["18_24"]),
    "record field extra": lambda r: r["records"][0].update(name="x"),
    "record field missing": lambda r: r["records"][0].pop("province"),
    "record field renamed": lambda r: r["records"][0].update(nationality=r["records"][0].pop("nationality_group")),
    "record list": lambda r: r["records"].__setitem__(0, list(r["records"][0].values())),
    "record null": lambda r: r["records"].__setitem__(0, None),
    "record text": lambda r: r["records"].__setitem__(0, "record"),
    "records empty": lambda r: r.update(records=[]),
    "records null": lambda r: r.update(records=None),
    "records missing": lambda r: r.pop("records"),
    "records object": lambda r: r.update(records={"0": r["records"][0]}),
    "bad record and bad scale": lambda r: (r["records"][0].update(basis="x"),
                                           r["release"]["marginals"][1].update(scale=0.01)),
}


@pytest.mark.parametrize("name", sorted(EDITS))
def test_plain_cells_are_checked_as_the_model_and_the_cell_rule_check_them(name):
    raw = _edited(EDITS[name])
    assert _now(raw) == _before(raw)


def test_a_plain_payload_takes_the_direct_path_and_keeps_its_counts_and_records():
    payload, counts, records = parse_staged_payload(_opened(BASE))
    assert counts == [[c["count"] for c in m["cells"]] for m in BASE["release"]["marginals"]]
    assert all(m.cells == [] for m in payload.release.marginals) and payload.records == []
    assert records.pseudonym == [r["pseudonym"] for r in BASE["records"]] and records.form == ["sexual", "sexual"]
    assert _now(BASE)[0] == "ok"


@pytest.mark.parametrize("data", [b"[1]", b"{", b'{"a": 1, "a": 2}', b"\xff", b'{"schema_version": NaN}'])
def test_payloads_that_are_no_json_object_are_refused_as_before(data):
    assert _now(data) == _before(data)


counts = st.one_of(
    st.integers(-(10**12) - 2, 10**12 + 2), st.sampled_from([10**12, -(10**12), 10**13, 0, True, False, None]),
    st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=3),
)
keys = st.one_of(st.none(), st.lists(st.sampled_from(["female", "male", "NL-DR", "NL-ZH", "sexual", "x", ""]),
                                     max_size=6))


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 1), st.integers(0, 80), st.one_of(counts.map(lambda v: ("count", v)),
                                                                            keys.map(lambda v: ("key", v))))))
def test_any_edit_of_cells_gives_the_same_outcome(edits):
    raw = copy.deepcopy(BASE)
    for m, c, (field, value) in edits:
        cells = raw["release"]["marginals"][m]["cells"]
        cells[c % len(cells)][field] = value
    assert _now(raw) == _before(raw)


def test_the_canonical_payload_bytes_parse_alike():
    data = canonical_json(BASE)
    assert _now(data) == _before(data)


record_values = st.one_of(
    st.sampled_from(["consent", "statutory", "sexual", "labour", "18_24", "female", "NL", "NL-ZH", "Consent", "",
                     "a" * 64, "A" * 64, "0" * 63, "f" * 65, "0" * 64 + "\n"]),
    st.none(), st.integers(-2, 2), st.lists(st.just("consent"), max_size=1),
)
record_fields = st.sampled_from(["pseudonym", "basis", "form", "age_band", "gender", "nationality_group", "province",
                                 "extra"])


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 1), record_fields, st.one_of(record_values, st.just("<drop>")))))
def test_any_edit_of_records_gives_the_same_outcome(edits):
    raw = copy.deepcopy(BASE)
    for index, name, value in edits:
        if value == "<drop>":
            raw["records"][index].pop(name, None)
        else:
            raw["records"][index][name] = value
    assert _now(raw) == _before(raw)


def test_record_codes_are_the_codelists_of_the_record_model():
    from aggregator.contract.codelists import DIMENSIONS
    from aggregator.contract.schema import Record
    from aggregator.coordinator.payload import RECORD_CODES

    assert set(Record.model_fields) == {"pseudonym", "basis", *RECORD_CODES}
    assert all(Record.model_fields[code].annotation is DIMENSIONS[code] for code in RECORD_CODES)
