"""The torch.compile backend, with CUDA graph replay on GPUs.

On the CPU the step is compiled by Inductor (C++ kernels, static shapes) and a batch is padded to its
bucket, so there is one compiled graph per bucket and no recompilation while serving. On CUDA each
bucket's compiled step is captured once as a CUDA graph and replayed (engines/cuda_graphs.py, which
explains why outputs and state are copied out of the graph's buffers).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor

from emostream.engines.backend import StepBackend, flat_args, padded_args, split_results
from emostream.engines.buckets import DEFAULT_BUCKETS, bucket_for
from emostream.engines.cuda_graphs import CudaGraphs
from emostream.runtime.step import StreamingGenerator, TensorDict


class CompiledBackend(StepBackend):
    name = "compiled"

    def __init__(
        self, generator: StreamingGenerator, device: str = "cpu", buckets: Sequence[int] = DEFAULT_BUCKETS
    ) -> None:
        super().__init__(generator, device)
        self.buckets = tuple(sorted(buckets))
        self.compiled: Callable[..., tuple[Tensor, ...]] = torch.compile(self.generator, dynamic=False)
        self.graphs = CudaGraphs(self.spec, self.buckets, self._launcher) if self.device.type == "cuda" else None

    def _launcher(self, static: list[Tensor]) -> Callable[[], list[Tensor]]:
        return lambda: list(self.compiled(*static))

    @torch.no_grad()
    def step(
        self, inputs: TensorDict, state: TensorDict, noise: Tensor, reset: Tensor, active: Tensor
    ) -> tuple[TensorDict, TensorDict]:
        args = flat_args(self.spec, inputs, state, noise, reset, active)
        if self.graphs is not None:
            return split_results(self.spec, self.graphs.run(args))
        n = reset.shape[0]
        results = self.compiled(*padded_args(self.spec, args, bucket_for(n, self.buckets)))
        return split_results(self.spec, [r[:n] for r in results])

    def describe(self) -> dict[str, str]:
        mode = "inductor + CUDA graphs" if self.graphs is not None else "inductor (C++)"
        return super().describe() | {"torch": torch.__version__, "mode": mode}
