"""Temperature scaling (Guo et al., ICML 2017): one scalar T fitted on validation episodes."""

from __future__ import annotations

import numpy as np
from scipy.optimize import minimize_scalar
from scipy.special import log_softmax, softmax

TEMPERATURE_BOUNDS = (1e-2, 1e3)  # the search range of `fit_temperature`


def at_bound(temperature: float) -> bool:
    """Whether a fitted T sits at its search range's edge: the fit found no interior optimum (at the
    top, probabilities are all but uniform: the logits carry no usable signal on val episodes).

    >>> at_bound(999.94), at_bound(1.3), at_bound(0.01)
    (True, False, True)
    """
    low, high = TEMPERATURE_BOUNDS
    return temperature >= high * 0.99 or temperature <= low * 1.01


def fit_temperature(logits: list[np.ndarray], labels: list[np.ndarray]) -> float:
    """The T > 0 minimising the pooled NLL of softmax(logits / T).

    Each episode may have its own number of ways, hence lists of (N_q, n_way) arrays.

    Two of three right at margin 8: the optimum has sigmoid(8 / T) = 2/3, so T = 8 / ln 2.

    >>> over = [np.array([[8.0, 0.0], [0.0, 8.0], [8.0, 0.0]])]
    >>> round(fit_temperature(over, [np.array([0, 1, 1])]), 3), round(float(8 / np.log(2)), 3)
    (11.542, 11.542)
    """

    def nll(log_t: float) -> float:
        t = np.exp(log_t)
        return -sum(log_softmax(z / t, axis=1)[np.arange(len(y)), y].sum()
                    for z, y in zip(logits, labels, strict=True))

    low, high = TEMPERATURE_BOUNDS
    best = minimize_scalar(nll, bounds=(np.log(low), np.log(high)), method="bounded",
                           options={"xatol": 1e-4})
    return float(np.exp(best.x))


def scaled_probs(logits: np.ndarray, temperature: float) -> np.ndarray:
    """softmax(logits / T) along the last axis.

    >>> scaled_probs(np.array([[2.0, 0.0]]), 2.0).round(4)
    array([[0.7311, 0.2689]])
    """
    return softmax(logits / temperature, axis=-1)
