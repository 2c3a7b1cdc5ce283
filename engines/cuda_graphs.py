"""CUDA graph replay of a step, one captured graph per batch bucket (used by `compiled` and `tensorrt`).

A call copies the arguments into the bucket's static input buffers, marks the padding slots inactive and
never reset, replays, and returns *copies* of the outputs and the new state. Copying matters: the next
replay overwrites the graph's output buffers in place, so a caller still holding the previous step's
state (the batcher does, and feeds it back) would otherwise read values from a later step. The caller's
tensors are never aliased to graph memory.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from emostream.engines.backend import padded_args
from emostream.engines.buckets import bucket_for
from emostream.runtime.step import StepSpec

# Given a bucket's static input buffers, returns a function that launches the step on the current stream
# and returns its output tensors.
Launcher = Callable[[list[Tensor]], Callable[[], list[Tensor]]]
WARM_UP_LAUNCHES = 3  # lazy initialisation (kernel selection, allocator growth) must happen before capture


@dataclass
class _Captured:
    graph: torch.cuda.CUDAGraph
    inputs: list[Tensor]
    outputs: list[Tensor]


class CudaGraphs:
    def __init__(self, spec: StepSpec, buckets: Sequence[int], launcher: Launcher) -> None:
        self.spec = spec
        self.buckets = tuple(sorted(buckets))
        self.launcher = launcher
        self.captured: dict[int, _Captured] = {}

    def run(self, args: list[Tensor]) -> list[Tensor]:
        """Flat step arguments (n slots) -> flat results (n slots), by replaying the bucket's graph."""
        n = args[-1].shape[0]
        bucket = bucket_for(n, self.buckets)
        captured = self.captured.get(bucket) or self._capture(bucket, args)
        for buffer, value in zip(captured.inputs, args, strict=True):
            buffer[:n].copy_(value)
        captured.inputs[-2][n:] = False  # padding slots: never reset ...
        captured.inputs[-1][n:] = False  # ... and inactive, so nothing of theirs reaches the outputs
        captured.graph.replay()
        return [o[:n].clone() for o in captured.outputs]

    def _capture(self, bucket: int, args: list[Tensor]) -> _Captured:
        static = [a.clone() for a in padded_args(self.spec, args, bucket)]
        launch = self.launcher(static)
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(WARM_UP_LAUNCHES):
                launch()
        torch.cuda.current_stream().wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            outputs = launch()
        self.captured[bucket] = _Captured(graph, static, outputs)
        return self.captured[bucket]
