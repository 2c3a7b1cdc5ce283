"""One entry point for every backend: `make_backend("onnx", generator)`."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from emostream.engines.backend import BACKENDS, EagerBackend, StepBackend
from emostream.engines.buckets import DEFAULT_BUCKETS
from emostream.engines.cache import EngineCache
from emostream.runtime.errors import BackendError
from emostream.runtime.step import StreamingGenerator

log = logging.getLogger("emostream.engines")

AUTO = "auto"


def resolve_backend(kind: str, device: str) -> str:
    """The backend `kind` names on `device`: "auto" is onnx on the CPU (five times eager's speed at batch 1,
    docs/engines.md) and eager on CUDA, the one the server has run there; any other kind is itself."""
    if kind != AUTO:
        return kind
    return "onnx" if torch.device(device).type == "cpu" else "eager"


def cache_name(generator: StreamingGenerator, device: str) -> str:
    """The engine cache's name for a generator on a device type: one live entry per name."""
    return f"{generator.engine_name}-{torch.device(device).type}"


def make_backend(
    kind: str,
    generator: StreamingGenerator,
    *,
    device: str = "cpu",
    buckets: Sequence[int] = DEFAULT_BUCKETS,
    cache: EngineCache | None = None,
    precision: str = "auto",
    threads: int = 1,
) -> StepBackend:
    """A ready backend; exported graphs and engines come from `cache` (built there when missing)."""
    if kind not in BACKENDS:
        raise BackendError(f"unknown backend {kind!r}; use one of {', '.join(BACKENDS)}")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise BackendError(f"device {device!r} asked for, but torch sees no CUDA device")
    cache = cache or EngineCache()
    name = cache_name(generator, device)
    if kind == "eager":
        return EagerBackend(generator, device)
    if kind == "compiled":
        from emostream.engines.compiled import CompiledBackend

        return CompiledBackend(generator, device, buckets)
    if kind == "onnx":
        from emostream.engines.onnx_backend import OnnxBackend, cached_onnx

        return OnnxBackend(generator, cached_onnx(generator, name, cache, device).path, device, threads)
    from emostream.engines.tensorrt_backend import TensorRTBackend, cached_engine

    if not device.startswith("cuda"):
        raise BackendError("the TensorRT backend needs --device cuda")
    entry = cached_engine(generator, name, cache, buckets, precision, device)
    return TensorRTBackend(generator, entry.path, buckets, device)


@dataclass(frozen=True)
class BackendFactory:
    """`make_backend` with its options bound, as the inference loop's runner factory. A plain value, so
    it pickles: an inference loop in a child process builds its own backends from it."""

    kind: str
    device: str = "cpu"
    buckets: tuple[int, ...] = DEFAULT_BUCKETS
    cache_root: Path | None = None  # default: engines.cache.default_cache_root()
    eager_if_unbuilt: bool = False  # "auto": a graph that fails to export runs eager instead of failing

    def __call__(self, generator: StreamingGenerator) -> StepBackend:
        try:
            cache = EngineCache(self.cache_root)
            return make_backend(self.kind, generator, device=self.device, buckets=self.buckets, cache=cache)
        except Exception as error:
            if not self.eager_if_unbuilt:
                raise
            log.warning("engines: %s could not be built for %s (%s: %s); it runs eager",
                        generator.engine_name, self.kind, type(error).__name__, error)  # fmt: skip
            return EagerBackend(generator, self.device)
