"""A verified bundle payload as merge reads it: the Payload model, with its records as columns of text and the
noisy counts of plain cells kept apart.

A release lists every codelist cell of each marginal, in order, as {"key": [...], "count": n}, and a bundle its
records as small objects of seven texts: tens of thousands of objects per thousand bundles, which the Payload model
would each validate into a Cell or Record object only for merge to compare a cell's key with the codelists, read
its count, and copy a record's texts into the store. When every cell and record of a payload is plain (a cell: the
codelist key and an integer count within the contract's bounds; a record: exactly its seven fields, a 64-digit
lowercase hex pseudonym, a known basis and codelist codes), merge checks them here directly and validates the rest
of the payload with the model. Anything else (an odd cell or record, an unknown dimension, a payload the model
refuses) goes through `parse_payload` unchanged, so what is refused, and with which message, stays exactly as
before. Either way the records leave the model for RecordColumns.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, fields
from functools import lru_cache
from typing import Any, Iterable, get_args

from ..contract.codelists import DIMENSIONS
from ..contract.envelope import OpenedEnvelope, parse_payload, strict_json_loads


RECORD_CODES = ("form", "age_band", "gender", "nationality_group", "province")  # codelist dimensions


@dataclass
class RecordColumns:
    """A bundle's records as columns, in order: the pseudonym, the basis and the codes as plain text."""

    pseudonym: list[str]
    basis: list[str]
    form: list[str]
    age_band: list[str]
    gender: list[str]
    nationality_group: list[str]
    province: list[str]

    def __len__(self) -> int:
        return len(self.pseudonym)

    @classmethod
    def of(cls, records: Iterable[Any]) -> RecordColumns:
        """The columns of Record models."""
        records = list(records)
        return cls(
            [r.pseudonym for r in records], [r.basis for r in records],
            *([getattr(r, code).value for r in records] for code in RECORD_CODES),
        )

    def keep_first_of_each_pseudonym(self) -> int:
        """Keep the first record of each pseudonym; how many records were folded into an earlier one."""
        n = len(self.pseudonym)
        if len(set(self.pseudonym)) == n:
            return 0
        seen: set[str] = set()
        kept: list[int] = []
        for i, pseudonym in enumerate(self.pseudonym):
            if pseudonym not in seen:
                seen.add(pseudonym)
                kept.append(i)
        for column in fields(self):
            values = getattr(self, column.name)
            setattr(self, column.name, [values[i] for i in kept])
        return n - len(kept)


def parse_staged_payload(opened: OpenedEnvelope) -> tuple[Any, list[list[int]] | None, RecordColumns]:
    """The verified payload bytes as a Payload model without its records, the counts of its marginals' cells when
    they were found to be every codelist cell in order (the marginals then have empty `cells`; None: cells left in
    the model, to be checked as before), and the records as columns. Refusals are exactly those of
    `parse_payload`."""
    from pydantic import ValidationError

    from ..contract.schema import MAX_ABS_COUNT, Payload

    raw = strict_json_loads(opened.payload_bytes, "bundle payload")
    if isinstance(raw, dict) and raw.get("schema_version") == 1:
        records = _plain_records(raw.get("records"))
        split = _plain_cells(raw, MAX_ABS_COUNT) if records is not None else None
        if records is not None and split is not None:
            stripped, counts = split
            try:
                return Payload.model_validate({**stripped, "records": []}), counts, records
            except ValidationError:
                pass  # parse_payload names the first error, as it always did
    payload = parse_payload(opened)
    records = RecordColumns.of(payload.records)
    payload.records = []
    return payload, None, records


_HEX64 = re.compile(r"[0-9a-f]{64}")  # schema.Hex64, matched whole


def _plain_records(records: Any) -> RecordColumns | None:
    """The records as columns when each is exactly what the Record model accepts unchanged: its seven fields, a
    pseudonym of 64 lowercase hex digits, a known basis, codes of the codelists. Else None."""
    if type(records) is not list:
        return None
    if not records:
        return RecordColumns([], [], [], [], [], [], [])
    if set(map(type, records)) != {dict} or set(map(len, records)) != {len(_RECORD_FIELDS)}:
        return None
    try:
        columns = {name: [record[name] for record in records] for name in _RECORD_FIELDS}  # all seven, none else
        if not set(columns["basis"]) <= _bases() or any(not set(columns[c]) <= _codes(c) for c in RECORD_CODES):
            return None
    except (KeyError, TypeError):  # a missing field; a value that is no text (unhashable)
        return None
    pseudonyms = columns["pseudonym"]
    if set(map(type, pseudonyms)) != {str} or not all(map(_HEX64.fullmatch, pseudonyms)):
        return None
    return RecordColumns(**columns)


_RECORD_FIELDS = ("pseudonym", "basis", *RECORD_CODES)


@lru_cache(maxsize=None)
def _bases() -> frozenset[str]:
    from ..contract.schema import Record

    return frozenset(get_args(Record.model_fields["basis"].annotation))


@lru_cache(maxsize=None)
def _codes(dimension: str) -> frozenset[str]:
    from ..contract.codelists import codes

    return frozenset(codes(dimension))


def _plain_cells(raw: dict[str, Any], bound: int) -> tuple[dict[str, Any], list[list[int]]] | None:
    """(the payload with empty cells, each marginal's counts) when every marginal has known, distinct dimensions
    and lists exactly its codelist cells in order, each {"key": the cell's codes, "count": an int within +-bound
    (the contract's MAX_ABS_COUNT)}: what the Cell model accepts unchanged. Else None."""
    release = raw.get("release")
    if release is None:
        return raw, []
    if type(release) is not dict or type(release.get("marginals")) is not list:
        return None
    marginals: list[dict[str, Any]] = []
    all_counts: list[list[int]] = []
    for marginal in release["marginals"]:
        if type(marginal) is not dict:
            return None
        dims = marginal.get("dimensions")
        cells = marginal.get("cells")
        if type(dims) is not list or type(cells) is not list or not 1 <= len(dims) <= 5:
            return None
        if any(type(d) is not str or d not in DIMENSIONS for d in dims) or len(set(dims)) != len(dims):
            return None
        expected = _cell_key_lists(tuple(dims))
        if len(cells) != len(expected):
            return None
        try:  # every cell a dict with exactly "key" and "count"; the keys those of the codelist cells, in order
            keys = [cell["key"] for cell in cells]
            counts = [cell["count"] for cell in cells]
        except (TypeError, KeyError):
            return None
        if keys != expected or set(map(type, cells)) != {dict} or set(map(len, cells)) != {2}:
            return None
        if set(map(type, counts)) != {int} or min(counts) < -bound or max(counts) > bound:  # bool is no int here
            return None
        marginals.append({**marginal, "cells": []})
        all_counts.append(counts)
    return {**raw, "release": {**release, "marginals": marginals}}, all_counts


@lru_cache(maxsize=64)
def _cell_key_lists(dims: tuple[str, ...]) -> list[list[str]]:
    """Every codelist cell of these dimensions, in order, each key as the list a bundle holds."""
    from .admission import cell_keys

    return [list(key) for key in cell_keys(dims)]
