"""The estimator's input and results: the pattern table of one stratum, fitted models, the estimate."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

Criterion = Literal["bic", "aic"]



Pair = tuple[str, str]


class EstimationError(Exception):
    """The data cannot support an estimate; the message says why, in words for people."""


# --------------------------------------------------------------------------------------------- the input


@dataclass(frozen=True)
class PatternTable:
    """Counts for every non-empty capture pattern of ``lists``.

    ``counts[mask - 1]`` is the count of the pattern whose bit i (value 2**i) means "on lists[i]".
    ``extra_variance`` (same indexing, optional) is a known extra variance per cell, e.g. from a collision
    correction. Counts may be negative or non-integer (noisy, corrected); they are fitted as they are.
    """

    lists: tuple[str, ...]
    counts: tuple[float, ...]
    extra_variance: tuple[float, ...] | None = None

    def __post_init__(self) -> None:
        lists = tuple(self.lists)
        if not 2 <= len(lists) <= 6:
            raise EstimationError(f"multiple-systems estimation needs 2 to 6 lists, got {len(lists)}")
        if len(set(lists)) != len(lists):
            raise EstimationError(f"list names must be distinct: {lists}")
        n = 2 ** len(lists) - 1
        counts = tuple(float(c) for c in self.counts)
        if len(counts) != n:
            raise EstimationError(f"{len(lists)} lists need {n} pattern counts, got {len(counts)}")
        if not all(math.isfinite(c) for c in counts):
            raise EstimationError("pattern counts must be finite numbers")
        object.__setattr__(self, "lists", lists)
        object.__setattr__(self, "counts", counts)
        if self.extra_variance is not None:
            ev = tuple(float(v) for v in self.extra_variance)
            if len(ev) != n or any(not math.isfinite(v) or v < 0 for v in ev):
                raise EstimationError(f"extra_variance needs {n} finite values >= 0")
            object.__setattr__(self, "extra_variance", ev)

    @classmethod
    def from_patterns(
        cls,
        lists: Iterable[str],
        patterns: Mapping[Any, float],
        extra_variance: Mapping[Any, float] | None = None,
    ) -> PatternTable:
        """Build from ``{pattern: count}``; a pattern is an iterable of list names (e.g. ``("police",
        "shelters")``) or a 0/1 tuple in list order. Missing patterns count 0."""
        lists = tuple(lists)

        def mask_of(key: Any) -> int:
            if isinstance(key, str):
                key = (key,)
            key = tuple(key)
            if len(key) == len(lists) and all(k in (0, 1) and not isinstance(k, str) for k in key):
                m = sum(1 << i for i, k in enumerate(key) if k)
            else:
                unknown = [k for k in key if k not in lists]
                if unknown:
                    raise EstimationError(f"pattern {key!r} names unknown lists {unknown}")
                m = sum(1 << lists.index(k) for k in set(key))
            if m == 0:
                raise EstimationError("the all-zero pattern is the unknown; it cannot be given")
            return m

        n = 2 ** len(lists) - 1
        counts = [0.0] * n
        for key, value in patterns.items():
            counts[mask_of(key) - 1] += float(value)
        ev = None
        if extra_variance is not None:
            ev = [0.0] * n
            for key, value in extra_variance.items():
                ev[mask_of(key) - 1] += float(value)
        return cls(lists, tuple(counts), None if ev is None else tuple(ev))

    def pattern_names(self) -> list[str]:
        return ["+".join(name for i, name in enumerate(self.lists) if m >> i & 1) for m in range(1, len(self.counts) + 1)]


# --------------------------------------------------------------------------------------------- the results


@dataclass(frozen=True)
class ModelFit:
    """One fitted log-linear model: its interaction terms and fit statistics."""

    terms: tuple[Pair, ...]
    n_parameters: int
    deviance: float
    df: int
    aic: float
    bic: float
    unseen: float
    pearson_chi2: float

    def criterion(self, name: Criterion) -> float:
        return self.aic if name == "aic" else self.bic


@dataclass(frozen=True)
class GoodnessOfFit:
    """Goodness of fit of the chosen model (p-values are None when df = 0: the model is saturated)."""

    deviance: float
    pearson_chi2: float
    df: int
    p_deviance: float | None
    p_pearson: float | None


@dataclass
class StratumEstimate:
    """The estimate for one stratum. ``estimate`` is the total (observed + unseen); ``lower``/``upper`` the
    bootstrap percentile interval of the total (None when no bootstrap was run)."""

    stratum: str
    lists: tuple[str, ...]
    observed: float
    unseen: float
    estimate: float
    lower: float | None
    upper: float | None
    chosen_terms: tuple[Pair, ...]
    models: list[ModelFit]
    fit: GoodnessOfFit
    warnings: list[str] = field(default_factory=list)
    criterion: str = "bic"
    search: str = ""
    noise_scale: float = 0.0
    confidence: float = 0.95
    n_bootstrap: int = 0
    bootstrap_failures: int = 0
    excluded_pairs: tuple[Pair, ...] = ()
    dropped_lists: tuple[str, ...] = ()
    clamped_cells: int = 0

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly dict (tuples become lists, non-finite floats become None)."""

        def clean(value: Any) -> Any:
            if isinstance(value, float):
                return value if math.isfinite(value) else None
            if isinstance(value, dict):
                return {k: clean(v) for k, v in value.items()}
            if isinstance(value, (list, tuple)):
                return [clean(v) for v in value]
            return value

        return clean(asdict(self))


