"""The TensorRT backend: the exported ONNX step built into a TensorRT engine, replayed as CUDA graphs.

Written against the TensorRT 10 Python API (named I/O tensors, `execute_async_v3`). The build:
- parses the cached ONNX graph (engines/onnx_backend.py) after the static operator check;
- one optimisation profile per batch bucket: bucket k covers (bucket k-1, bucket k], optimised for its
  top, and a call is padded to its bucket with inactive slots, so each profile runs one fixed shape;
- precision "auto" builds FP16 first and keeps it only if the streamed parity against eager stays
  within FP16_TOLERANCE, else builds FP32 ("fp16" and "fp32" force one);
- a timing cache per device and TensorRT version next to the engine cache, so rebuilds are quick.
At run time every bucket has its own execution context with its profile selected, static device
buffers bound by address, and a CUDA graph captured around `execute_async_v3` (engines/cuda_graphs.py).

TensorRT could not be installed where this was written (its wheels come from NVIDIA's index); the tests
that need it skip with that reason. The build and run paths here have not been executed.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from emostream.engines.backend import StepBackend, flat_args, split_results
from emostream.engines.buckets import DEFAULT_BUCKETS
from emostream.engines.cache import CacheEntry, EngineCache, device_description, model_hash
from emostream.engines.cuda_graphs import CudaGraphs
from emostream.engines.onnx_backend import cached_onnx
from emostream.engines.onnx_export import graph_input_names, graph_output_names
from emostream.engines.tensorrt_ops import check_graph
from emostream.runtime.errors import BackendError
from emostream.runtime.step import StreamingGenerator, TensorDict

log = logging.getLogger("emostream.engines")
FP16_TOLERANCE = 2e-3  # max abs difference against eager (face units: blendshape weights, radians)
WORKSPACE_BYTES = 1 << 30
NOT_INSTALLED = (
    "TensorRT is not installed (pip install tensorrt from NVIDIA's index, on a machine with a CUDA GPU); "
    "its build and run paths cannot execute here"
)


def import_tensorrt() -> Any:
    try:
        import tensorrt
    except ImportError:
        raise BackendError(NOT_INSTALLED) from None
    return tensorrt


def tensorrt_available() -> bool:
    try:
        import_tensorrt()
    except BackendError:
        return False
    return torch.cuda.is_available()


def profile_ranges(buckets: Sequence[int]) -> list[tuple[int, int, int]]:
    """(min, opt, max) batch of each bucket's optimisation profile: bucket k covers (bucket k-1, bucket k]."""
    ordered = sorted(set(buckets))
    lows = [1, *(b + 1 for b in ordered[:-1])]
    return [(low, high, high) for low, high in zip(lows, ordered, strict=True)]


def build_engine(
    onnx_path: Path, plan_path: Path, buckets: Sequence[int], fp16: bool, timing_cache: Path
) -> dict[str, Any]:
    """Builds and writes a serialized engine; returns what the engine cache records about the build."""
    trt = import_tensorrt()
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(0)  # explicit batch is the only mode in TensorRT 10
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(onnx_path.read_bytes()):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise BackendError(f"TensorRT could not parse {onnx_path}: {errors}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, WORKSPACE_BYTES)
    if fp16:
        config.set_flag(trt.BuilderFlag.FP16)
    cache = config.create_timing_cache(timing_cache.read_bytes() if timing_cache.exists() else b"")
    config.set_timing_cache(cache, ignore_mismatch=False)
    for low, opt, high in profile_ranges(buckets):
        profile = builder.create_optimization_profile()
        for i in range(network.num_inputs):
            tensor = network.get_input(i)
            per_slot = tuple(tensor.shape)[1:]
            profile.set_shape(tensor.name, (low, *per_slot), (opt, *per_slot), (high, *per_slot))
        config.add_optimization_profile(profile)
    started = time.perf_counter()
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise BackendError(f"TensorRT failed to build an engine from {onnx_path} (see the log above)")
    plan_path.write_bytes(bytes(serialized))
    timing_cache.parent.mkdir(parents=True, exist_ok=True)
    timing_cache.write_bytes(bytes(config.get_timing_cache().serialize()))
    return {"build_s": round(time.perf_counter() - started, 2), "precision": "fp16" if fp16 else "fp32"}


class TensorRTBackend(StepBackend):
    name = "tensorrt"

    def __init__(self, generator: StreamingGenerator, plan: Path, buckets: Sequence[int], device: str = "cuda") -> None:
        super().__init__(generator, device)
        if self.device.type != "cuda":
            raise BackendError("the TensorRT backend runs on a CUDA device")
        trt = import_tensorrt()
        self.logger = trt.Logger(trt.Logger.WARNING)
        self.runtime = trt.Runtime(self.logger)
        self.engine = self.runtime.deserialize_cuda_engine(plan.read_bytes())
        if self.engine is None:
            raise BackendError(f"TensorRT could not load the engine {plan}; rebuild it with `emostream export`")
        self.buckets = tuple(sorted(buckets))
        # A step built without masks (runtime/step.py) has no reset or active input in its engine.
        present = {self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)}
        self.inputs = [(i, name) for i, name in enumerate(graph_input_names(generator)) if name in present]
        self.output_names = graph_output_names(generator)
        self.contexts: list[Any] = []  # kept alive: the captured graphs use them
        self.graphs = CudaGraphs(self.spec, self.buckets, self._launcher)

    def _launcher(self, static: list[Tensor]) -> Callable[[], list[Tensor]]:
        """Binds a bucket's static buffers to a context on that bucket's profile."""
        bucket = static[-1].shape[0]
        context = self.engine.create_execution_context()
        stream = torch.cuda.current_stream(self.device)
        context.set_optimization_profile_async(self.buckets.index(bucket), stream.cuda_stream)
        specs = list(self.spec.outputs) + list(self.spec.state)
        outputs = [torch.empty((bucket, *t.shape), dtype=t.dtype, device=self.device) for t in specs]
        for i, name in self.inputs:
            context.set_input_shape(name, tuple(static[i].shape))
            context.set_tensor_address(name, static[i].data_ptr())
        for name, tensor in zip(self.output_names, outputs, strict=True):
            context.set_tensor_address(name, tensor.data_ptr())
        self.contexts.append(context)

        def launch() -> list[Tensor]:
            if not context.execute_async_v3(torch.cuda.current_stream(self.device).cuda_stream):
                raise BackendError("TensorRT execute_async_v3 failed")
            return outputs

        return launch

    @torch.no_grad()
    def step(
        self, inputs: TensorDict, state: TensorDict, noise: Tensor, reset: Tensor, active: Tensor
    ) -> tuple[TensorDict, TensorDict]:
        return split_results(self.spec, self.graphs.run(flat_args(self.spec, inputs, state, noise, reset, active)))

    def describe(self) -> dict[str, str]:
        return super().describe() | {"tensorrt": str(import_tensorrt().__version__)}


def cached_engine(
    generator: StreamingGenerator,
    name: str,
    cache: EngineCache,
    buckets: Sequence[int] = DEFAULT_BUCKETS,
    precision: str = "auto",
    device: str = "cuda",
) -> CacheEntry:
    """The generator's TensorRT engine from the cache, built (and parity-checked for FP16) when missing."""
    from emostream.engines.parity import streamed_parity

    trt = import_tensorrt()
    if precision not in ("auto", "fp16", "fp32"):
        raise BackendError(f"precision must be auto, fp16 or fp32, got {precision!r}")
    graph = cached_onnx(generator, name, cache, device)
    report = check_graph(graph.path)
    if not report.ok:
        raise BackendError(report.summary())
    described = device_description(device)
    fields = {
        "model": model_hash(generator), "backend": "tensorrt", "tensorrt": str(trt.__version__),
        **described, "precision": precision, "profile": list(sorted(set(buckets))),
    }  # fmt: skip
    timing = cache.root / "tensorrt" / f"timing-{described['device']}-{trt.__version__}.cache".replace(" ", "_")

    def build(path: Path) -> dict[str, Any]:
        for fp16 in [True, False] if precision == "auto" else [precision == "fp16"]:
            meta = build_engine(graph.path, path, buckets, fp16, timing)
            parity = streamed_parity(TensorRTBackend(generator, path, buckets, device), n_steps=300)
            meta["parity_max_abs"] = parity.worst
            if precision != "auto" or not fp16 or parity.worst <= FP16_TOLERANCE:
                return meta
            log.info("TensorRT FP16 misses parity (%.2e > %.0e); building FP32", parity.worst, FP16_TOLERANCE)
        raise AssertionError("unreachable: the FP32 pass always returns")

    return cache.get_or_build("tensorrt", name, fields, "engine.plan", build)
