"""A contact sheet of the lips' shapes, to look at them: the teacher, a previous face checkpoint and the
shipped one, at the middle of one held-out TTS utterance's longest run of each of six visemes (ou, oh, FF,
CH, E, aa), neutral, 58 ms lookahead, two sampler steps, seed 1.

    git show 9ae1757:runtime/assets/face.pt > /tmp/face-before.pt
    python -m emostream.benchmarks.lip_shapes --before /tmp/face-before.pt

Writes docs/images/lip_shapes.png. The held-out utterances are those of `bench face-quality` (built if
the corpus has none).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from emostream.benchmarks.face_quality import generate, load_set, viseme_truth
from emostream.clients.avatar.contact_sheets import Stills, grid
from emostream.clients.viewer.camera import OrbitCamera
from emostream.runtime.controls import emotion_vector, lookahead_from_ms
from emostream.runtime.models.face import FaceGenerator, load_checkpoint
from emostream.training.corpus import build
from emostream.training.teacher_face import teach
from emostream.training.visemes import VISEMES

ROOT = Path(__file__).resolve().parent.parent
SHOWN = ("ou", "oh", "FF", "CH", "E", "aa")
MOUTH_CAMERA = OrbitCamera(target=np.array([0.0, 1.625, 0.03]), distance=0.3, yaw=0.25, pitch=0.05, fov_y_deg=30)


def moments(truths: list[np.ndarray]) -> list[tuple[str, int, int]]:
    """(viseme, utterance, frame) for each viseme: the middle of its longest run in the first utterance
    where that run is at least five frames long."""
    chosen = []
    for viseme in SHOWN:
        for i, truth in enumerate(truths):
            frames = np.flatnonzero(truth == VISEMES.index(viseme))
            runs = np.split(frames, np.flatnonzero(np.diff(frames) > 1) + 1) if frames.size else []
            longest = max(runs, key=len, default=np.array([]))
            if longest.size >= 5:
                chosen.append((viseme, i, int(longest[longest.size // 2])))
                break
    return chosen


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--before", type=Path, required=True, help="the previous face checkpoint")
    parser.add_argument("--checkpoint", type=Path, default=ROOT / "runtime" / "assets" / "face.pt")
    parser.add_argument("--corpus", type=Path, default=ROOT / "training" / "data" / "corpus")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "images" / "lip_shapes.png")
    args = parser.parse_args(argv)
    torch.set_num_threads(2)
    if not (args.corpus / "manifest.json").exists():
        build(args.corpus, 60, seed=7, only_held_out=True)  # as `bench face-quality`
    held = load_set(args.corpus, held_out=True, limit=60)
    chosen = moments([viseme_truth(u) for u in held])
    rows = {"teacher": [teach(u.phones, u.audio, u.rate, "neutral", 1.0, seed=1).face for u in held]}
    for name, path in (("before", args.before), ("shipped", args.checkpoint)):
        generator = FaceGenerator(load_checkpoint(path)[0], lookahead=lookahead_from_ms(60.0), n_steps=2).eval()
        rows[name] = generate(generator, held, emotion_vector("neutral", 1.0), seed=1)
    stills = Stills(220)
    tiles = [
        stills.render(faces[i][min(k, len(faces[i]) - 1)], None, MOUTH_CAMERA, f"{name}: {viseme}")
        for name, faces in rows.items()
        for viseme, i, k in chosen
    ]
    Image.fromarray(grid(tiles, len(chosen))).save(args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
