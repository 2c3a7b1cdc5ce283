"""Headless render speed of the built-in avatar: `emostream bench render`.

Animates the bundled speech sample (face and body), then draws evenly spaced frames of it at the
video's size through the off-screen renderer (`clients/viewer/video.py FrameRenderer`), once with the
blend shapes summed on the CPU and once in the vertex shader, alternating rounds in one process (this
machine's speed drifts within minutes). Reports ms a frame for each, the ratio, and which OpenGL
renderer drew them; the result goes to benchmarks/results/render.json.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from emostream.benchmarks.common import machine, write_result

if TYPE_CHECKING:
    from emostream.clients.viewer.video import Clip

__all__ = ["main", "time_blending"]


def time_blending(clip: Clip, size: int, view: str, n_frames: int, rounds: int) -> dict:
    """ms a frame, per round, with the blend shapes on the CPU and in the shader, over `clip`."""
    from emostream.clients.viewer.renderer import AvatarRenderer
    from emostream.clients.viewer.video import FrameRenderer

    times = np.linspace(0.0, clip.seconds - 1.0 / clip.fps, n_frames)
    frames = [(clip.face_at(t), clip.body_at(t)) for t in times]
    renderer = FrameRenderer(size, size, view=view)
    avatars = {"cpu": AvatarRenderer(renderer.ctx, blend_on_cpu=True),
               "shader": AvatarRenderer(renderer.ctx, blend_on_cpu=False)}  # fmt: skip
    ms: dict[str, list[float]] = {name: [] for name in avatars}
    try:
        for _ in range(rounds):
            for name, avatar in avatars.items():
                renderer.avatar = avatar
                renderer.render(*frames[0])  # a warm-up draw after the switch, not timed
                started = time.perf_counter()
                for face, body in frames:
                    renderer.render(face, body)
                ms[name].append((time.perf_counter() - started) * 1e3 / len(frames))
        gl_renderer = str(renderer.ctx.info.get("GL_RENDERER", ""))
    finally:
        renderer.release()
    mean = {name: float(np.mean(v)) for name, v in ms.items()}
    return {"machine": machine(), "gl_renderer": gl_renderer, "size": size, "view": view, "frames": n_frames,
            "rounds": rounds, "ms_per_frame": ms, "mean_ms_per_frame": mean,
            "shader_over_cpu": mean["shader"] / mean["cpu"]}  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=640, help="frame width and height (the demo's video: 640)")
    parser.add_argument("--view", choices=("face", "body"), default="face")
    parser.add_argument("--frames", type=int, default=40, help="frames drawn per round and blending")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--audio", type=Path, default=None, help="speech to animate (default: the bundled sample)")
    args = parser.parse_args(argv)
    from emostream.clients.viewer.video import Clip
    from emostream.runtime.animate import animate
    from emostream.runtime.assets import bundled_speech

    animation = animate(args.audio or bundled_speech())
    clip = Clip(face=animation.face, fps=animation.fps, body=animation.body)
    result = time_blending(clip, args.size, args.view, args.frames, args.rounds)
    path = write_result("render" if args.view == "face" else "render-body", result)
    for name, rounds in result["ms_per_frame"].items():
        print(f"blend shapes on the {name:>6}: " + ", ".join(f"{v:.0f}" for v in rounds) + " ms a frame")
    print(f"{result['gl_renderer']}, {args.size} px: the shader's blending takes {result['shader_over_cpu']:.2f}x "
          f"the CPU's; wrote {path}")  # fmt: skip
