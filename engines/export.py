"""`emostream export`: build (or find) the engines a server will use, check them, and say what was done.

    emostream export --backend onnx [--lookahead-ms 60] [--steps 1,2]
    emostream export --backend tensorrt --device cuda --batch-buckets 1,8,32,128 [--precision auto]
    emostream export --list

It builds what `emostream serve` runs on that device: each face lookahead and the body, at each sampler
step count, and the voice-emotion estimator, wrapped as the server wraps them (`FlatState`; without
masks on the CPU, where the server steps compact batches, with them on a GPU). For each: the ONNX graph
(exported once, kept in the engine cache), the static TensorRT operator check, for TensorRT the engine
with one profile per bucket, and a streamed parity run against eager (300 steps, mixed masks) whose
error is printed. Without TensorRT, a TensorRT export still runs the operator check, then stops with the
reason.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from emostream.engines.buckets import DEFAULT_BUCKETS, parse_buckets

if TYPE_CHECKING:
    from emostream.engines.cache import EngineCache
    from emostream.runtime.step import StreamingGenerator

# The parser is built by every `emostream` command: torch, ONNX and the models are imported when an export
# runs, not here.

PARITY_STEPS = 300


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--backend", choices=("onnx", "tensorrt"), default="onnx")
    parser.add_argument("--device", default=None, help="cpu or cuda[:N] (default: cpu for onnx, cuda for tensorrt)")
    parser.add_argument("--batch-buckets", default=",".join(map(str, DEFAULT_BUCKETS)),
                        help="batch sizes with their own TensorRT profile and CUDA graph")  # fmt: skip
    parser.add_argument("--lookahead-ms", default="60", help="comma-separated lookaheads to build (0 to 100 ms)")
    parser.add_argument("--steps", default="2", help="comma-separated sampler step counts to build")
    parser.add_argument("--body", action=argparse.BooleanOptionalAction, default=True,
                        help="build the body (gesture) step too")  # fmt: skip
    parser.add_argument("--voice-emotion", action=argparse.BooleanOptionalAction, default=True,
                        help="build the voice-emotion estimator's step too (emotion \"auto\")")  # fmt: skip
    parser.add_argument("--precision", choices=("auto", "fp16", "fp32"), default="auto",
                        help="TensorRT precision; auto keeps FP16 only where it keeps parity")  # fmt: skip
    parser.add_argument("--checkpoint", type=Path, default=None, help="face checkpoint (default: the shipped one)")
    parser.add_argument("--gesture-checkpoint", type=Path, default=None,
                        help="gesture checkpoint (default: the shipped one)")  # fmt: skip
    parser.add_argument("--engine-cache", type=Path, default=None,
                        help="engine cache (default: $EMOSTREAM_CACHE or ~/.cache/emostream/engines)")  # fmt: skip
    parser.add_argument("--list", action="store_true", help="list the cache's entries and exit")


def served_generators(args: argparse.Namespace, masks: bool) -> list[StreamingGenerator]:
    """The generators `emostream serve` steps for these options, wrapped as it wraps them."""
    from emostream.runtime.assets import default_face_checkpoint, default_gesture_checkpoint
    from emostream.runtime.controls import lookahead_from_ms
    from emostream.runtime.models.face import FaceGenerator, load_checkpoint
    from emostream.runtime.models.gesture import GestureGenerator, load_gesture_checkpoint
    from emostream.runtime.step import FlatState

    network, _ = load_checkpoint(args.checkpoint or default_face_checkpoint())
    lookaheads = sorted({lookahead_from_ms(float(v)) for v in args.lookahead_ms.split(",")})
    step_counts = sorted({int(v) for v in args.steps.split(",")})
    made: list[StreamingGenerator] = [FaceGenerator(network, lookahead, steps, masks=masks)
                                      for lookahead in lookaheads for steps in step_counts]  # fmt: skip
    if args.body:
        gesture, _, _ = load_gesture_checkpoint(args.gesture_checkpoint or default_gesture_checkpoint())
        made += [GestureGenerator(gesture, steps, masks=masks) for steps in step_counts]
    if args.voice_emotion:
        from emostream.runtime.models.voice_emotion import load_voice_emotion

        voice, _ = load_voice_emotion()
        voice.masks = masks
        made.append(voice)
    return [FlatState(generator).eval() for generator in made]


def run(args: argparse.Namespace) -> int:
    import time

    import torch

    from emostream.engines.cache import EngineCache
    from emostream.engines.factory import cache_name, make_backend
    from emostream.engines.onnx_backend import cached_onnx
    from emostream.engines.parity import streamed_parity
    from emostream.engines.tensorrt_ops import check_graph
    from emostream.runtime.errors import BackendError

    cache = EngineCache(args.engine_cache)
    if args.list:
        return list_entries(cache)
    device = args.device or ("cuda" if args.backend == "tensorrt" else "cpu")
    buckets = parse_buckets(args.batch_buckets)
    # As the server steps them: compact batches without masks on the CPU, masked batches on a GPU.
    generators = served_generators(args, masks=device.startswith("cuda"))
    print(f"emostream export: {args.backend} on {device}, cache {cache.root}")
    for generator in generators:
        # The graph itself is the same for every device; without the asked-for device, check the CPU one.
        graph_device = device if device == "cpu" or torch.cuda.is_available() else "cpu"
        name = cache_name(generator, graph_device)
        started = time.perf_counter()
        graph = cached_onnx(generator, name, cache, graph_device)
        print(f"  {name}: ONNX {'exported' if graph.built else 'cached'} ({graph.path})")
        print(f"    {check_graph(graph.path).summary()}")
        try:
            backend = make_backend(
                args.backend, generator, device=device, buckets=buckets, cache=cache, precision=args.precision
            )
        except BackendError as exc:
            print(f"    {args.backend} engine not built: {exc}")
            return 2
        report = streamed_parity(backend, n_steps=PARITY_STEPS, batch=min(5, buckets[-1]))
        print(f"    ready in {time.perf_counter() - started:.1f} s; {report.summary()}")
    return 0


def list_entries(cache: EngineCache) -> int:
    entries = cache.entries()
    print(f"{len(entries)} entries in {cache.root}")
    for e in entries:
        f = e["fields"]
        model = f["model"][:12]
        print(f"  {e['key']}  {f['backend']:<9} {f['device']:<24} {f['precision']:<5} model {model}  {f['profile']}")
    return 0
