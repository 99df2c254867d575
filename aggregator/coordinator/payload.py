"""A verified bundle payload as merge reads it: the Payload model, with the noisy counts of plain cells kept apart.

A release lists every codelist cell of each marginal, in order, as {"key": [...], "count": n}: tens of thousands of
small objects per thousand bundles, which the Payload model would each validate into a Cell object only for merge to
compare its key with the codelists and read its count. When every cell of a payload is exactly such a pair (the
codelist key, an integer count within the contract's bounds), merge checks them here directly, keeps the counts,
and validates the rest of the payload with the model (its marginals then carry no cells). Anything else (an odd
cell, an unknown dimension, a payload the model refuses) goes through `parse_payload` unchanged, so what is refused,
and with which message, stays exactly as before.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from ..contract.codelists import DIMENSIONS
from ..contract.envelope import OpenedEnvelope, parse_payload, strict_json_loads


def parse_staged_payload(opened: OpenedEnvelope) -> tuple[Any, list[list[int]] | None]:
    """The verified payload bytes as a Payload model, and the counts of its marginals' cells when they were found
    to be every codelist cell in order (the marginals then have empty `cells`), else None (cells left in the model,
    to be checked as before). Refusals are exactly those of `parse_payload`."""
    from pydantic import ValidationError

    from ..contract.schema import MAX_ABS_COUNT, Payload

    raw = strict_json_loads(opened.payload_bytes, "bundle payload")
    if isinstance(raw, dict) and raw.get("schema_version") == 1:
        split = _plain_cells(raw, MAX_ABS_COUNT)
        if split is not None:
            stripped, counts = split
            try:
                return Payload.model_validate(stripped), counts
            except ValidationError:
                pass  # parse_payload names the first error, as it always did
    return parse_payload(opened), None


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
