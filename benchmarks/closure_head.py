"""Why bilabials are missed on real voices: the face model's closure head (a deterministic probability that
seals the lips after sampling, runtime/models/face.py) against the sampled mouth, per emotion.

    python -m emostream.benchmarks.closure_head [--emotions neutral,surprised] [--limit 120] [--sharpness 1,2]

For each bilabial of the real-voice set (training/real_voices.py, 16 kHz, 2 steps, 58 ms lookahead): was it
hit (the judge's closure), did the closure head fire (probability above 0.5 in its frames), and how far
apart the lips stayed at best where it was missed; and, against thresholds from 0.1 to 0.5, the share of
bilabials and of open vowels (their middle half) where the head's probability rises above it: whether a
lower threshold would buy recall. `--sharpness` runs it again for other scales of the audio-only head's
logit (runtime/models/face.py, CLOSURE_SHARPNESS). Writes benchmarks/results/closure_head.json.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from emostream.benchmarks.common import machine, write_result
from emostream.benchmarks.face_quality import generate
from emostream.benchmarks.real_voices import Clip, condition, model_inputs
from emostream.runtime.controls import emotion_vector, lookahead_from_ms
from emostream.runtime.models import face as face_model
from emostream.runtime.models.face import FaceGenerator, FaceNetwork, load_checkpoint
from emostream.training.metrics import BILABIALS, CLOSED_BELOW, OPEN_VOWELS, central_frames, frames_of, lip_gap
from emostream.training.real_voices import load_real_voices

ROOT = Path(__file__).resolve().parent.parent


def closure_probabilities(generator: FaceGenerator, heard: list, emotion: str) -> tuple[list, list]:
    """Faces and the closure head's per-frame probability, recorded as the step computes it."""
    record: list[np.ndarray] = []
    original = FaceNetwork.closure_probability

    def recorded(self: FaceNetwork, cond: torch.Tensor, window: torch.Tensor) -> torch.Tensor:
        p = original(self, cond, window)
        record.append(p.detach().numpy().copy())
        return p

    faces, probabilities = [], []
    FaceNetwork.closure_probability = recorded  # type: ignore[method-assign]
    try:
        for start in range(0, len(heard), 64):
            record.clear()
            batch = generate(generator, heard[start : start + 64], emotion_vector(emotion, 1.0), seed=1)
            per_frame = np.stack(record, axis=1)[:, generator.delay :]
            faces += batch
            probabilities += [per_frame[b, : len(face)] for b, face in enumerate(batch)]
    finally:
        FaceNetwork.closure_probability = original  # type: ignore[method-assign]
    return faces, probabilities


THRESHOLDS = (0.1, 0.2, 0.3, 0.4, 0.5)


def tally(faces: list, probabilities: list, clips: list[Clip]) -> dict:
    hit, peak, gap, vowel_peak, vowel_closed, vowel_beside_bilabial = [], [], [], [], [], []
    for face, probability, clip in zip(faces, probabilities, clips, strict=True):
        g = lip_gap(face)
        for k, phone in enumerate(clip.phones):
            if phone.label in BILABIALS:
                frames = frames_of(phone, len(g), 1)
                hit.append(g[frames].min() < CLOSED_BELOW)
                peak.append(probability[frames].max())
                gap.append(g[frames].min())
            elif phone.label in OPEN_VOWELS:
                central = central_frames(phone, len(g))
                vowel_peak.append(probability[central].max())
                vowel_closed.append(g[central].min() < CLOSED_BELOW)  # the judge's false closure
                neighbours = clip.phones[max(k - 1, 0) : k + 2]
                vowel_beside_bilabial.append(any(n.label in BILABIALS for n in neighbours))
    h, p, gaps, v = np.array(hit), np.array(peak), np.array(gap), np.array(vowel_peak)
    closed, beside = np.array(vowel_closed, bool), np.array(vowel_beside_bilabial, bool)
    f = p > 0.5
    return {"bilabials": int(h.size), "hit": float(h.mean()), "head_fired": float(f.mean()),
            "hit_without_the_head": float((h & ~f).mean()), "missed_though_the_head_fired": float((~h & f).mean()),
            "median_gap_at_misses": float(np.median(gaps[~h])) if (~h).any() else 0.0,
            # Where the false closures are: open vowels closed, whether the head fired there, whether
            # a bilabial is the phone before or after.
            "false_closures": float(closed.mean()),
            "false_closures_where_the_head_fired": float((closed & (v > 0.5)).sum() / max(closed.sum(), 1)),
            "false_closures_beside_a_bilabial": float((closed & beside).sum() / max(closed.sum(), 1)),
            "open_vowels_beside_a_bilabial": float(beside.mean()),
            "head_above": {str(t): {"bilabials": float((p > t).mean()), "open_vowels": float((v > t).mean())}
                           for t in THRESHOLDS}}  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", type=Path, default=ROOT / "runtime" / "assets" / "face.pt")
    parser.add_argument("--emotions", default="neutral,surprised,disgusted,fear")
    parser.add_argument("--limit", type=int, default=None, help="at most this many recordings")
    parser.add_argument("--sharpness", default=str(face_model.CLOSURE_SHARPNESS),
                        help="scales of the audio-only closure head's logit, comma-separated")  # fmt: skip
    args = parser.parse_args(argv)
    torch.set_num_threads(2)
    network, _ = load_checkpoint(args.checkpoint)
    real, _ = load_real_voices()
    clips = [Clip(u.language, *condition(u.audio, u.rate, "16k"), u.phones) for u in real[: args.limit]]
    heard = model_inputs(clips)
    generator = FaceGenerator(network, lookahead=lookahead_from_ms(60.0), n_steps=2).eval()
    shipped = face_model.CLOSURE_SHARPNESS
    by_sharpness = {}
    for sharpness in (float(x) for x in args.sharpness.split(",")):
        face_model.CLOSURE_SHARPNESS = sharpness
        rows = by_sharpness[str(sharpness)] = {}
        for emotion in args.emotions.split(","):
            rows[emotion] = tally(*closure_probabilities(generator, heard, emotion), clips)
            print(f"sharpness {sharpness:g}", emotion, json.dumps(rows[emotion]), flush=True)
    face_model.CLOSURE_SHARPNESS = shipped
    write_result("closure_head", {"benchmark": "closure_head", "machine": machine(), "recordings": len(clips),
                                  "audio": "16k", "steps": 2, "shipped_sharpness": shipped,
                                  "audio_only_head": network.audio_closure is not None,
                                  "by_sharpness": by_sharpness})  # fmt: skip


if __name__ == "__main__":
    main()
