"""Poisson log-linear fits: statsmodels' GLM for the reported models on exact counts, a warm-started Newton solver
for bootstrap replicates and for noisy released counts (the same likelihood, checked to agree to 1e-6 in
tests/estimate).

Noisy counts. A released count y = Poisson(mu) + noise of known variance v (privacy noise, collision error) has
mean mu and variance mu + v; y + v is fitted as a Poisson count of mean mu + v, whose mean and variance both match
(the "shifted Poisson" likelihood, the quasi-likelihood of variance function mu + v). Its score
X' (mu / (mu + v)) (y - mu) weights each cell by how much of its variance is signal, so the noise of the many
sparse cells (mu near 0, v fixed) no longer drives the interactions, as it does under the plain Poisson
likelihood, whose score X' (y - mu) counts every residual alike. With v = 0 both are the Poisson likelihood."""

from __future__ import annotations

import math
import warnings

import numpy as np
from scipy.special import gammaln

MAX_ABS_COEF = 25.0  # a coefficient beyond this means the MLE does not exist (a diverging fit)


def _loglik(y: np.ndarray, mu: np.ndarray, noise_var: np.ndarray | float = 0.0) -> float:
    """Poisson log-likelihood of y + v at mean mu + v (module docstring; v = 0: the plain Poisson likelihood).
    log y! only shifts it by a constant of the data; noisy counts can be negative, so it is taken at max(y + v, 0)
    (the same constant for every model, so criteria and comparisons are unchanged)."""
    yv, mv = y + noise_var, mu + noise_var
    return float(np.sum(yv * np.log(np.where(mv > 0, mv, 1.0)) - mv - gammaln(np.maximum(yv, 0.0) + 1.0)))


def _deviance(y: np.ndarray, mu: np.ndarray) -> float:
    with np.errstate(divide="ignore", invalid="ignore"):
        term = np.where(y > 0, y * np.log(y / mu), 0.0)
    return float(2.0 * np.sum(term - (y - mu)))


def _newton_poisson(X: np.ndarray, y: np.ndarray, beta0: np.ndarray, maxiter: int = 60, tol: float = 1e-9,
                    noise_var: np.ndarray | float = 0.0):
    """Poisson log-link MLE (of y + noise_var at mu + noise_var, module docstring) by Fisher scoring with step
    halving; with noise_var = 0 that is Newton's method. Returns (beta, mu) or None when the MLE does not exist
    numerically (no convergence, overflow, diverging parameters)."""
    beta = beta0.astype(float).copy()
    eta = X @ beta
    if eta.max() > 700:
        return None
    mu = np.exp(eta)
    v = np.broadcast_to(np.asarray(noise_var, dtype=float), y.shape)
    noisy = v > 0
    yv = y + v

    def objective(eta: np.ndarray, mu: np.ndarray) -> float:
        log_mv = np.where(noisy, np.log(mu + v), eta)  # log(mu + v), exactly eta where v = 0
        return float(np.sum(yv * log_mv - mu - v))

    ll = objective(eta, mu)
    for _ in range(maxiter):
        signal = np.where(noisy, mu / (mu + v), 1.0)
        grad = X.T @ (signal * (y - mu))
        hess = (X.T * (mu * signal)) @ X
        try:
            step = np.linalg.solve(hess, grad)
        except np.linalg.LinAlgError:
            return None
        if not np.all(np.isfinite(step)):
            return None
        t = 1.0
        for _ in range(30):
            cand = beta + t * step
            eta_c = X @ cand
            if eta_c.max() <= 700:
                mu_c = np.exp(eta_c)
                ll_c = objective(eta_c, mu_c)
                if ll_c >= ll - 1e-10 * (1 + abs(ll)):
                    break
            t *= 0.5
        else:
            return None
        beta, mu, ll_old, ll = cand, mu_c, ll, ll_c
        if np.max(np.abs(t * step)) < tol or abs(ll - ll_old) < tol * (1 + abs(ll)) * 1e-3:
            break
        if np.max(np.abs(beta)) > 4 * MAX_ABS_COEF:
            return None
    else:
        return None
    return beta, mu


def _statsmodels_fit(X: np.ndarray, y: np.ndarray):
    """statsmodels GLM Poisson fit, or None when the MLE does not exist numerically.

    Warnings are handled one by one, not silenced: a ConvergenceWarning, a PerfectSeparationWarning on a
    model with residual df > 0 (fitted = observed exactly: parameters on the boundary) or a numerical
    RuntimeWarning (overflow, invalid values) make the model "not estimable". A saturated model (as many
    parameters as cells, e.g. independence on two lists) interpolates the data by construction: there
    statsmodels' perfect-prediction warning and its division by the zero residual df when it estimates a
    scale are expected and carry no information, so they are dropped. Any other warning is passed on."""
    from statsmodels.genmod import families
    from statsmodels.genmod.generalized_linear_model import GLM
    from statsmodels.tools.sm_exceptions import ConvergenceWarning, PerfectSeparationWarning

    saturated = X.shape[1] >= X.shape[0]
    start = np.zeros(X.shape[1])
    start[0] = math.log(max(float(y.mean()), 1e-3))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            result = GLM(y, X, family=families.Poisson()).fit(start_params=start, maxiter=200, tol=1e-10, scale=1.0)
        except (np.linalg.LinAlgError, ValueError, OverflowError):
            return None
    failed = False
    for w in caught:
        if saturated and (
            issubclass(w.category, PerfectSeparationWarning)
            or (issubclass(w.category, RuntimeWarning) and "divide by zero" in str(w.message))
        ):
            continue
        if issubclass(w.category, (ConvergenceWarning, PerfectSeparationWarning, RuntimeWarning)):
            failed = True
        else:
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    if failed or not getattr(result, "converged", True):
        return None
    return result
