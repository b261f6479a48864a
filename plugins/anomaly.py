"""AnomalyDetection_SpikeAndDip and AnomalyDetection_ChangePoint (``register_functions``).

Both are analytic functions, as the reference documents them::

    AnomalyDetection_SpikeAndDip(expr, confidence, historySize, mode)
        OVER ([PARTITION BY key] LIMIT DURATION(unit, n) [WHEN cond])
    AnomalyDetection_ChangePoint(expr, confidence, historySize)
        OVER ([PARTITION BY key] LIMIT DURATION(unit, n) [WHEN cond])

and return a record ``{"IsAnomaly": 0|1, "Score": float}`` for each event (read it with
``GetRecordPropertyValue(r, 'Score')`` or ``r.IsAnomaly``). The model learns from the
events of the LIMIT DURATION window that pass WHEN, at most ``historySize`` of them before
the current one; PARTITION BY gives each key its own model. ``confidence`` is a percentage
in [1, 100]; ``mode`` is ``'spikes'``, ``'dips'`` or ``'spikesanddips'``.

Stream Analytics does not publish its models' exact arithmetic, so scores are this
module's, built on the documented algorithms:

- SpikeAndDip: the adaptive kernel density estimate the reference names (Gaussian
  kernels; a fixed-bandwidth pilot estimate with Silverman's bandwidth, then a bandwidth
  per history value by Abramson's square-root law) of the history; Score is the p-value of the current value (upper tail for spikes, lower tail for
  dips, twice the smaller tail for both), so lower is more anomalous, and IsAnomaly is
  ``Score < 1 - confidence/100``. Until the history holds 10 values (or historySize, if
  smaller) Score is 0.5 and IsAnomaly 0.
- ChangePoint: an exchangeability martingale (the power martingale, epsilon 0.1) betting on
  the latest ``historySize // 4`` events (at least 2) against the ``historySize`` events
  before them, with conformal p-values (the share of that reference at least as far from
  its median as the value). Score is the martingale's value: its expectation is 1 while the
  values are exchangeable and it grows exponentially while they keep departing from the
  earlier level, so a lone spike does not move it much and a level shift does.
  IsAnomaly is ``Score >= 1 / (1 - confidence/100)`` (Markov's inequality: a false alarm
  has probability at most ``1 - confidence/100``).

A NULL value gives a NULL record and does not enter the model's history.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from headwater.functions import CastError, ListAggregate, type_name
from headwater.hookspecs import hookimpl

__all__ = ["SpikeAndDip", "ChangePoint", "adaptive_bandwidths", "conformal_pvalue", "kde_pvalues"]

_EPSILON = 0.1  # power martingale
_WARMUP = 10  # SpikeAndDip scores once it has seen this many events (or historySize, if smaller)
_SQRT2 = math.sqrt(2.0)
_ERF = np.frompyfunc(math.erf, 1, 1)


def _silverman(history: np.ndarray) -> float:
    """Silverman's rule-of-thumb bandwidth; tiny but positive for a constant history."""
    n = len(history)
    sd = float(np.std(history, ddof=1)) if n > 1 else 0.0
    q75, q25 = np.percentile(history, [75, 25])
    spread = min(sd, float(q75 - q25) / 1.34) or sd
    h = 0.9 * spread * n ** -0.2
    return h if h > 0 else 1e-9 * max(1.0, abs(float(history[0])))


def adaptive_bandwidths(history: np.ndarray) -> np.ndarray:
    """Per-point bandwidths of the adaptive kernel density estimate (Abramson's square-root
    law, as in Silverman 1986 §5.3): a fixed-bandwidth Gaussian pilot estimate ``f`` at each
    history value, then ``h_i = h * (f(x_i) / g) ** -0.5`` with ``g`` the geometric mean of
    the ``f(x_i)``, so kernels are narrow where values are dense and wide in the tails."""
    h = _silverman(history)
    d = (history[:, None] - history[None, :]) / h
    pilot = np.exp(-0.5 * d * d).mean(axis=1) / (h * math.sqrt(2 * math.pi))
    g = math.exp(float(np.mean(np.log(pilot))))
    return h * (pilot / g) ** -0.5


def kde_pvalues(history: np.ndarray, x: float) -> tuple[float, float]:
    """(upper, lower) tail probabilities of ``x`` under the adaptive Gaussian kernel density
    estimate of ``history`` (:func:`adaptive_bandwidths`)."""
    z = (x - history) / (adaptive_bandwidths(history) * _SQRT2)
    cdf = 0.5 * (1.0 + np.asarray(_ERF(z), dtype=float))  # frompyfunc gives objects
    lower = float(np.mean(cdf))
    return 1.0 - lower, lower


def conformal_pvalue(history: np.ndarray, x: float) -> float:
    """How usual ``x`` is among ``history``: the share of history values at least as far from
    the history's median as ``x`` (counting ``x``), so uniform when the values are exchangeable."""
    med = float(np.median(history))
    far = np.abs(history - med)
    return float((np.count_nonzero(far >= abs(x - med)) + 1) / (len(history) + 1))


def _confidence(v: Any) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not 1 <= v <= 100:
        raise ValueError("confidence must be a number from 1.00 to 100")
    return float(v)


def _history_size(v: Any) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or v < 2:
        raise ValueError("historySize must be an integer of at least 2")
    return v


class _Detector(ListAggregate):
    """Shared: the window's values arrive in time order, the current event's last."""

    def __init__(self, confidence: float = 90.0, history: int = 120) -> None:
        self.confidence, self.history = confidence, history

    def _values(self, acc: list, keep: int) -> np.ndarray | None:
        if not acc or acc[-1] is None:
            return None
        vals = []
        for v in acc:
            if v is None:
                continue
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                raise CastError(f"{self.name}: the expression must be bigint or float, got '{type_name(v)}'")
            vals.append(float(v))
        return np.asarray(vals[-keep:], dtype=float)


class SpikeAndDip(_Detector):
    """Temporary anomalies: spikes and dips against the recent history (see the module doc)."""

    name, trailing_constant_args = "AnomalyDetection_SpikeAndDip", 3
    MODES = ("spikes", "dips", "spikesanddips")

    def __init__(self, confidence: float = 90.0, history: int = 120, mode: str = "spikesanddips") -> None:
        super().__init__(confidence, history)
        self.mode = mode

    def configure(self, *constants):
        if len(constants) != 3:
            raise ValueError("takes (expression, confidence, historySize, mode)")
        mode = str(constants[2]).lower() if isinstance(constants[2], str) else None
        if mode not in self.MODES:
            raise ValueError("mode must be 'spikes', 'dips' or 'spikesanddips'")
        return SpikeAndDip(_confidence(constants[0]), _history_size(constants[1]), mode)

    def result(self, acc):
        vals = self._values(acc, self.history + 1)
        if vals is None:
            return None
        hist, x = vals[:-1], vals[-1]
        if len(hist) < min(self.history, _WARMUP):
            return {"IsAnomaly": 0, "Score": 0.5}
        upper, lower = kde_pvalues(hist, x)
        score = upper if self.mode == "spikes" else lower if self.mode == "dips" else min(1.0, 2 * min(upper, lower))
        return {"IsAnomaly": int(score < 1 - self.confidence / 100), "Score": float(score)}


class ChangePoint(_Detector):
    """Persistent changes (level shifts, trends) through an exchangeability martingale."""

    name, trailing_constant_args = "AnomalyDetection_ChangePoint", 2

    def configure(self, *constants):
        if len(constants) != 2:
            raise ValueError("takes (expression, confidence, historySize)")
        return ChangePoint(_confidence(constants[0]), _history_size(constants[1]))

    @property
    def recent(self) -> int:
        """How many latest events the martingale bets on (a quarter of the history)."""
        return max(2, self.history // 4)

    def result(self, acc):
        vals = self._values(acc, self.history + self.recent)
        if vals is None:
            return None
        w = min(self.recent, len(vals) - 2)
        score = 1.0
        if w >= 1:
            reference, latest = vals[:len(vals) - w][-self.history:], vals[len(vals) - w:]
            log_m = sum(math.log(_EPSILON) + (_EPSILON - 1) * math.log(conformal_pvalue(reference, x))
                        for x in latest)
            score = math.exp(min(log_m, 700.0))
        threshold = math.inf if self.confidence >= 100 else 1 / (1 - self.confidence / 100)
        return {"IsAnomaly": int(score >= threshold), "Score": float(score)}


@hookimpl
def register_functions(register) -> None:
    register(SpikeAndDip())
    register(ChangePoint())
