"""The numbers behind a plot: smoothing, downsampling, round axis ticks.

Plain Python, no Textual: the plots call these on every frame, the tests on their own.
"""

from __future__ import annotations

import math

# TensorBoard's default smoothing weight.
EMA_WEIGHT = 0.6

# Round steps for an elapsed-time axis, in seconds: 1 s ... 30 min, then hours.
TIME_STEPS = (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400)


def ema(values: list[float], weight: float = EMA_WEIGHT) -> list[float]:
    """TensorBoard's debiased exponential moving average."""
    smoothed, last, n = [], 0.0, 0
    for v in values:
        n += 1
        last = last * weight + (1 - weight) * v
        smoothed.append(last / (1 - weight**n))
    return smoothed


def downsample(xs: list[float], ys: list[float], buckets: int) -> tuple[list[float], list[float]]:
    """At most `buckets` points: the mean of each run of consecutive points."""
    n = len(xs)
    if n <= buckets or buckets < 1:
        return xs, ys
    out_x, out_y = [], []
    for b in range(buckets):
        lo, hi = b * n // buckets, (b + 1) * n // buckets
        out_x.append(sum(xs[lo:hi]) / (hi - lo))
        out_y.append(sum(ys[lo:hi]) / (hi - lo))
    return out_x, out_y


def spread(lo: float, hi: float, log: bool = False) -> tuple[float, float]:
    """[lo, hi], widened around a single value (one point so far) so that an axis has a range to tick."""
    if hi > lo:
        return lo, hi
    if log:
        return lo / 1.5, hi * 1.5
    pad = abs(lo) * 0.1 or 1.0
    return lo - pad, hi + pad


def _multiples(lo: float, hi: float, step: float) -> list[float]:
    first = math.ceil(lo / step - 1e-9) * step
    return [first + i * step for i in range(int((hi - first) / step + 1e-9) + 1)]


def _decimal_steps(raw: float):
    """1, 2, 5 times powers of ten, from the first one >= raw downwards."""
    power = 10 ** math.floor(math.log10(raw))
    mantissas = (10, 5, 2, 1)
    k = next(i for i in range(len(mantissas) - 1, -1, -1) if mantissas[i] * power >= raw)
    while True:
        yield mantissas[k] * power
        k += 1
        if k == len(mantissas):
            k, power = 1, power / 10


def nice_ticks(lo: float, hi: float, count: int, integer: bool = False) -> list[float]:
    """About `count` round values (1, 2 or 5 times a power of ten) in [lo, hi], at least two
    (`integer`: whole numbers only, such as steps, which may leave one)."""
    if hi <= lo:
        return [lo]
    for step in _decimal_steps((hi - lo) / max(1, count)):
        if integer and step < 1:
            return _multiples(lo, hi, 1)
        ticks = _multiples(lo, hi, step)
        if len(ticks) >= 2:
            return ticks
    raise AssertionError("unreachable: a step below (hi - lo) / 2 always fits two ticks")


def time_ticks(lo: float, hi: float, count: int) -> list[float]:
    """Round durations (15 s, 1 min, 5 min, 1 h ...) in [lo, hi] seconds, at least two."""
    if hi <= lo:
        return [lo]
    raw = (hi - lo) / max(1, count)
    fitting = [s for s in TIME_STEPS if (hi - lo) / s >= 1]
    if raw > TIME_STEPS[-1] or not fitting:
        return nice_ticks(lo, hi, count)
    start = next((i for i, s in enumerate(fitting) if s >= raw), len(fitting) - 1)
    for step in reversed(fitting[: start + 1]):
        ticks = _multiples(lo, hi, step)
        if len(ticks) >= 2:
            return ticks
    return nice_ticks(lo, hi, count)


def log_ticks(lo: float, hi: float, count: int) -> list[float]:
    """Round values for a log axis over [lo, hi] (both > 0): 1, 2, 5 times powers of ten
    where the range spans them, 1..9 times where it is narrower, linear ticks within a
    few percent; at least two, at most about `count`."""
    if hi <= lo:
        return [lo]
    for mantissas in ((1,), (1, 2, 5), tuple(range(1, 10))):
        ticks = [
            m * 10.0**p for p in range(math.floor(math.log10(lo)), math.floor(math.log10(hi)) + 1) for m in mantissas
        ]
        ticks = [t for t in ticks if lo <= t * (1 + 1e-9) and t <= hi * (1 + 1e-9)]
        if len(ticks) >= 2:
            stride = math.ceil(len(ticks) / max(2, count))
            return ticks[::stride]
    return nice_ticks(lo, hi, count)


def tick_label(value: float, digits: int = 3) -> str:
    """Ticks are round numbers: 0.002, 250, 31k, 1.5M."""
    for factor, suffix in ((1e6, "M"), (1e3, "k")):
        if abs(value) >= factor:
            return f"{value / factor:.{digits}g}{suffix}"
    return f"{value:.{digits}g}"


def tick_labels(ticks: list[float]) -> list[str]:
    """Labels with as many digits as it takes to tell neighbours apart: 10.82, 10.84, not 10.8 twice."""
    for digits in range(3, 9):
        labels = [tick_label(t, digits) for t in ticks]
        if len(set(labels)) == len(labels):
            break
    return labels
