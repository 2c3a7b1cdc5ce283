"""Evaluation measures of generated gestures that both the gesture benchmark (benchmarks/gesture_quality.py)
and the sampling temperature fit (training/gesture_temperature.py) use: held-out takes, joint positions,
beat alignment, motion statistics, window features and the emotion and style classifiers read from them.
Definitions: docs/gestures.md."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from emostream.runtime.audio import LogMelFrontEnd
from emostream.runtime.audio_files import chunks
from emostream.runtime.body_pose import features_to_matrices, pose_features
from emostream.runtime.controls import emotion_vector
from emostream.runtime.models.gesture import GestureGenerator, GestureNetwork
from emostream.runtime.protocol import EMOTIONS
from emostream.runtime.rigs import SMPLX_JOINTS, UPPER_BODY_JOINTS, forward_kinematics, rest_offsets
from emostream.runtime.stream import GeneratorStream
from emostream.training.align import Phone
from emostream.training.face_data import supported_rate
from emostream.training.gesture_data import clip_jobs, join_utterances
from emostream.training.teacher_gesture import STYLES, teach_gesture

SIGMA_S = 0.1
WINDOW = 120  # frames per classifier window (4 s)
HANDS = tuple(range(25, 55))
CHIN_BELOW_HEAD_M = 0.1  # the chin's height below the SMPL-X head joint, roughly
OFFSETS = rest_offsets()
STYLE_NAMES = list(STYLES)


@dataclass
class Take:
    audio: np.ndarray
    rate: int
    phones: list[Phone]


def load_takes(corpus: Path, held_out: bool, limit: int) -> list[Take]:
    takes = []
    for paths, _, _, seed in clip_jobs(corpus, held_out, 1, limit, seed=7):
        gaps = list(np.random.default_rng(seed).uniform(0.25, 0.8, len(paths)))
        audio, rate, phones = join_utterances(paths, gaps)
        audio, rate = supported_rate(audio, rate)
        takes.append(Take(audio, rate, phones))
    return takes


def held_out_takes(corpus: Path, limit: int) -> list[Take]:
    """The benchmarks' held-out clips: up to `limit`, those of at least 4.5 s (a judge's 4 s window)."""
    return [t for t in load_takes(corpus, True, limit) if t.audio.size / t.rate >= 4.5]


def evaluation_style(clip: int, emotion: int) -> str:
    """The style the benchmarks give the `emotion`-th emotion of the `clip`-th held-out clip: every style
    with every emotion over 16 clips."""
    return STYLE_NAMES[(clip + emotion) % len(STYLE_NAMES)]


def positions(poses: np.ndarray) -> np.ndarray:
    rotations, trans = features_to_matrices(poses)
    return forward_kinematics(rotations, trans, OFFSETS)[0]


def audio_onsets(take: Take) -> np.ndarray:
    """Onset times (s): peaks of the positive spectral flux of the log-mel, at least 0.1 s apart."""
    mel = LogMelFrontEnd(take.rate).offline(take.audio)
    flux = np.maximum(np.diff(mel, axis=0), 0).sum(axis=1)
    flux = np.convolve(flux, np.ones(3) / 3, mode="same")
    threshold = flux.mean() + 0.5 * flux.std()
    onsets: list[int] = []
    for k in range(6, flux.size - 6):
        if flux[k] >= threshold and flux[k] == flux[k - 6 : k + 7].max() and (not onsets or k - onsets[-1] >= 12):
            onsets.append(k)
    return (np.array(onsets) + 1) / 120.0


def motion_beats(pos: np.ndarray) -> np.ndarray:
    """Times (s) of local minima of the mean upper-body joint speed that the speed rises at least
    5 cm/s out of within 0.3 s on both sides (pauses, not noise)."""
    joints = list(UPPER_BODY_JOINTS)
    speed = np.linalg.norm(np.diff(pos[:, joints], axis=0), axis=-1).mean(axis=1) * 30
    speed = np.convolve(speed, [0.25, 0.5, 0.25], mode="same")
    beats = []
    for k in range(1, speed.size - 1):
        if speed[k] <= speed[k - 1] and speed[k] < speed[k + 1]:
            left, right = speed[max(0, k - 9) : k], speed[k + 1 : k + 10]
            if left.size and right.size and min(left.max(), right.max()) - speed[k] > 0.05:
                beats.append(k + 1)
    return np.array(beats) / 30.0


def beat_alignment(onsets: np.ndarray, beats: np.ndarray) -> float:
    if onsets.size == 0:
        return float("nan")
    if beats.size == 0:
        return 0.0
    d = np.abs(onsets[:, None] - beats[None, :]).min(axis=1)
    return float(np.mean(np.exp(-(d**2) / (2 * SIGMA_S**2))))


def motion_metrics(pos: np.ndarray) -> dict[str, float]:
    upper = pos[:, list(UPPER_BODY_JOINTS) + list(HANDS)]
    velocity = np.diff(upper, axis=0) * 30
    jerk = np.diff(velocity, n=2, axis=0) * 900
    arms = pos[:, list(UPPER_BODY_JOINTS)]
    pelvis = pos[:, SMPLX_JOINTS.index("pelvis")]
    wrists = pos[:, [SMPLX_JOINTS.index("left_wrist"), SMPLX_JOINTS.index("right_wrist")], 1].max(axis=1)
    chin = pos[:, SMPLX_JOINTS.index("head"), 1] - CHIN_BELOW_HEAD_M
    return {
        "diversity_cm": float(np.abs(arms - arms.mean(axis=0)).mean() * 100),
        "jerk_m_s3": float(np.linalg.norm(jerk, axis=-1).mean()),
        "speed_m_s": float(np.linalg.norm(velocity, axis=-1).mean()),
        "pelvis_drift_cm": float(np.linalg.norm((pelvis - pelvis[0])[:, [0, 2]], axis=-1).max() * 100),
        # Conversational gesture stays below the face; the teacher lifts a hand that high only briefly.
        "hand_above_chin_share": float((wrists > chin).mean()),
    }


ARM_JOINTS = tuple(SMPLX_JOINTS.index(f"{side}_{j}") for side in ("left", "right")
                   for j in ("collar", "shoulder", "elbow", "wrist"))  # fmt: skip
AT_SHOULDER_HEIGHT_M = 0.1  # a wrist within this of its shoulder's height, or above it, is "at shoulder height"
OUT_WIDE_M = 0.45  # and this far sideways from the spine is out wide (the T-pose look)


def pose_statistics(pos: np.ndarray) -> dict[str, float]:
    """Where the hands are (forward kinematics, metres; Y up, X the body's left): the wrists' distance
    sideways from the spine (spine3) and below their shoulders, and the share of frames with a wrist out
    wide at shoulder height; and how one-sided the motion is, |left - right| / (left + right) of the two
    wrists' mean speed (0: both hands move alike; the teacher makes most gestures with one hand)."""
    spine = pos[:, SMPLX_JOINTS.index("spine3")]
    sideways, below, wide = [], [], np.zeros(pos.shape[0], bool)
    for side in ("left", "right"):
        wrist, shoulder = pos[:, SMPLX_JOINTS.index(f"{side}_wrist")], pos[:, SMPLX_JOINTS.index(f"{side}_shoulder")]
        out = np.abs(wrist[:, 0] - spine[:, 0])
        sideways.append(out)
        below.append(shoulder[:, 1] - wrist[:, 1])
        wide |= (out > OUT_WIDE_M) & (wrist[:, 1] > shoulder[:, 1] - AT_SHOULDER_HEIGHT_M)
    return {
        "wrist_sideways_median_m": float(np.median(np.concatenate(sideways))),
        "wrist_below_shoulder_median_m": float(np.median(np.concatenate(below))),
        "wrist_forward_median_m": float(np.median(np.concatenate(
            [pos[:, SMPLX_JOINTS.index(f"{s}_wrist"), 2] - spine[:, 2] for s in ("left", "right")]))),
        "wide_at_shoulder_share": float(wide.mean()),
        "one_sidedness": wrist_one_sidedness(pos),
    }  # fmt: skip


def wrist_one_sidedness(pos: np.ndarray) -> float:
    """|left - right| / (left + right) of the two wrists' mean speed over (T, 55, 3) joint positions; the
    trainer's `one_sidedness` is its counterpart on pose features, which a loss can differentiate."""
    left, right = (float(np.linalg.norm(np.diff(pos[:, SMPLX_JOINTS.index(f"{side}_wrist")], axis=0), axis=-1).mean())
                   for side in ("left", "right"))  # fmt: skip
    return abs(left - right) / max(left + right, 1e-9)


def arm_joint_speed(poses: np.ndarray) -> float:
    """Summed rotation speed of the collars, shoulders, elbows and wrists (radians per second, the angle
    between consecutive frames' local rotations), averaged over the take."""
    rotations = features_to_matrices(poses)[0][:, list(ARM_JOINTS)]
    relative = np.einsum("tjba,tjbc->tjac", rotations[:-1], rotations[1:])
    cos = np.clip((np.trace(relative, axis1=-2, axis2=-1) - 1) / 2, -1.0, 1.0)
    return float(np.arccos(cos).sum(axis=1).mean() * 30)


def window_features(poses: np.ndarray) -> np.ndarray:
    """Per 4 s window: mean and std of every pose feature and of their frame-to-frame change."""
    n = poses.shape[0] // WINDOW
    if n == 0:
        return np.zeros((0, 4 * poses.shape[1]), poses.dtype)
    w = poses[: n * WINDOW].reshape(n, WINDOW, -1)
    d = np.diff(w, axis=1)
    return np.concatenate([w.mean(1), w.std(1), np.abs(d).mean(1), d.std(1)], axis=1)


def feature_blocks(width: int) -> dict[str, slice]:
    """The parts of `window_features`' columns: posture (window mean), spread (window std) and motion
    (frame-to-frame change), for telling which part of generated motion the emotion classifier misreads."""
    p = width // 4
    return {"posture": slice(0, p), "spread": slice(p, 2 * p), "motion": slice(2 * p, 4 * p)}


SAMPLING: dict[str, Any] = {}  # GestureGenerator's keyword arguments (n_steps, temperature, ...); empty: defaults


@torch.no_grad()
def generate(network: GestureNetwork, take: Take, emotion: str, style: np.ndarray, seed: int,
             temperature: float | None = None) -> np.ndarray:  # fmt: skip
    """One take through the streaming path; `temperature` overrides SAMPLING's and the model's."""
    sampling = SAMPLING | ({} if temperature is None else {"temperature": temperature})
    generator = GestureGenerator(network, **sampling).eval()
    stream = GeneratorStream(generator, take.rate, seed=seed, emotion=emotion_vector(emotion, 1.0), fps=30,
                             style=style)  # fmt: skip
    out = [stream.push(chunk) for _, chunk in chunks(take.audio, take.rate, 20.0)]
    return np.concatenate(out + [stream.finish()])


def teacher(take: Take, emotion: str, style: str, seed: int) -> np.ndarray:
    out = teach_gesture(take.phones, take.audio, take.rate, emotion, 1.0, style, seed=seed)
    return pose_features(out.axis_angle, out.trans)


def training_motion(takes: list[Take]) -> list[tuple[np.ndarray, int, int]]:
    """Teacher motion of training voices for the classifiers: each take in every emotion, each time in a
    style drawn at random; (poses, emotion index, style index)."""
    rng = np.random.default_rng(0)
    out = []
    for i, take in enumerate(takes):
        for e, emotion in enumerate(EMOTIONS):
            s = int(rng.integers(len(STYLE_NAMES)))
            out.append((teacher(take, emotion, STYLE_NAMES[s], seed=100 * i + e), e, s))
    return out


def train_classifiers(motion: list[tuple[np.ndarray, int, int]], steps: int) -> tuple[torch.nn.Module, torch.nn.Module]:
    """Emotion and style classifiers of `window_features`, on `training_motion`, for a fixed number of
    steps: the same on every run and machine, so two checkpoints are compared by one and the same classifier."""
    xs, emotions, styles = [], [], []
    for poses, e, s in motion:
        f = window_features(poses)
        xs.append(f)
        emotions += [e] * len(f)
        styles += [s] * len(f)
    x = np.concatenate(xs)
    return (train_classifier(x, np.array(emotions), len(EMOTIONS), steps=steps),
            train_classifier(x, np.array(styles), len(STYLE_NAMES), steps=steps))  # fmt: skip


def train_classifier(x: np.ndarray, y: np.ndarray, n_classes: int, steps: int) -> nn.Module:
    """A small MLP, trained with Adam for a fixed number of steps from a fixed seed: the same data gives
    the same classifier on any machine."""
    torch.manual_seed(0)
    mean, std = x.mean(0), x.std(0) + 1e-3
    model = nn.Sequential(
        nn.Linear(x.shape[1], 128), nn.ReLU(), nn.Linear(128, 128), nn.ReLU(), nn.Linear(128, n_classes)
    )
    optimizer = torch.optim.Adam(model.parameters(), lr=2e-3)
    xt, yt = torch.from_numpy((x - mean) / std).float(), torch.from_numpy(y).long()
    for _ in range(steps):
        idx = torch.randint(0, xt.shape[0], (512,))
        loss = nn.functional.cross_entropy(model(xt[idx]), yt[idx])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()
    model.norm = (mean, std)  # type: ignore[assignment]
    return model


@torch.no_grad()
def predict(model: nn.Module, x: np.ndarray) -> np.ndarray:
    mean, std = model.norm  # type: ignore[misc]
    return model(torch.from_numpy((x - mean) / std).float()).argmax(1).numpy()
