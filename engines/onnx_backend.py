"""The ONNX Runtime backend: the exported step graph, with its state passed in and out.

On the CPU, tensors cross as zero-copy NumPy views, one intra-op thread by default and no spinning: a
spinning pool burns a core between steps that the server's front-ends and sockets need. On CUDA (an
onnxruntime-gpu install) inputs and outputs are bound to device memory with IOBinding, so nothing goes
through the host. The graph comes from the engine cache (engines/cache.py), exported on first use.
"""

from __future__ import annotations

import platform
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from emostream.engines.backend import StepBackend, flat_args, split_results
from emostream.engines.cache import CacheEntry, EngineCache, device_description, model_hash
from emostream.engines.onnx_export import OPSET, export_step_onnx, graph_input_names, graph_output_names
from emostream.runtime.errors import BackendError
from emostream.runtime.step import StreamingGenerator, TensorDict

_NUMPY_DTYPES = {torch.float32: np.float32, torch.float16: np.float16, torch.bool: np.bool_, torch.int64: np.int64}


def onnxruntime_version() -> str:
    import onnxruntime as ort

    return str(ort.__version__)


def onnx_fields(generator: StreamingGenerator, device: str) -> dict[str, Any]:
    """What an exported graph depends on: its engine-cache key fields."""
    return {
        "model": model_hash(generator), "backend": "onnx", "onnxruntime": onnxruntime_version(),
        "exporter": f"torch {torch.__version__}, opset {OPSET}", **device_description(device),
        "precision": "fp32", "profile": "dynamic batch",
    }  # fmt: skip


def cached_onnx(generator: StreamingGenerator, name: str, cache: EngineCache, device: str = "cpu") -> CacheEntry:
    """The generator's ONNX graph from the cache, exported first if missing or stale."""

    def build(path: Path) -> dict[str, Any]:
        started = time.perf_counter()
        export_step_onnx(generator, path)
        return {"build_s": round(time.perf_counter() - started, 2), "host": platform.node()}

    return cache.get_or_build("onnx", name, onnx_fields(generator, device), "step.onnx", build)


class OnnxBackend(StepBackend):
    name = "onnx"

    def __init__(
        self, generator: StreamingGenerator, graph: Path, device: str = "cpu", intra_op_threads: int = 1
    ) -> None:
        super().__init__(generator, device)
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = intra_op_threads
        options.inter_op_num_threads = 1
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.add_session_config_entry("session.inter_op.allow_spinning", "0")
        providers: list[str | tuple[str, dict[str, int]]] = ["CPUExecutionProvider"]
        if self.device.type == "cuda":
            if "CUDAExecutionProvider" not in ort.get_available_providers():
                raise BackendError("this onnxruntime has no CUDA execution provider; install onnxruntime-gpu")
            providers = [("CUDAExecutionProvider", {"device_id": self.device.index or 0}), "CPUExecutionProvider"]
        self.session = ort.InferenceSession(str(graph), options, providers=providers)
        # A step built without masks (runtime/step.py) leaves reset and active unused, and the exporter drops them.
        present = {i.name for i in self.session.get_inputs()}
        self.inputs = [(i, name) for i, name in enumerate(graph_input_names(generator)) if name in present]
        self.output_names = graph_output_names(generator)
        self.graph = graph

    def step(
        self, inputs: TensorDict, state: TensorDict, noise: Tensor, reset: Tensor, active: Tensor
    ) -> tuple[TensorDict, TensorDict]:
        args = flat_args(self.spec, inputs, state, noise, reset, active)
        if self.device.type == "cuda":
            return split_results(self.spec, self._run_bound(args))
        feeds = {name: np.ascontiguousarray(args[i].detach().numpy()) for i, name in self.inputs}
        results = self.session.run(self.output_names, feeds)
        return split_results(self.spec, [torch.from_numpy(r) for r in results])

    def _run_bound(self, args: list[Tensor]) -> list[Tensor]:
        """Device-resident run: inputs and preallocated outputs bound by pointer."""
        batch = args[-1].shape[0]
        binding = self.session.io_binding()
        index = self.device.index or 0
        args = [a.contiguous() for a in args]  # kept alive until the run ends: bound by pointer
        for i, name in self.inputs:
            a = args[i]
            binding.bind_input(name, "cuda", index, _NUMPY_DTYPES[a.dtype], tuple(a.shape), a.data_ptr())
        specs = list(self.spec.outputs) + list(self.spec.state)
        results = [torch.empty((batch, *t.shape), dtype=t.dtype, device=self.device) for t in specs]
        for name, r in zip(self.output_names, results, strict=True):
            binding.bind_output(name, "cuda", index, _NUMPY_DTYPES[r.dtype], tuple(r.shape), r.data_ptr())
        self.session.run_with_iobinding(binding)
        return results

    def describe(self) -> dict[str, str]:
        return super().describe() | {
            "onnxruntime": onnxruntime_version(), "providers": ",".join(self.session.get_providers()),
        }  # fmt: skip
