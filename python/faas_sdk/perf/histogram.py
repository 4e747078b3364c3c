"""A log-bucketed latency histogram (HDR-like) for the load tester: constant memory, mergeable,
percentiles within a documented relative error.

Buckets are 1/16 of an octave wide: bucket ``i`` holds values in
``[1 µs * 2**(i/16), 1 µs * 2**((i+1)/16))``, 16 per power of two, 36 octaves (1 µs to about
19 hours, 576 buckets). A percentile reports the upper bound of the bucket that holds the
nearest-rank sample, capped at the exact maximum, so it is never below the exact percentile and
at most ``RELATIVE_ERROR`` (2**(1/16) - 1, about 4.4 %) above it. Values under 1 µs share the
first bucket (absolute error under 1.05 µs); values over the top share the last one (the
reported value is then capped at the exact maximum). ``count``, ``mean``, ``min`` and ``max``
are exact.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from typing import Any, Iterable, Optional

__all__ = ["Histogram", "LOWEST", "OCTAVES", "RELATIVE_ERROR", "SUB_BUCKETS", "SUMMARY_PERCENTILES"]

LOWEST = 1e-6  # seconds: the lower bound of bucket 0
SUB_BUCKETS = 16  # buckets per power of two
OCTAVES = 36  # 2**36 µs ~ 19 h
NUM_BUCKETS = SUB_BUCKETS * OCTAVES
RELATIVE_ERROR = 2.0 ** (1.0 / SUB_BUCKETS) - 1.0  # ~0.0443: bucket width relative to its start

# Lower bounds of every bucket, plus the upper bound of the last. bisect on this list places a
# value exactly, with no floating-point rounding at bucket edges (unlike floor(log2(v))).
_BOUNDS = [LOWEST * 2.0 ** (i / SUB_BUCKETS) for i in range(NUM_BUCKETS + 1)]

# name -> percentile, as reported by Histogram.summary() and in every report.
SUMMARY_PERCENTILES = {"p50": 50.0, "p95": 95.0, "p99": 99.0, "p999": 99.9}


class Histogram:
    """Latencies in seconds, in 1/16-octave buckets. Not thread-safe: lock around ``record``
    when several threads share one (or give each thread its own and ``merge`` them)."""

    __slots__ = ("_counts", "count", "total", "min", "max")

    def __init__(self, values: Iterable[float] = ()) -> None:
        self._counts: dict[int, int] = {}
        self.count = 0
        self.total = 0.0
        self.min = math.inf
        self.max = -math.inf
        for v in values:
            self.record(v)

    # ---- recording ---------------------------------------------------------------------------

    @staticmethod
    def bucket_index(seconds: float) -> int:
        """The bucket that holds `seconds` (clamped to the first and last bucket)."""
        i = bisect_right(_BOUNDS, seconds) - 1
        return 0 if i < 0 else min(i, NUM_BUCKETS - 1)

    @staticmethod
    def bucket_bounds(index: int) -> tuple[float, float]:
        """``[lower, upper)`` of bucket `index`, in seconds (bucket 0 also holds everything
        below its lower bound, the last one everything above)."""
        return _BOUNDS[index], _BOUNDS[index + 1]

    def record(self, seconds: float, count: int = 1) -> None:
        """Adds `count` observations of `seconds` (>= 0, finite)."""
        if not seconds >= 0.0 or seconds == math.inf:  # also rejects NaN
            raise ValueError(f"a latency must be finite and >= 0, got {seconds!r}")
        if count < 1:
            raise ValueError("count must be >= 1")
        i = bisect_right(_BOUNDS, seconds) - 1
        i = 0 if i < 0 else (i if i < NUM_BUCKETS else NUM_BUCKETS - 1)
        counts = self._counts
        counts[i] = counts.get(i, 0) + count
        self.count += count
        self.total += seconds * count
        if seconds < self.min:
            self.min = seconds
        if seconds > self.max:
            self.max = seconds

    def merge(self, other: "Histogram") -> "Histogram":
        """Adds every observation of `other` to this histogram; returns self."""
        for i, c in other._counts.items():
            self._counts[i] = self._counts.get(i, 0) + c
        self.count += other.count
        self.total += other.total
        self.min = min(self.min, other.min)
        self.max = max(self.max, other.max)
        return self

    def copy(self) -> "Histogram":
        return Histogram().merge(self)

    # ---- reading -----------------------------------------------------------------------------

    @property
    def mean(self) -> float:
        """Exact mean (NaN when empty)."""
        return self.total / self.count if self.count else math.nan

    def percentile(self, p: float) -> float:
        """The `p`-th percentile (0 <= p <= 100) by nearest rank, in seconds: the upper bound of
        the bucket holding the ceil(p/100 * count)-th smallest value, capped at the exact max.
        ``percentile(0)`` is the exact min and ``percentile(100)`` the exact max. NaN when
        empty."""
        if not 0.0 <= p <= 100.0:
            raise ValueError(f"a percentile is between 0 and 100, got {p!r}")
        if self.count == 0:
            return math.nan
        if p == 0.0:
            return self.min
        if p == 100.0:
            return self.max
        rank = max(1, math.ceil(p / 100.0 * self.count - 1e-9))
        seen = 0
        for i in sorted(self._counts):
            seen += self._counts[i]
            if seen >= rank:
                return max(self.min, min(_BOUNDS[i + 1], self.max))
        return self.max  # not reached: seen == count >= rank at the end

    def summary(self) -> dict[str, Optional[float]]:
        """``count, mean, min, p50, p95, p99, p999, max`` in seconds (None when empty)."""
        out: dict[str, Optional[float]] = {"count": self.count}
        empty = self.count == 0
        out["mean"] = None if empty else self.mean
        out["min"] = None if empty else self.min
        for name, p in SUMMARY_PERCENTILES.items():
            out[name] = None if empty else self.percentile(p)
        out["max"] = None if empty else self.max
        return out

    def buckets(self) -> list[tuple[float, float, int]]:
        """Non-empty buckets as ``(lower, upper, count)``, in increasing order."""
        return [(_BOUNDS[i], _BOUNDS[i + 1], self._counts[i]) for i in sorted(self._counts)]

    # ---- serialisation -----------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready form that ``from_dict`` restores exactly."""
        return {
            "lowest": LOWEST,
            "sub_buckets": SUB_BUCKETS,
            "count": self.count,
            "sum": self.total,
            "min": None if self.count == 0 else self.min,
            "max": None if self.count == 0 else self.max,
            "buckets": [[i, self._counts[i]] for i in sorted(self._counts)],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Histogram":
        if data.get("lowest") != LOWEST or data.get("sub_buckets") != SUB_BUCKETS:
            raise ValueError("histogram was written with a different bucket layout")
        h = cls()
        h._counts = {int(i): int(c) for i, c in data["buckets"]}
        h.count = int(data["count"])
        h.total = float(data["sum"])
        if h.count:
            h.min = float(data["min"])
            h.max = float(data["max"])
        return h

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Histogram):
            return NotImplemented
        return self.to_dict() == other.to_dict()

    def __repr__(self) -> str:
        if not self.count:
            return "Histogram(count=0)"
        return (f"Histogram(count={self.count}, p50={self.percentile(50) * 1e3:.3f}ms, "
                f"p99={self.percentile(99) * 1e3:.3f}ms, max={self.max * 1e3:.3f}ms)")
