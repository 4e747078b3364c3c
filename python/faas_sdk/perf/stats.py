"""Summaries of latency samples shared by the performance toolkit: counts, success rate and
nearest-rank percentiles, with no dependency beyond the standard library."""

from __future__ import annotations

import dataclasses
import math
from fractions import Fraction
from typing import Iterable, Optional, Sequence, Union

__all__ = ["LatencySummary", "percentile"]

Number = Union[int, float]


def percentile(samples: Sequence[float], p: Number) -> float:
    """The nearest-rank `p`-th percentile (0 < p <= 100) of `samples`, which need not be sorted.

    Nearest rank: the smallest sample such that at least p % of the samples are at or below it,
    that is the sample of rank ceil(p / 100 * n) in ascending order (1-based). It is always one
    of the samples (never interpolated), so p100 is the maximum and, for n < 100, p99 is the
    maximum too. Raises ValueError for no samples or p outside (0, 100].
    """
    return _nearest_rank(sorted(samples), p)


def _nearest_rank(ordered: Sequence[float], p: Number) -> float:
    if not ordered:
        raise ValueError("percentile of no samples")
    if not 0 < p <= 100:
        raise ValueError(f"percentile must be in (0, 100], not {p!r}")
    # Exact arithmetic: with floats, 99.9 * 1000 / 100 is 999.0000000000001 and would round up.
    rank = math.ceil(Fraction(str(p)) * len(ordered) / 100)
    return ordered[max(rank, 1) - 1]


@dataclasses.dataclass(frozen=True)
class LatencySummary:
    """What a set of timed operations took, in seconds.

    count         operations attempted: successful + failed
    successful    operations that succeeded; their latencies are the samples
    failed        operations that failed; their latencies are not in any figure below
    success_rate  successful / count (0.0 when count is 0)
    total         sum of the samples (0.0 without samples)
    mean, min, max, p50, p95, p99
                  over the samples; nearest-rank percentiles (see `percentile`); None
                  without samples
    """

    count: int
    successful: int
    failed: int
    success_rate: float
    total: float
    mean: Optional[float]
    min: Optional[float]
    max: Optional[float]
    p50: Optional[float]
    p95: Optional[float]
    p99: Optional[float]

    @classmethod
    def from_samples(cls, samples: Iterable[float], failures: int = 0) -> "LatencySummary":
        """Summarises the latencies (seconds) of successful operations plus `failures`
        operations that failed."""
        if failures < 0:
            raise ValueError("failures must be >= 0")
        ordered = sorted(float(s) for s in samples)
        if any(math.isnan(s) or s < 0 for s in ordered):
            raise ValueError("latency samples must be non-negative numbers")
        successful = len(ordered)
        count = successful + failures
        total = math.fsum(ordered)
        have = bool(ordered)
        return cls(
            count=count,
            successful=successful,
            failed=failures,
            success_rate=successful / count if count else 0.0,
            total=total,
            mean=total / successful if have else None,
            min=ordered[0] if have else None,
            max=ordered[-1] if have else None,
            p50=_nearest_rank(ordered, 50) if have else None,
            p95=_nearest_rank(ordered, 95) if have else None,
            p99=_nearest_rank(ordered, 99) if have else None,
        )

    def to_dict(self) -> dict[str, Optional[Number]]:
        """The fields as a plain dict (JSON-ready; times in seconds, None without samples)."""
        return dataclasses.asdict(self)
