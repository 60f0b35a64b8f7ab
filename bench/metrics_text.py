"""Reading Prometheus text exposition and timing samples: the benches' pure helpers."""

from __future__ import annotations

import math
from collections.abc import Sequence

#: (upper bound, cumulative count) pairs of one histogram, ascending, ``+Inf`` last.
Buckets = list[tuple[float, float]]


def histogram_buckets(exposition: str, name: str) -> Buckets:
    """``name``'s buckets as exposed (one series: the first label set's, no other labels)."""
    buckets: Buckets = []
    prefix = name + "_bucket{"
    for line in exposition.splitlines():
        if line.startswith(prefix):
            bound = line.split('le="', 1)[1].split('"', 1)[0]
            upper = math.inf if bound == "+Inf" else float(bound)
            buckets.append((upper, float(line.rsplit(None, 1)[-1])))
    return buckets


def gauge_value(exposition: str, name: str) -> float | None:
    """The value of an unlabelled gauge, None when the exposition has no such sample."""
    for line in exposition.splitlines():
        fields = line.split()
        if len(fields) >= 2 and fields[0] == name:
            return float(fields[1])
    return None


def histogram_delta(before: Buckets, after: Buckets) -> Buckets:
    """What was observed between two scrapes (bounds from ``after``; a missing before is 0)."""
    earlier = dict(before)
    return [(bound, count - earlier.get(bound, 0.0)) for bound, count in after]


def histogram_quantile(q: float, buckets: Buckets) -> float:
    """Prometheus' histogram_quantile: linear interpolation inside the bucket; 0 when empty.

    A rank in the ``+Inf`` bucket answers the highest finite bound, as Prometheus does.
    """
    if not buckets or buckets[-1][1] <= 0:
        return 0.0
    rank = q * buckets[-1][1]
    lower_bound, lower_count = 0.0, 0.0
    for bound, count in buckets:
        if count >= rank:
            if bound == math.inf:
                return lower_bound
            share = (rank - lower_count) / max(count - lower_count, 1e-9)
            return lower_bound + (bound - lower_bound) * share
        lower_bound, lower_count = bound, count
    return lower_bound


def observations_above(buckets: Buckets, bound: float) -> int:
    """Observations greater than ``bound``, which must be one of the bucket bounds."""
    counts = dict(buckets)
    if bound not in counts:
        raise ValueError(f"{bound} is not a bucket bound of {sorted(counts)}")
    return int(buckets[-1][1] - counts[bound])


def quantile(q: float, samples: Sequence[float]) -> float:
    """The ``q`` quantile of ``samples`` (nearest rank); 0 for no samples."""
    if not samples:
        return 0.0
    ordered = sorted(samples)
    rank = max(1, math.ceil(q * len(ordered)))
    return ordered[rank - 1]
