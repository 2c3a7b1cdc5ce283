"""Step time by backend and batch size: `emostream bench backends`.

    python -m emostream.benchmarks.backends [--model face|body] [--backends eager,compiled,onnx] [--batches 1,8,32,128]
                                  [--device cpu|cuda]

A shipped generator (the face at 58.3 ms lookahead, or the gesture generator; two sampler steps), built
and stepped as the server does (runtime/step.py FlatState; masks on a GPU only), its state carried: each
backend warms up, then runs `--steps` timed steps per batch size; ms per step is the median (p95 beside
it), frames per second is batch / median. One thread (torch and ONNX Runtime) unless `--threads` says
otherwise, so CPU figures are per core. TensorRT is included when it is installed and the device is CUDA.
Writes benchmarks/results/backends[-body][-DEVICE].json and .png.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from emostream.benchmarks.common import RESULTS, machine, write_result
from emostream.engines.backend import StepBackend
from emostream.engines.buckets import parse_buckets
from emostream.engines.cache import EngineCache
from emostream.engines.factory import make_backend
from emostream.runtime.assets import default_face_checkpoint, default_gesture_checkpoint
from emostream.runtime.models.face import FaceGenerator, load_checkpoint
from emostream.runtime.models.gesture import GestureGenerator, load_gesture_checkpoint
from emostream.runtime.step import FlatState, StreamingGenerator
from emostream.runtime.timelines import DEFAULT_STEPS

WARM_UP_STEPS = 20


def shipped_generator(model: str, device: str) -> tuple[StreamingGenerator, str]:
    """The generator the server runs for `model` on `device` (one state tensor; the reset and activity
    masks only on a GPU, where the server steps every row), and a line describing it."""
    masks = device.startswith("cuda")
    if model == "face":
        network, _ = load_checkpoint(default_face_checkpoint())
        face = FaceGenerator(network, lookahead=7, n_steps=DEFAULT_STEPS, masks=masks)
        return FlatState(face).eval(), f"face, lookahead {face.lookahead_ms:.1f} ms, {DEFAULT_STEPS} sampler steps"
    gesture, _, _ = load_gesture_checkpoint(default_gesture_checkpoint())
    body = GestureGenerator(gesture, n_steps=DEFAULT_STEPS, masks=masks)
    description = f"body (gestures), lookahead {body.lookahead_ms:.1f} ms, {DEFAULT_STEPS} sampler steps"
    return FlatState(body).eval(), description


def time_steps(backend: StepBackend, batch: int, n_steps: int) -> np.ndarray:
    """Seconds per step over n_steps consecutive steps with carried state (after a warm-up)."""
    g = torch.Generator().manual_seed(batch)
    device = backend.device
    spec = backend.spec
    inputs = {t.name: torch.randn((batch, *t.shape), generator=g).to(device) for t in spec.inputs}
    noise = torch.randn((batch, *spec.noise.shape), generator=g).to(device)
    reset = torch.zeros(batch, dtype=torch.bool, device=device)
    active = torch.ones(batch, dtype=torch.bool, device=device)
    state = backend.init_state(batch)
    times = []
    for i in range(WARM_UP_STEPS + n_steps):
        started = time.perf_counter()
        outputs, state = backend.step(inputs, state, noise, reset, active)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        if i >= WARM_UP_STEPS:
            times.append(time.perf_counter() - started)
    assert all(torch.isfinite(v).all() for v in outputs.values())
    return np.array(times)


def plot(result: dict, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_ms, ax_fps) = plt.subplots(1, 2, figsize=(11, 4.2))
    for name, rows in result["backends"].items():
        batches = [r["batch"] for r in rows]
        ax_ms.plot(batches, [r["ms_per_step"] for r in rows], "o-", label=name)
        ax_fps.plot(batches, [r["frames_per_s"] for r in rows], "o-", label=name)
    for ax, label in ((ax_ms, "ms per step (median)"), (ax_fps, "frames per second")):
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("batch (sessions in one step)")
        ax.set_ylabel(label)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend()
    fig.suptitle(f"{result['model'].split(',')[0]} step by backend on {result['device']} ({result['threads']} thread)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=("face", "body"), default="face")
    parser.add_argument("--backends", default="eager,compiled,onnx", help="comma-separated; tensorrt needs CUDA")
    parser.add_argument("--batches", default="1,8,32,128")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--steps", type=int, default=300, help="timed steps per batch size")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    batches = parse_buckets(args.batches)
    generator, description = shipped_generator(args.model, args.device)
    cache = EngineCache()
    device_name = torch.cuda.get_device_name(args.device) if args.device.startswith("cuda") else machine()["cpu"]
    result: dict = {"machine": machine(), "device": device_name, "threads": args.threads,
                    "model": description, "backends": {}}  # fmt: skip
    for name in args.backends.split(","):
        started = time.perf_counter()
        backend = make_backend(name, generator, device=args.device, buckets=batches, cache=cache, threads=args.threads)
        rows = []
        for batch in batches:
            t = time_steps(backend, batch, args.steps)
            median = float(np.median(t))
            rows.append({"batch": batch, "ms_per_step": median * 1e3, "p95_ms": float(np.percentile(t, 95)) * 1e3,
                         "frames_per_s": batch / median})  # fmt: skip
            print(f"{name:>9} batch {batch:>4}: {median * 1e3:7.3f} ms/step (p95 {rows[-1]['p95_ms']:.3f}), "
                  f"{batch / median:9.0f} frames/s", flush=True)  # fmt: skip
        result["backends"][name] = rows
        result.setdefault("setup_s", {})[name] = round(time.perf_counter() - started - sum(
            r["ms_per_step"] * (args.steps + WARM_UP_STEPS) / 1e3 for r in rows), 1)  # fmt: skip
        result.setdefault("describe", {})[name] = backend.describe()
    eager = {r["batch"]: r["ms_per_step"] for r in result["backends"].get("eager", [])}
    for rows in result["backends"].values():
        for r in rows:
            if r["batch"] in eager:
                r["speedup_vs_eager"] = eager[r["batch"]] / r["ms_per_step"]
    suffix = "" if args.model == "face" else "-body"
    suffix += "" if args.device == "cpu" else f"-{args.device.replace(':', '')}"
    path = write_result(f"backends{suffix}", result)
    plot(result, str(RESULTS / f"backends{suffix}.png"))
    print(f"wrote {path} and its plot")
    print("| backend | " + " | ".join(f"batch {b}" for b in batches) + " |")
    print("|---|" + "---|" * len(batches))
    for name, rows in result["backends"].items():
        cells = [f"{r['ms_per_step']:.3f} ms ({r.get('speedup_vs_eager', 1):.1f}x)" for r in rows]
        print(f"| {name} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
