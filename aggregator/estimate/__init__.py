"""Multiple-systems estimation of the dark number (self-contained: stdlib, numpy, scipy, statsmodels, opendp).

See :mod:`aggregator.estimate.mse` for the method."""

from .mse import (
    EstimationError,
    GoodnessOfFit,
    ModelFit,
    PatternTable,
    StratumEstimate,
    estimate_strata,
    estimate_stratum,
    fit_model,
)
from .noise import discrete_laplace_noise, discrete_laplace_variance

__all__ = [
    "EstimationError",
    "GoodnessOfFit",
    "ModelFit",
    "PatternTable",
    "StratumEstimate",
    "estimate_strata",
    "estimate_stratum",
    "fit_model",
    "discrete_laplace_noise",
    "discrete_laplace_variance",
]
