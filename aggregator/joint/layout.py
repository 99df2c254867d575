"""Public layout of a joint computation: cells, strata, lists, released values.

Every organisation's vector is one flat array: the cells' buckets one after
another in ``Layout.cells`` order. A cell flagged ``stratum`` additionally gets
an overlap-pattern table over the lists (``org_lists`` maps each organisation
to one list index below ``n_lists``) and a multiplicity table (buckets whose
org-sum is exactly 1, exactly 2, 3 or more).

Released values, in order (``released()``): one count per cell (noise group =
the cell's ``group``, i.e. its marginal), then per stratum cell the 2**L
pattern counts (group ``<cell>#patterns``; pattern index bit k set = list k
has an organisation with a 1 in that bucket; index 0 is the empty pattern, so
the table sums to m) and the three multiplicity counts (group
``<cell>#multiplicity``).
"""

from __future__ import annotations

from dataclasses import dataclass, field as dc_field

from .field import bit_length_for

MAX_LISTS = 6
MULTIPLICITY = ("1", "2", "3+")
PATTERNS_SUFFIX = "#patterns"
MULTIPLICITY_SUFFIX = "#multiplicity"
SUFFIXES = (PATTERNS_SUFFIX, MULTIPLICITY_SUFFIX)


@dataclass(frozen=True)
class Cell:
    name: str
    m: int
    group: str
    stratum: bool = False


@dataclass(frozen=True)
class Layout:
    cells: tuple[Cell, ...]
    max_orgs: int
    n_lists: int = 0
    org_lists: dict[str, int] = dc_field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "cells", tuple(self.cells))
        names = [c.name for c in self.cells]
        if len(set(names)) != len(names):
            raise ValueError("cell names must be unique")
        if any(c.m < 1 for c in self.cells):
            raise ValueError("every cell needs at least one bucket")
        if any(c.group.endswith(SUFFIXES) for c in self.cells):
            raise ValueError(f"cell groups may not end with {' or '.join(SUFFIXES)}")
        if self.strata and not 1 <= self.n_lists <= MAX_LISTS:
            raise ValueError(f"a layout with strata needs 1..{MAX_LISTS} lists")
        if any(not 0 <= k < self.n_lists for k in self.org_lists.values()):
            raise ValueError("list index out of range")
        bit_length_for(self.max_orgs)  # validates max_orgs

    @property
    def bits(self) -> int:
        """Comparison bit length l (and so the field) of this layout."""
        return bit_length_for(self.max_orgs)

    @property
    def size(self) -> int:
        return sum(c.m for c in self.cells)

    @property
    def strata(self) -> list[Cell]:
        return [c for c in self.cells if c.stratum]

    def offsets(self) -> dict[str, tuple[int, int]]:
        """cell name -> (start, stop) in the flat vector."""
        out, pos = {}, 0
        for c in self.cells:
            out[c.name] = (pos, pos + c.m)
            pos += c.m
        return out

    def released(self) -> list[tuple[str, str]]:
        """(label, noise group) of every released value, in release order."""
        out = [(f"count/{c.name}", c.group) for c in self.cells]
        for c in self.strata:
            out += [(f"pattern/{c.name}/{k}", f"{c.name}{PATTERNS_SUFFIX}") for k in range(2 ** self.n_lists)]
            out += [(f"multiplicity/{c.name}/{k}", f"{c.name}{MULTIPLICITY_SUFFIX}") for k in MULTIPLICITY]
        return out

    def groups(self) -> list[str]:
        seen: dict[str, None] = {}
        for _, g in self.released():
            seen.setdefault(g)
        return list(seen)

    def check_orgs(self, orgs: list[str]) -> None:
        if len(orgs) > self.max_orgs:
            raise ValueError(f"{len(orgs)} organisations, the plan allows {self.max_orgs}")
        if self.strata:
            missing = [o for o in orgs if o not in self.org_lists]
            if missing:
                raise ValueError(f"organisations without a list index: {', '.join(missing)}")

    def to_json(self) -> dict:
        return {"cells": [{"name": c.name, "m": c.m, "group": c.group, "stratum": c.stratum}
                          for c in self.cells],
                "max_orgs": self.max_orgs, "n_lists": self.n_lists,
                "org_lists": dict(self.org_lists)}

    @classmethod
    def from_json(cls, d: dict) -> "Layout":
        return cls(cells=tuple(Cell(**c) for c in d["cells"]), max_orgs=int(d["max_orgs"]),
                   n_lists=int(d.get("n_lists", 0)),
                   org_lists={str(k): int(v) for k, v in d.get("org_lists", {}).items()})
