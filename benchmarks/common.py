"""Helpers every benchmark shares: machine description, percentiles, result files."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from emostream.training.machine import machine

RESULTS = Path(__file__).parent / "results"

__all__ = ["RESULTS", "emotion_names", "machine", "percentiles_ms", "step_cost", "write_report", "write_result"]


def emotion_names(parser: argparse.ArgumentParser, text: str) -> tuple[str, ...]:
    """A comma-separated `--emotions` argument as names, or the parser's error naming the known ones."""
    from emostream.runtime.protocol import EMOTIONS

    emotions = tuple(e for e in text.split(",") if e)
    if any(e not in EMOTIONS for e in emotions):
        parser.error(f"emotions are among {', '.join(EMOTIONS)}")
    return emotions


def percentiles_ms(seconds: list[float] | np.ndarray) -> dict[str, float]:
    a = np.asarray(seconds, dtype=np.float64) * 1e3
    return {f"p{q}": float(np.percentile(a, q)) for q in (50, 95, 99)} | {"max": float(a.max())}


def write_result(name: str, result: dict[str, Any]) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(result, indent=2))
    return path


def write_report(name: str, result: dict[str, Any], markdown: str, plot: Any) -> None:
    """A quality benchmark's outputs: NAME.json (the result), NAME.md (its tables, also printed) and
    NAME.png (drawn by `plot(result, path)`)."""
    print(markdown)
    write_result(name, result)
    (RESULTS / f"{name}.md").write_text(markdown + "\n")
    plot(result, RESULTS / f"{name}.png")
    print(f"\nwrote {RESULTS / name}.json, .md and .png")


def step_cost(generator: Any, batches: tuple[int, ...] = (1, 64)) -> dict[str, float]:
    """A generator's step on one thread: ms per frame at batch 1 and frames per second at larger batches,
    with random inputs shaped by its step spec and state carried from step to step. Each figure is the
    fastest of three timed runs: a busy machine only ever slows a run down (one run of the gesture
    benchmark read 2.0 ms per frame for a step that times at 0.85 ms)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    result = {}
    spec = generator.spec
    for batch in batches:
        state = generator.init_state(batch)
        inputs = {t.name: torch.randn(batch, *t.shape) for t in spec.inputs}
        noise = torch.randn(batch, *spec.noise.shape)
        yes, no = torch.ones(batch, dtype=torch.bool), torch.zeros(batch, dtype=torch.bool)
        with torch.no_grad():
            for _ in range(50):  # warm up
                _, state = generator.step(inputs, state, noise, no, yes)
            n = 400 if batch == 1 else 60
            runs = []
            for _ in range(3):
                start = time.perf_counter()
                for _ in range(n):
                    _, state = generator.step(inputs, state, noise, no, yes)
                runs.append(time.perf_counter() - start)
            elapsed = min(runs)
        if batch == 1:
            result["ms_per_frame_batch1_1core"] = elapsed / n * 1e3
        else:
            result[f"fps_batch{batch}_1core"] = n * batch * spec.frames_per_step / elapsed
    torch.set_num_threads(threads)
    return result
