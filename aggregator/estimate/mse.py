"""Multiple-systems estimation (MSE) of the dark number from list-overlap counts.

Model
-----
For L lists (2 <= L <= 6) every person seen has a capture pattern: the non-empty set of lists that know
them. The 2^L - 1 observed pattern counts are modelled as independent Poisson counts with a log-linear mean

    log mu(x) = u0 + sum_i u_i x_i + sum_{(i,j) in T} u_ij x_i x_j,        x in {0,1}^L, x != 0,

with list main effects and a chosen set T of pairwise list interactions (positive or negative dependence
between two lists, e.g. police referring to care coordination). The model is fitted to the observed cells
with statsmodels' GLM (Poisson family, log link); the count of the unobserved all-zero pattern is then
exp(u0), the fitted mean of the cell x = 0, and the total is observed + exp(u0).

Released counts carry privacy noise (and collision-correction error) of a known variance v per cell. They are
fitted by the Poisson likelihood of y + v at mean mu + v (estimate/glm.py), whose mean and variance match a Poisson
count plus that noise, and the information criteria use the same likelihood. The plain Poisson likelihood counts
every residual alike, so the noise of the many sparse cells (a handful of people, noise sd about 7 at epsilon 1)
decided the interactions and the unseen count: on the four-list synthetic nation (20 seeds, epsilon 1) the
release widened the interval by +542% against the exact table; with this likelihood and the rules below, +22%,
where the Cramer-Rao bound of the chosen model allows no estimator less than +27% (benchmarks/mse.py prints both).

Model search
------------
Models are compared by an information criterion, BIC by default (AIC on request); BIC uses
log(observed people), as in Rcapture, AIC is -2 loglik + 2k. The search starts from the independence model
(main effects only) and considers only the *eligible* pairwise interactions (see sparse data below):

* all subsets of the eligible pairs when there are at most ``ALL_SUBSETS_MAX_PAIRS`` (6) of them, i.e. at most
  64 models, which covers every L <= 4 stratum: exhaustive search is cheap there and is not path dependent;
* otherwise (5 or 6 lists: 10 or 15 pairs, up to 32,768 subsets) a bidirectional stepwise search from
  independence: at each step every single addition of an eligible pair and every single removal is fitted
  and the best move is taken while it lowers the criterion. The cost is capped by ``max_terms`` interactions
  in a model and ``max_fits`` fits per search; the number of fits is reported.

Sparse data (Chan, Silverman & Vincent 2021, JASA; the SparseMSE R package)
--------------------------------------------------------------------------
* A list that nobody is on is dropped (its main effect would be -infinity), and so is a list whose released
  people alone or with one other list are within one noise standard deviation of zero (its main effect is the
  noise's; ``LIST_NOISE_Z``); the table is collapsed onto the remaining lists (patterns restricted to them) and
  a warning says so. Fewer than two informative lists, or nobody seen, is refused with :class:`EstimationError`.
* An interaction u_ij is identified only if its sufficient statistic, the overlap n_ij (people on both lists
  i and j), is positive; with n_ij = 0 its MLE is -infinity. Such pairs, and pairs whose overlap is not
  distinguishable from zero given the privacy noise (below ``max(min_overlap, noise_z * sd)`` with sd the
  noise standard deviation of the overlap total), are excluded from the search, as SparseMSE only fits
  models whose parameters are all identified. A model is also only fitted if its design has full column
  rank and at least as many cells as parameters.
* Non-existence of the MLE is detected and the model dropped: a fit that does not converge, a parameter
  diverging (|u| > ``MAX_ABS_COEF``), an infinite estimate, or an unseen count above ``max_unseen_ratio``
  times the observed total ("astronomically large").
* DP-noisy counts can be negative or non-integer; they are fitted as released, never clamped to 0. The
  Poisson score equations X'(y - mu) = 0 stay unbiased under zero-mean additive noise, while clamping
  pushes the sparse overlap cells up and so the unseen count down (on 6 sparse lists it took coverage of the
  95% interval from 72% to 2%, benchmarks/mse.py). Fisher scoring fits such counts; statsmodels, which
  refuses negative counts, fits only exact tables. The diagnostics say how many cells were negative.

Intervals
---------
95% intervals come from a parametric bootstrap of the whole procedure: each replicate draws Poisson counts
from the chosen model's fitted cell means (noisy counts: below), re-adds the privacy noise (discrete Laplace
with the release's scale, drawn with OpenDP's exact sampler, or a joint release's noise drawn as its computing
parties draw it, all replicates at once) and, when given, the collision-correction error (Gaussian with the
known extra variance per cell: a simulation of the hashing, not privacy noise), REPEATS THE MODEL SELECTION and
refits; the interval is the percentile interval of the replicate totals. Repeating the selection matters: an
interval conditional on the one chosen model ignores that a different model would have been chosen on
slightly different data, and model uncertainty is typically the dominant uncertainty in MSE (Silverman
2020, JRSS A), so conditional intervals are too narrow. Re-adding the noise makes the interval reflect the
privacy noise as well as the Poisson sampling.

On noisy released counts the replicates are drawn from the model AIC chooses, not BIC's. Under the noise the
data show an interaction only weakly, BIC's heavier penalty then often leaves a real one out, and replicates
drawn from the smaller model cannot show the bias of leaving it out: on the four-list synthetic nation (20 seeds,
epsilon 1, before the refusal rule below) the interval covered the true total in 88% of the stratum-seeds when
drawn from the chosen model and 97% when drawn from AIC's, widening it by +27% instead of +17% against the exact
table. The point estimate stays the chosen model's.

Replicates use the same likelihood, the same eligibility rules and the same search, but with a compact
warm-started Newton solver (:func:`_newton_poisson`) instead of statsmodels, whose per-fit overhead
(~1.5 ms) times (models x replicates) would not fit the time budget; the test-suite checks that both
solvers agree. For 5-6 lists the replicate search is additionally capped at max(``bootstrap_max_terms``
(default 4), interactions of the model drawn from + 1) interactions, to keep a 6-list stratum's
500 replicates within seconds (about 8 s with BIC, 16 s with AIC on the UK 2013 six-list data on one core)
without forcing replicates below the size of the chosen model; ``search`` in the result says so.

Known limitation: with strong privacy noise on sparse tables every interaction becomes non-estimable and the
interval wide. When the people on two of the lists, on which every estimate rests, are within ``noise_z``
noise standard deviations of zero, the stratum is refused (:class:`EstimationError`) rather than shown with an
interval that the noise decides (see benchmarks/mse.py for coverage and width by epsilon).
"""

from __future__ import annotations

import functools
import itertools
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from scipy import stats

from .noise import noise_draws, noise_variance
from .glm import _deviance, _loglik, _newton_poisson, _statsmodels_fit
from .tables import EstimationError, GoodnessOfFit, ModelFit, PatternTable, StratumEstimate

__all__ = [
    "EstimationError",
    "PatternTable",
    "ModelFit",
    "GoodnessOfFit",
    "StratumEstimate",
    "fit_model",
    "estimate_stratum",
    "estimate_strata",
]

from .tables import Criterion  # noqa: E402
from .tables import Pair  # noqa: E402

ALL_SUBSETS_MAX_PAIRS = 6
from .glm import MAX_ABS_COEF  # noqa: E402
SMALL_OBSERVED = 50.0
TINY_OVERLAP = 5.0
# A list is kept unless its people are within one noise sd of none (_collapse). Lower than the two sds an
# interaction needs: keeping a weak list costs little, while dropping one that has people loses their overlaps, and a
# list near the line flips in and out across bootstrap replicates and widens the interval (four lists, 20 seeds, the
# minor Dutch stratum: x1.95 the exact table's width at two sds, x1.44 at one, against an information bound of x1.38).
LIST_NOISE_Z = 1.0


# --------------------------------------------------------------------------------------------- the machinery


@dataclass
class _Prepared:
    lists: tuple[str, ...]
    y: np.ndarray  # counts as released (may be negative), index mask - 1
    raw: np.ndarray
    noise_var: np.ndarray  # privacy + collision variance per cell
    bits: np.ndarray  # (cells, L) 0/1
    dropped_lists: tuple[str, ...]
    clamped_cells: int


def _bits(n_lists: int) -> np.ndarray:
    masks = np.arange(1, 2**n_lists)
    return ((masks[:, None] >> np.arange(n_lists)[None, :]) & 1).astype(float)


def _prepare(table: PatternTable, noise_scale: float, noise_model: str | None = None) -> _Prepared:
    raw = np.asarray(table.counts, dtype=float)
    ev = np.zeros_like(raw) if table.extra_variance is None else np.asarray(table.extra_variance, float)
    return _collapse(table.lists, raw, ev + noise_variance(noise_scale, noise_model))


def _collapse(lists: tuple[str, ...], raw: np.ndarray, nv: np.ndarray) -> _Prepared:
    """The counts on the lists that carry information: a list with nobody on it, or (noisy counts) no more people
    alone or with one other list than LIST_NOISE_Z standard deviations of their noise, has a main effect of -infinity
    or one the noise decides (the patterns of three lists or more hold few people and mostly noise, so they are left
    out of that test); the table is collapsed onto the other lists (a person's pattern restricted to them, noise
    variances added; people on the dropped lists only join the unseen, whom the model estimates)."""
    y = raw.copy()
    clamped = int(np.sum(raw < 0))
    bits = _bits(len(lists))
    if y.sum() <= 0:
        raise EstimationError(
            "nobody is counted in this stratum (the pattern counts sum to zero or less), so there is nothing "
            "to estimate from"
        )
    low = bits.sum(axis=1) <= 2  # a list's people are nearly all on it alone or with one other; the rest is noise
    keep = [i for i in range(len(lists))
            if y[bits[:, i] == 1].sum() > 0
            and y[low & (bits[:, i] == 1)].sum() > LIST_NOISE_Z * math.sqrt(float(nv[low & (bits[:, i] == 1)].sum()))]
    dropped = tuple(lists[i] for i in range(len(lists)) if i not in keep)
    if len(keep) < 2:
        raise EstimationError(
            f"only {len(keep)} list(s) have anyone on them ({', '.join(lists[i] for i in keep)}) that the privacy "
            "noise does not hide; estimating the unseen needs at least two lists that overlap"
        )
    if dropped:
        index = (bits[:, keep] * (2 ** np.arange(len(keep)))).sum(axis=1).astype(int)  # pattern on the kept lists
        y, raw, nv = (np.bincount(index, weights=a, minlength=2 ** len(keep))[1:] for a in (y, raw, nv))
        lists = tuple(lists[i] for i in keep)
        bits = _bits(len(lists))
        if y.sum() <= 0:
            raise EstimationError("nobody is counted on the lists that carry information in this stratum")
    return _Prepared(lists, y, raw, nv, bits, dropped, clamped)


def _design(bits: np.ndarray, pairs: Iterable[tuple[int, int]]) -> np.ndarray:
    cols = [np.ones(len(bits)), *bits.T] + [bits[:, i] * bits[:, j] for i, j in pairs]
    return np.column_stack(cols)


def _eligible_pairs(prep: _Prepared, min_overlap: float, noise_z: float) -> tuple[list[tuple[int, int]], list[tuple[int, int]], dict]:
    n_lists = len(prep.lists)
    eligible, excluded, overlaps = [], [], {}
    for i, j in itertools.combinations(range(n_lists), 2):
        cells = (prep.bits[:, i] == 1) & (prep.bits[:, j] == 1)
        overlap = float(prep.y[cells].sum())
        overlaps[(i, j)] = overlap
        threshold = max(min_overlap, noise_z * math.sqrt(float(prep.noise_var[cells].sum())))
        (eligible if overlap >= threshold and overlap > 0 else excluded).append((i, j))
    return eligible, excluded, overlaps


@functools.lru_cache(maxsize=4096)
def _full_rank(n_lists: int, pairs: tuple[tuple[int, int], ...]) -> bool:
    X = _design(_bits(n_lists), pairs)
    return X.shape[1] <= X.shape[0] and int(np.linalg.matrix_rank(X)) == X.shape[1]


def _info(y: np.ndarray, mu: np.ndarray, k: int, criterion: Criterion, noise_var: np.ndarray | float = 0.0) -> float:
    penalty = 2.0 * k if criterion == "aic" else k * math.log(max(float(y.sum()), 2.0))
    return -2.0 * _loglik(y, mu, noise_var) + penalty


class _Searcher:
    """Fits models (by interaction set) with one solver and searches the model space."""

    def __init__(self, prep: _Prepared, eligible: list[tuple[int, int]], criterion: Criterion,
                 exact: bool, max_unseen_ratio: float, max_terms: int, max_fits: int):
        self.prep, self.eligible, self.criterion, self.exact = prep, eligible, criterion, exact
        self.max_unseen_ratio, self.max_terms, self.max_fits = max_unseen_ratio, max_terms, max_fits
        self.cache: dict[frozenset, tuple | None] = {}
        self.fits = 0
        self.observed = float(prep.y.sum())

    def fit(self, pairs: frozenset, warm: np.ndarray | None = None, warm_pairs: tuple = ()):
        if pairs in self.cache:
            return self.cache[pairs]
        ordered = tuple(sorted(pairs))
        X = _design(self.prep.bits, ordered)
        y = self.prep.y
        out = None
        if _full_rank(len(self.prep.lists), ordered):
            self.fits += 1
            if self.exact and not np.any(self.prep.noise_var > 0) and np.all(y >= 0) and np.all(y == np.round(y)):
                res = _statsmodels_fit(X, y)
                fitted = None if res is None else (np.asarray(res.params), np.asarray(res.fittedvalues))
            else:
                beta0 = np.zeros(X.shape[1])
                if warm is not None:
                    index = {p: 1 + len(self.prep.lists) + k for k, p in enumerate(warm_pairs)}
                    beta0[: 1 + len(self.prep.lists)] = warm[: 1 + len(self.prep.lists)]
                    for k, p in enumerate(ordered):
                        if p in index:
                            beta0[1 + len(self.prep.lists) + k] = warm[index[p]]
                else:
                    beta0[0] = math.log(max(float(y.mean()), 1e-3))
                fitted = _newton_poisson(X, y, beta0, noise_var=self.prep.noise_var)
            if fitted is not None:
                beta, mu = fitted
                unseen = math.exp(beta[0]) if beta[0] < 700 else math.inf
                if (np.all(np.isfinite(beta)) and np.max(np.abs(beta)) <= MAX_ABS_COEF
                        and math.isfinite(unseen) and unseen <= self.max_unseen_ratio * max(self.observed, 1.0)):
                    out = (ordered, beta, mu, unseen, _info(y, mu, X.shape[1], self.criterion, self.prep.noise_var))
        self.cache[pairs] = out
        return out

    def search(self) -> tuple[tuple, str]:
        """Returns the best fitted model (or None) and a description of the search."""
        if len(self.eligible) <= ALL_SUBSETS_MAX_PAIRS:
            for r in range(0, min(len(self.eligible), self.max_terms) + 1):
                for subset in itertools.combinations(self.eligible, r):
                    if self.fits >= self.max_fits:
                        break
                    self.fit(frozenset(subset))
            how = f"all subsets of {len(self.eligible)} eligible pairs"
        else:
            current = self.fit(frozenset())
            if current is None:
                # independence not estimable: start from the best single interaction
                singles = [self.fit(frozenset([p])) for p in self.eligible]
                singles = [s for s in singles if s is not None]
                current = min(singles, key=lambda m: m[4]) if singles else None
            while current is not None and self.fits < self.max_fits:
                here = frozenset(current[0])
                moves = [here | {p} for p in self.eligible if p not in here and len(here) < self.max_terms]
                moves += [here - {p} for p in here]
                best = current
                for move in moves:
                    if self.fits >= self.max_fits:
                        break
                    cand = self.fit(move, warm=current[1], warm_pairs=current[0])
                    if cand is not None and cand[4] < best[4] - 1e-9:
                        best = cand
                if best is current:
                    break
                current = best
            how = f"bidirectional stepwise from independence over {len(self.eligible)} eligible pairs"
        how += f" (at most {self.max_terms} interactions, {self.fits} fits)"
        fitted = [m for m in self.cache.values() if m is not None]
        return (min(fitted, key=lambda m: (m[4], len(m[0]))) if fitted else None), how


def _model_fit(prep: _Prepared, model: tuple, criterion_values: dict) -> ModelFit:
    ordered, beta, mu, unseen, _ = model
    y = prep.y
    k = len(beta)
    names = tuple((prep.lists[i], prep.lists[j]) for i, j in ordered)
    with np.errstate(divide="ignore", invalid="ignore"):
        pearson = float(np.sum(np.where(mu > 0, (y - mu) ** 2 / mu, 0.0)))
    return ModelFit(
        terms=names,
        n_parameters=k,
        deviance=_deviance(y, mu),
        df=len(y) - k,
        aic=_info(y, mu, k, "aic", prep.noise_var),
        bic=_info(y, mu, k, "bic", prep.noise_var),
        unseen=float(unseen),
        pearson_chi2=pearson,
    )


def _pair_index(prep: _Prepared, terms: Iterable[Pair]) -> frozenset:
    out = set()
    for a, b in terms:
        if a not in prep.lists or b not in prep.lists or a == b:
            raise EstimationError(f"interaction ({a}, {b}) does not name two different lists of {prep.lists}")
        i, j = sorted((prep.lists.index(a), prep.lists.index(b)))
        out.add((i, j))
    return frozenset(out)


def fit_model(table: PatternTable, terms: Iterable[Pair] = ()) -> ModelFit:
    """Fit ONE fixed model (main effects plus the given pairwise interactions) with statsmodels, without
    model search or bootstrap. Raises :class:`EstimationError` when the model is not estimable."""
    prep = _prepare(table, 0.0)
    if prep.dropped_lists:
        raise EstimationError(f"lists with nobody on them: {', '.join(prep.dropped_lists)}")
    pairs = _pair_index(prep, terms)
    searcher = _Searcher(prep, list(pairs), "bic", True, math.inf, len(pairs), 1)
    model = searcher.fit(pairs)
    if model is None:
        raise EstimationError(
            "this model is not estimable on these counts (rank-deficient design, or the maximum-likelihood "
            "estimate does not exist)"
        )
    return _model_fit(prep, model, {})


def _interval(totals: np.ndarray, confidence: float) -> tuple[float, float]:
    alpha = (1.0 - confidence) / 2.0
    lo, hi = np.quantile(totals, [alpha, 1.0 - alpha])
    return float(lo), float(hi)


def estimate_stratum(
    table: PatternTable,
    noise_scale: float = 0.0,
    *,
    noise_model: str | None = None,
    stratum: str = "",
    criterion: Criterion = "bic",
    n_bootstrap: int = 500,
    confidence: float = 0.95,
    seed: int | np.random.Generator | None = None,
    min_overlap: float = 1.0,
    noise_z: float = 2.0,
    max_unseen_ratio: float = 100.0,
    max_terms: int = 8,
    max_fits: int = 400,
    bootstrap_max_terms: int = 4,
    interval: Literal["percentile", "basic"] = "percentile",
) -> StratumEstimate:
    """Estimate the unseen and the total for one stratum; see the module docstring for the method.

    ``noise_scale`` is the discrete Laplace scale b of every pattern count (0: exact counts); ``noise_model``
    names a joint release's noise model (joint/noise.py), whose counts carry every computing party's share of
    it; the table's ``extra_variance`` adds a known collision-correction variance per cell. ``n_bootstrap=0`` skips the
    interval. ``seed`` seeds the Poisson draws (the OpenDP noise draws cannot be seeded).

    ``interval="percentile"`` (default) is the percentile interval of the replicate totals;
    ``interval="basic"`` reflects it around the estimate (2 T - q_hi, 2 T - q_lo), which corrects a bias of
    the procedure that the bootstrap reproduces -- notably clamping noisy negative counts to 0, which inflates
    the overlap cells and pulls estimates down; a warning says when the replicates are centred away from the
    estimate."""
    if interval not in ("percentile", "basic"):
        raise ValueError(f"interval must be 'percentile' or 'basic', got {interval!r}")
    if criterion not in ("bic", "aic"):
        raise ValueError(f"criterion must be 'bic' or 'aic', got {criterion!r}")
    if not 0 < confidence < 1:
        raise ValueError("confidence must be between 0 and 1")
    if noise_scale < 0 or not math.isfinite(noise_scale):
        raise ValueError(f"noise scale must be a finite number >= 0, got {noise_scale!r}")
    prep = _prepare(table, noise_scale, noise_model)
    pairs = prep.bits.sum(axis=1) == 2  # most people seen twice are on two lists; higher patterns hold mostly noise
    overlap, noise_sd_overlap = float(prep.y[pairs].sum()), math.sqrt(float(prep.noise_var[pairs].sum()))
    if noise_sd_overlap > 0 and overlap < noise_z * noise_sd_overlap:
        # the rule for one pair of lists (sparse data above), for all the pairs together
        raise EstimationError(
            f"the people on two of the lists ({overlap:.0f}, what the estimate rests on) are within {noise_z:g} "
            f"standard deviations ({noise_sd_overlap:.1f}) of the privacy noise: at this epsilon the overlaps cannot "
            "be told from the noise, so the data cannot say how many people are unseen"
        )
    eligible, excluded, overlaps = _eligible_pairs(prep, min_overlap, noise_z)
    searcher = _Searcher(prep, eligible, criterion, True, max_unseen_ratio, max_terms, max_fits)
    best, how = searcher.search()
    if best is None:
        raise EstimationError(
            "no model gives a finite estimate for this stratum: the lists hardly overlap (every fitted model's "
            "unseen count diverges), so the data cannot say how many people are unseen"
        )
    fitted = sorted((m for m in searcher.cache.values() if m is not None), key=lambda m: m[4])
    models = [_model_fit(prep, m, {}) for m in fitted]
    chosen = models[0] if fitted[0] is best else _model_fit(prep, best, {})
    observed = float(prep.y.sum())
    dof = chosen.df
    gof = GoodnessOfFit(
        deviance=chosen.deviance,
        pearson_chi2=chosen.pearson_chi2,
        df=dof,
        p_deviance=float(stats.chi2.sf(chosen.deviance, dof)) if dof > 0 else None,
        p_pearson=float(stats.chi2.sf(chosen.pearson_chi2, dof)) if dof > 0 else None,
    )

    notes: list[str] = []
    if prep.clamped_cells:
        notes.append(f"{prep.clamped_cells} noisy pattern count(s) are negative; they are fitted as released "
                     "(clamping them to 0 would bias the estimate down)")
    if prep.dropped_lists:
        noisy = ", or too few to tell from the noise," if np.any(prep.noise_var > 0) else ""
        notes.append(f"list(s) with nobody on them{noisy} were left out: {', '.join(prep.dropped_lists)}")
    if excluded:
        names = ", ".join(f"{prep.lists[i]}:{prep.lists[j]} ({overlaps[(i, j)]:g})" for i, j in excluded)
        notes.append(f"interaction(s) not estimable, excluded: zero or near-zero overlap (people on both lists): {names}")
    zero_cells = int(np.sum(prep.y == 0))
    if zero_cells > len(prep.y) / 2:
        notes.append(f"sparse table: {zero_cells} of {len(prep.y)} capture patterns have no one; the estimate rests on few cells")
    tiny = [(a, b) for a, b in chosen.terms
            if overlaps[tuple(sorted((prep.lists.index(a), prep.lists.index(b))))] < TINY_OVERLAP]
    if tiny:
        notes.append("the chosen model has interaction(s) resting on a tiny overlap: " + ", ".join(f"{a}:{b}" for a, b in tiny))
    if observed < SMALL_OBSERVED:
        notes.append(f"only {observed:g} people observed: the estimate is very uncertain")
    if np.any(prep.noise_var > 0) and dof > 0:
        # with noisy counts the Poisson deviance is too large by the noise; judge the fit by the Pearson statistic
        # with each cell's variance = Poisson mean + its known noise (and collision) variance
        mu = best[2]
        noisy_chi2 = float(np.sum((prep.y - mu) ** 2 / np.maximum(mu + prep.noise_var, 1e-9)))
        p_noisy = float(stats.chi2.sf(noisy_chi2, dof))
        if p_noisy < 0.05:
            notes.append(f"the chosen model fits poorly even allowing for the noise (Pearson {noisy_chi2:.1f} on "
                         f"{dof} df, p = {p_noisy:.3g})")
    elif gof.p_deviance is not None and gof.p_deviance < 0.05:
        notes.append(f"the chosen model fits poorly (deviance {gof.deviance:.1f} on {dof} df, p = {gof.p_deviance:.3g})")
    if chosen.unseen > 10 * observed:
        notes.append(f"the unseen estimate is more than 10 times the observed ({chosen.unseen:.0f} vs {observed:g})")

    lower = upper = None
    failures = 0
    if n_bootstrap > 0:
        source, drawn_from = best, "the chosen model"
        if np.any(prep.noise_var > 0) and criterion != "aic":
            richer, _ = _Searcher(prep, eligible, "aic", True, max_unseen_ratio, max_terms, max_fits).search()
            if richer is not None:
                names = ", ".join(f"{prep.lists[i]}:{prep.lists[j]}" for i, j in richer[0]) or "independence"
                source, drawn_from = richer, f"the model AIC chooses ({names})"
        totals, failures, boot_how = _bootstrap(
            prep, source, drawn_from, noise_scale, noise_model, criterion, n_bootstrap, seed, min_overlap,
            noise_z, max_unseen_ratio, max_terms, max_fits, max(bootstrap_max_terms, len(source[0]) + 1),
        )
        how += f"; bootstrap: {boot_how}; {interval} interval"
        if len(totals) >= max(10, n_bootstrap // 2):
            lower, upper = _interval(totals, confidence)
            total = observed + chosen.unseen
            if interval == "basic":
                lower, upper = max(2 * total - upper, observed), 2 * total - lower
            centre = float(np.median(totals))
            if abs(centre - total) > 0.1 * total:
                notes.append(
                    f"bootstrap replicates are centred {100 * (centre / total - 1):+.0f}% away from the estimate "
                    "(a bias of the procedure on these counts); the percentile interval may miss"
                )
        else:
            notes.append("too few bootstrap replicates gave an estimate to form an interval")
        if failures:
            notes.append(f"{failures} of {n_bootstrap} bootstrap replicates had no estimable model and were left out")

    return StratumEstimate(
        stratum=stratum,
        lists=prep.lists,
        observed=observed,
        unseen=chosen.unseen,
        estimate=observed + chosen.unseen,
        lower=lower,
        upper=upper,
        chosen_terms=chosen.terms,
        models=models,
        fit=gof,
        warnings=notes,
        criterion=criterion,
        search=how,
        noise_scale=float(noise_scale),
        confidence=confidence,
        n_bootstrap=int(n_bootstrap),
        bootstrap_failures=failures,
        excluded_pairs=tuple((prep.lists[i], prep.lists[j]) for i, j in excluded),
        dropped_lists=prep.dropped_lists,
        clamped_cells=prep.clamped_cells,
    )


def _bootstrap(prep, source, drawn_from, noise_scale, noise_model, criterion, n_boot, seed, min_overlap,
               noise_z, max_unseen_ratio, max_terms, max_fits, bootstrap_max_terms):
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    mu = source[2]
    n_cells = len(mu)
    draws = rng.poisson(np.broadcast_to(mu, (n_boot, n_cells))).astype(float)
    draws += noise_draws(noise_scale, n_boot * n_cells, noise_model).reshape(n_boot, n_cells)
    extra = prep.noise_var - noise_variance(noise_scale, noise_model)
    if np.any(extra > 0):
        draws += rng.normal(0.0, np.sqrt(np.clip(extra, 0, None)), size=(n_boot, n_cells))
    terms_cap = max_terms if len(prep.lists) <= 4 else min(max_terms, bootstrap_max_terms)
    totals, failures = [], 0
    for b in range(n_boot):
        try:  # the same rules as the released table: a list the noise hides in this replicate is left out
            rep = _collapse(prep.lists, draws[b], prep.noise_var)
        except EstimationError:
            failures += 1
            continue
        eligible, _, _ = _eligible_pairs(rep, min_overlap, noise_z)
        searcher = _Searcher(rep, eligible, criterion, False, max_unseen_ratio, terms_cap, max_fits)
        model, _ = searcher.search()
        if model is None:
            failures += 1
            continue
        totals.append(float(rep.y.sum()) + model[3])
    noise = "discrete Laplace noise (OpenDP)" if noise_model is None else f"{noise_model} noise (exact shares)"
    how = (f"{n_boot} replicates, Poisson redraw from {drawn_from} + {noise} b={noise_scale:g}"
           f"{' + collision variance' if np.any(extra > 0) else ''}, selection repeated in each "
           f"(at most {terms_cap} interactions)")
    return np.asarray(totals), failures, how


def estimate_strata(
    tables: Mapping[str, PatternTable],
    noise_scale_per_stratum: Mapping[str, float] | float = 0.0,
    **options: Any,
) -> list[StratumEstimate]:
    """Estimate every stratum, in the order of ``tables``. ``noise_scale_per_stratum`` is one scale for all
    or a mapping stratum -> scale (a missing stratum is an error, not silently exact). ``options`` are passed
    to :func:`estimate_stratum` (criterion, n_bootstrap, confidence, seed, ...); an integer seed is spread
    over the strata so each gets its own stream."""
    seed = options.pop("seed", None)
    seeds = np.random.SeedSequence(seed).spawn(len(tables)) if not isinstance(seed, np.random.Generator) else None
    out = []
    for k, (name, table) in enumerate(tables.items()):
        if isinstance(noise_scale_per_stratum, Mapping):
            if name not in noise_scale_per_stratum:
                raise EstimationError(f"no noise scale given for stratum {name!r}")
            scale = float(noise_scale_per_stratum[name])
        else:
            scale = float(noise_scale_per_stratum)
        s = seed if seeds is None else np.random.default_rng(seeds[k])
        out.append(estimate_stratum(table, scale, stratum=name, seed=s, **options))
    return out
