"""The event-lag histogram's batch binning agrees with binning each lag on its own."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from stream.metrics import LAG_BUCKETS, BatchHistogram

NOW_S = 1_790_000_000.123
#: Lags at the bucket bounds exactly, and around them, and far out.
LAGS_MS = st.one_of(
    st.sampled_from([round(b * 1000) for b in LAG_BUCKETS]),
    st.integers(-5_000, 10**10),
)


@settings(max_examples=300, deadline=None)
@given(lags_ms=st.lists(LAGS_MS, max_size=60))
def test_observe_lags_bins_like_observe_many(lags_ms: list[int]) -> None:
    times_ms = [int(NOW_S * 1000) - lag for lag in lags_ms]
    one_by_one = BatchHistogram("a", "lag", LAG_BUCKETS)
    batched = BatchHistogram("b", "lag", LAG_BUCKETS)
    one_by_one.observe_many([NOW_S - t / 1000 for t in times_ms])
    batched.observe_lags(NOW_S, times_ms)
    assert batched._counts == one_by_one._counts
    # The one-by-one sum itself rounds each lag (now is ~1.8e9 s: an ulp is 2.4e-7 s).
    tolerance = 1e-6 * max(1.0, abs(one_by_one._sum)) + 3e-7 * len(lags_ms)
    assert abs(batched._sum - one_by_one._sum) <= tolerance
