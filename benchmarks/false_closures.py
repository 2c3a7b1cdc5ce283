"""Where the false closures are: the phones beside each open vowel the model closes, on held-out TTS voices.

    python -m emostream.benchmarks.false_closures [--checkpoint face.pt] [--limit 60]

The 60 held-out utterances of `bench face-quality` (exact phone timings), neutral, 58 ms lookahead,
2 sampler steps, seed 1, judged as there (training/metrics.py: an open vowel whose middle half has a
closed frame). Each open vowel is put in one class by its neighbours, the first that applies: beside a
bilabial (p, b, m), beside t, d, k, g (their silent closures sound like a p's), beside f, v, w, or other.
Per class: how many open vowels, the share the model closes and the share the teacher closes, and the
median length of the vowels closed. Writes benchmarks/results/false_closures.json.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from emostream.benchmarks.common import machine, write_result
from emostream.benchmarks.face_quality import generate, load_set
from emostream.runtime.controls import emotion_vector
from emostream.runtime.models.face import FaceGenerator, lip_gap, load_checkpoint
from emostream.training.align import Phone
from emostream.training.metrics import CLOSED_BELOW, central_frames
from emostream.training.teacher_face import teach
from emostream.training.visemes import BILABIALS, OPEN_VOWELS

ROOT = Path(__file__).resolve().parent.parent
NEIGHBOURS = (("bilabial", BILABIALS), ("t d k g", {"T", "D", "K", "G"}), ("f v w", {"F", "V", "W"}))


def neighbour_class(phones: list[Phone], i: int) -> str:
    beside = {p.label for p in phones[max(i - 1, 0) : i + 2] if p is not phones[i]}
    return next((name for name, labels in NEIGHBOURS if beside & labels), "other")


def closed_vowels(face: np.ndarray, phones: list[Phone]) -> list[tuple[str, bool, float]]:
    """(neighbour class, closed in its middle half, length in s) of each open vowel."""
    closed = lip_gap(face) < CLOSED_BELOW
    return [(neighbour_class(phones, i), bool(closed[central_frames(p, len(closed))].any()), p.end_s - p.start_s)
            for i, p in enumerate(phones) if p.label in OPEN_VOWELS]  # fmt: skip


def tally(model: list[tuple[str, bool, float]], teacher: list[tuple[str, bool, float]]) -> dict[str, dict]:
    rows = {}
    for name in [n for n, _ in NEIGHBOURS] + ["other"]:
        chosen = [i for i, (c, _, _) in enumerate(model) if c == name]
        closed = [model[i][2] for i in chosen if model[i][1]]
        rows[name] = {
            "open_vowels": len(chosen),
            "model_closed": len(closed) / max(len(chosen), 1),
            "teacher_closed": sum(teacher[i][1] for i in chosen) / max(len(chosen), 1),
            "median_length_closed_s": float(np.median(closed)) if closed else None,
            "median_length_s": float(np.median([model[i][2] for i in chosen])) if chosen else None,
        }
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", type=Path, default=ROOT / "runtime" / "assets" / "face.pt")
    parser.add_argument("--corpus", type=Path, default=ROOT / "training" / "data" / "corpus")
    parser.add_argument("--limit", type=int, default=60, help="held-out utterances")
    args = parser.parse_args(argv)
    torch.set_num_threads(2)
    network, _ = load_checkpoint(args.checkpoint)
    held = load_set(args.corpus, True, args.limit)
    faces = generate(FaceGenerator(network, lookahead=7, n_steps=2).eval(), held, emotion_vector("neutral", 1.0), 1)
    model, teacher = [], []
    for face, u in zip(faces, held, strict=True):
        model += closed_vowels(face, u.phones)
        teacher += closed_vowels(teach(u.phones, u.audio, u.rate, "neutral", 1.0, seed=1).face, u.phones)
    rows = tally(model, teacher)
    for name, row in rows.items():
        print(f"{name:9s} {row}")
    path = write_result("false_closures", {"benchmark": "false_closures", "machine": machine(),
                                           "utterances": len(held), "checkpoint": args.checkpoint.name,
                                           "model_false": float(np.mean([c for _, c, _ in model])),
                                           "teacher_false": float(np.mean([c for _, c, _ in teacher])),
                                           "by_neighbour": rows})  # fmt: skip
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
