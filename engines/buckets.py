"""Batch buckets: the fixed batch sizes that backends with fixed shapes (CUDA graphs, TensorRT profiles)
build for, a batch padded up to the next. Apart from the backends, so that the CLI can name the default
without importing torch."""

from __future__ import annotations

import bisect
from collections.abc import Sequence

from emostream.runtime.errors import BackendError

DEFAULT_BUCKETS = (1, 8, 32, 128)


def parse_buckets(text: str | Sequence[int]) -> tuple[int, ...]:
    """'1,8,32,128' -> (1, 8, 32, 128), sorted, each positive."""
    values = [int(v) for v in text.split(",") if v.strip()] if isinstance(text, str) else [int(v) for v in text]
    if not values or min(values) < 1:
        raise ValueError(f"batch buckets must be positive integers, got {text!r}")
    return tuple(sorted(set(values)))


def bucket_for(batch: int, buckets: Sequence[int]) -> int:
    """The smallest bucket that holds `batch` slots."""
    i = bisect.bisect_left(buckets, batch)
    if i == len(buckets):
        raise BackendError(f"batch {batch} exceeds the largest batch bucket {buckets[-1]}; export with a larger one")
    return buckets[i]
