"""What the judge of motion alone reads, and where the model's motion loses it: the benchmark's judge
(training/motion_judge.py, trained on teacher motion of training voices, as `bench gesture-quality`
trains it) applied to held-out teacher and model motion

- with one body part's rotations taken from the other (the teacher's takes with the model's fingers,
  arms, trunk or one arm joint, and the model's with the teacher's), through forward kinematics: a part
  whose swap into the teacher's motion costs the reading most is where the model moves unlike it;
- the teacher's takes with one of its emotion cues (`EMOTION_MOTION` fields) set to neutral's for every
  emotion: a cue whose loss costs an emotion's reading is one the judge reads it by;
- the teacher's takes as a model's output could change them without changing their emotion: low-passed
  (one pole) or with AR(1) noise on every pose feature: a judge that still reads those reads motion, not
  the teacher's exact signal;
- and how far the wrists range along each axis (the spread of their position relative to the pelvis
  over a take), teacher against model.

    python -m emostream.benchmarks.gesture_judge [--checkpoint runtime/assets/gesture.pt]

Writes benchmarks/results/gesture_judge.{json,md} (or --name).
"""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from emostream.benchmarks.common import RESULTS, machine, write_result
from emostream.runtime.body_pose import GESTURE_JOINTS
from emostream.runtime.models.gesture import load_gesture_checkpoint
from emostream.runtime.protocol import EMOTIONS
from emostream.runtime.rigs import SMPLX_JOINTS
from emostream.training import teacher_gesture
from emostream.training.gesture_evaluation import (
    evaluation_style,
    generate,
    held_out_takes,
    load_takes,
    motion_metrics,
    positions,
    teacher,
    training_motion,
)
from emostream.training.motion_judge import MotionJudge, judge, train_emotion_judges

ROOT = Path(__file__).resolve().parent.parent
ARMS = ("collar", "shoulder", "elbow", "wrist")
PART_JOINTS = {
    "fingers": [j for j in GESTURE_JOINTS if j >= 25],
    "arms": [SMPLX_JOINTS.index(f"{side}_{part}") for side in ("left", "right") for part in ARMS],
    "trunk": [j for j in GESTURE_JOINTS if j < 25 and not any(SMPLX_JOINTS[j].endswith(p) for p in ARMS)],
} | {f"{part}s": [SMPLX_JOINTS.index(f"{side}_{part}") for side in ("left", "right")] for part in ARMS}
# Each emotion cue of the teacher, as the fields that set it back to neutral's.
NEUTRAL = teacher_gesture.EMOTION_MOTION["neutral"]
CUES = {
    "shapes": {"shape_bias": NEUTRAL.shape_bias}, "palms": {"palm_up": 0.0}, "asymmetry": {"asymmetry": 0.0},
    "where (spread and height)": {"spread": 0.0, "height": 0.0}, "size": {"size": 1.0}, "speed": {"speed": 1.0},
    "rate": {"rate": 1.0}, "tension": {"tension": NEUTRAL.tension},
}  # fmt: skip
WRISTS = [SMPLX_JOINTS.index(f"{side}_wrist") for side in ("left", "right")]


def low_pass(poses: np.ndarray, weight: float) -> np.ndarray:
    out = poses.copy()
    for t in range(1, len(out)):
        out[t] = out[t - 1] + weight * (poses[t] - out[t - 1])
    return out


def with_noise(poses: np.ndarray, sigma: float, seed: int, rho: float = 0.8) -> np.ndarray:
    """AR(1) noise (frame-to-frame correlation `rho`, as the sampler's) on the rotations, not the root."""
    rng = np.random.default_rng(seed)
    noise, out = np.zeros(poses.shape[1] - 3), poses.copy()
    for t in range(len(out)):
        noise = rho * noise + np.sqrt(1 - rho**2) * rng.normal(size=noise.shape)
        out[t, :-3] += sigma * noise
    return out


PERTURBATIONS = {
    "low-passed, weight 0.75": lambda poses, seed: low_pass(poses, 0.75),
    "low-passed, weight 0.5": lambda poses, seed: low_pass(poses, 0.5),
    "AR noise, sigma 0.01": lambda poses, seed: with_noise(poses, 0.01, seed),
    "AR noise, sigma 0.02": lambda poses, seed: with_noise(poses, 0.02, seed),
}


def part_columns(part: str) -> list[int]:
    """Pose-feature columns of a part's joints (6D rotations; the trunk also takes the translation)."""
    columns = [6 * GESTURE_JOINTS.index(j) + k for j in PART_JOINTS[part] for k in range(6)]
    return columns + ([6 * len(GESTURE_JOINTS) + k for k in range(3)] if part == "trunk" else [])


def swapped(into: np.ndarray, source: np.ndarray, part: str) -> np.ndarray:
    n = min(len(into), len(source))
    out = into[:n].copy()
    out[:, part_columns(part)] = source[:n, part_columns(part)]
    return out


def wrist_range_cm(pos: np.ndarray) -> np.ndarray:
    """(3,) the spread (std over the take) of the wrists' position relative to the pelvis along x
    (sideways), y (up) and z (forward), averaged over both wrists, in cm."""
    return (pos[:, WRISTS] - pos[:, :1]).std(axis=0).mean(axis=0) * 100


def shares(reads: dict[str, list[bool]]) -> dict[str, float]:
    return {"all": float(np.mean([r for v in reads.values() for r in v]))} | {
        e: float(np.mean(v)) for e, v in reads.items()
    }


def cue_reads(reader: MotionJudge, test: list, cue: dict) -> dict[str, float]:
    """The judge on the teacher's takes with `cue`'s fields set for every emotion."""
    original = dict(teacher_gesture.EMOTION_MOTION)
    teacher_gesture.EMOTION_MOTION.update({e: replace(m, **cue) for e, m in original.items()})
    try:
        reads: dict[str, list[bool]] = {}
        for i, take in enumerate(test):
            for e, emotion in enumerate(EMOTIONS):
                style = evaluation_style(i, e)
                read = judge(reader, positions(teacher(take, emotion, style, seed=i))) == e
                reads.setdefault(emotion, []).extend(read.tolist())
    finally:
        teacher_gesture.EMOTION_MOTION.update(original)
    return shares(reads)


def run(checkpoint: Path, corpus: Path, n_clips: int, n_train: int) -> dict:
    network, style_names, _ = load_gesture_checkpoint(checkpoint)
    torch.set_num_threads(2)
    test = held_out_takes(corpus, n_clips)
    motion = training_motion(load_takes(corpus, False, n_train))
    reader = train_emotion_judges([(positions(poses), e) for poses, e, _ in motion], kinds=("motion alone",))
    reader = reader["motion alone"]
    reads: dict[str, dict[str, list[bool]]] = {}  # variant -> emotion -> per window
    ranges: dict[str, dict[str, list[np.ndarray]]] = {"teacher": {}, "model": {}}
    jerk: dict[str, list[float]] = {}
    for i, take in enumerate(test):
        for e, emotion in enumerate(EMOTIONS):
            style = evaluation_style(i, e)
            taught = teacher(take, emotion, style, seed=i)
            made = generate(network, take, emotion, network.style_presets[style_names.index(style)].numpy(), seed=i)
            variants = {"teacher": taught, "model": made}
            variants |= {f"teacher {name}": perturb(taught, i) for name, perturb in PERTURBATIONS.items()}
            for part in PART_JOINTS:
                variants[f"teacher with the model's {part}"] = swapped(taught, made, part)
                variants[f"model with the teacher's {part}"] = swapped(made, taught, part)
            for name, poses in variants.items():
                pos = positions(poses)
                reads.setdefault(name, {}).setdefault(emotion, []).extend((judge(reader, pos) == e).tolist())
                jerk.setdefault(name, []).append(motion_metrics(pos)["jerk_m_s3"])
                if name in ranges:
                    ranges[name].setdefault(emotion, []).append(wrist_range_cm(pos))
    return {
        "checkpoint": str(checkpoint), "held_out_clips": len(test), "machine": machine(),
        "read_right": {name: shares(by) for name, by in reads.items()},
        "jerk_m_s3": {name: float(np.mean(v)) for name, v in jerk.items()},
        "teacher_cue_neutral": {cue: cue_reads(reader, test, fields) for cue, fields in CUES.items()},
        "wrist_range_cm": {name: {e: np.mean(v, axis=0).tolist() for e, v in by.items()}
                           for name, by in ranges.items()},
    }  # fmt: skip


def table(rows: dict[str, dict[str, float]], first: str, jerk: dict[str, float] | None = None) -> str:
    extra = " mean jerk (m/s³) |" if jerk else ""
    header = f"| {first} | all | " + " | ".join(EMOTIONS) + f" |{extra}"
    lines = [header, "|---" * (len(EMOTIONS) + 2 + bool(jerk)) + "|"]
    for name, by in rows.items():
        cells = f"| {name} | {by['all']:.3f} | " + " | ".join(f"{by[e]:.2f}" for e in EMOTIONS) + " |"
        lines.append(cells + (f" {jerk[name]:.0f} |" if jerk else ""))
    return "\n".join(lines)


def report(result: dict) -> str:
    ranges = result["wrist_range_cm"]
    range_rows = ["| emotion | teacher x, y, z | model x, y, z |", "|---|---|---|"] + [
        f"| {e} | " + " | ".join(", ".join(f"{v:.1f}" for v in ranges[k][e]) for k in ("teacher", "model")) + " |"
        for e in EMOTIONS
    ]
    return "\n\n".join([
        f"The judge of motion alone, {result['held_out_clips']} held-out clips, {result['machine']['cpu']}: share "
        "of 4 s windows read right, with one part's rotations swapped between teacher and model, and of the teacher "
        "low-passed or with noise",
        table(result["read_right"], "motion", result.get("jerk_m_s3")),
        "The teacher with one emotion cue set to neutral's for every emotion",
        table(result["teacher_cue_neutral"], "cue set to neutral's"),
        "How far the wrists range relative to the pelvis (std over a take, cm; x sideways, y up, z forward)",
        "\n".join(range_rows),
    ])  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="What the judge of motion alone reads in teacher and model motion.")
    parser.add_argument("--checkpoint", type=Path, default=ROOT / "runtime" / "assets" / "gesture.pt")
    parser.add_argument("--corpus", type=Path, default=ROOT / "training" / "data" / "corpus")
    parser.add_argument("--clips", type=int, default=16, help="held-out clips (8 takes each, one per emotion)")
    parser.add_argument("--train-clips", type=int, default=60, help="training-voice clips for the judge")
    parser.add_argument("--name", default="gesture_judge", help="result file name under benchmarks/results/")
    args = parser.parse_args(argv)
    result = run(args.checkpoint, args.corpus, args.clips, args.train_clips)
    path = write_result(args.name, result)
    markdown = report(result) + "\n"
    (RESULTS / f"{args.name}.md").write_text(markdown)
    print(markdown)
    print(f"wrote {path} and {args.name}.md")


if __name__ == "__main__":
    main()
