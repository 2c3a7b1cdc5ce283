"""Trains the gesture generator from scratch: corpus -> teacher clips -> motion VAE -> latent flow
-> style presets -> a sampling temperature per emotion (training/gesture_temperature.py) -> the emotion
critic stage (training/emotion_critic.py) -> runtime/assets/gesture.pt.

    python -m training.train_gesture [--vae-steps 6500] [--flow-steps 3150] [--beat2 DIR]

The budget is in optimizer steps, not minutes, so a run repeats: the same seed and step counts give the
same weights however busy the machine is. The default counts are what 55 minutes gave on the 2-core
development machine, so a run from scratch there takes about an hour (54 and 59 minutes in the two runs
measured, with the clips, the motion VAE, the latent flow whose last steps run the model free against
the teacher's statistics, and the temperature fit; the emotion critic stage adds about 32 minutes), with
progress bars, loss curves beside the
checkpoint (benchmarks/results/gesture_training.png for the shipped one) and the recipe in the
checkpoint. docs/gestures.md says how the shipped checkpoint was
made and what it measured.
With --beat2, trains on BEAT2-style SMPL-X takes (npz + wav) instead of the teacher (training/beat2.py).
"""

from __future__ import annotations

import argparse
import json
import math
import time
from collections import defaultdict
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from emostream.runtime.body_pose import GESTURE_JOINTS
from emostream.runtime.layers import push_ring
from emostream.runtime.models.face import N_EMOTIONS
from emostream.runtime.models.gesture import (
    DEFAULT_TEMPERATURE,
    FEATURES_PER_FRAME,
    STYLE_CLIP_FRAMES,
    GestureConfig,
    GestureNetwork,
    load_gesture_checkpoint,
    save_gesture_checkpoint,
    with_config,
)
from emostream.runtime.rigs import SMPLX_JOINTS, UPPER_BODY_JOINTS
from emostream.training.emotion_critic import EmotionCritic, critic_loss, train_critic
from emostream.training.gesture_data import STYLE_NAMES, GestureClip, build_gesture_dataset
from emostream.training.gesture_temperature import calibrate, with_guidance
from emostream.training.machine import machine
from emostream.training.optimise import run_stage
from emostream.training.teacher_gesture import PLAN_CODES
from emostream.training.train_face import VTLP_PROBABILITY, warp_mel

ROOT = Path(__file__).resolve().parent.parent
CHECKPOINT = ROOT / "runtime" / "assets" / "gesture.pt"
RESULTS = ROOT / "benchmarks" / "results"
CROP = 120  # frames per training sequence (4 s)
CONTEXT = 32  # frames of earlier audio the encoder sees before a crop (its receptive field)
KL_WEIGHT = 0.005
# The budget in optimizer steps: what 55 minutes gave on 2 cores (13.75 for the VAE, 24.75 for the flow
# frame by frame, 16.5 free-running, whose steps cost about three flow steps each). Steps, not minutes, so
# that a run repeats (docs/gestures.md, "A budget in steps").
VAE_STEPS = 6500
FLOW_STEPS = 3150
FREE_RUNNING_STEPS = 620
# Frames of each 4 s crop that the flow's loss is scored on. 40 halves a step's time on 2 cores and doubles
# the hour's flow steps, but those models ignored their noise and their style reference and made half the
# strokes (docs/gestures.md, "A sample of each crop's frames"), so all of them by default.
FLOW_FRAMES = CROP
LIMB_FEATURES_START = 6 * GESTURE_JOINTS.index(SMPLX_JOINTS.index("left_shoulder"))  # arms, then fingers
TIMING_SMOOTHING = 5  # frames the timing loss averages the arms' speed over (a stroke is 10 to 20)
ARM_FEATURES = [6 * i + k for i, j in enumerate(GESTURE_JOINTS) if j in UPPER_BODY_JOINTS for k in range(6)]
ARM_PARTS = ("collar", "shoulder", "elbow", "wrist")
SIDE_FEATURES = {side: [6 * i + k for i, j in enumerate(GESTURE_JOINTS)
                        if SMPLX_JOINTS[j] in [f"{side}_{part}" for part in ARM_PARTS] for k in range(6)]
                 for side in ("left", "right")}  # fmt: skip
# Share of frames trained on the null emotion, for classifier-free guidance on the emotion. From scratch in
# one hour, this recipe without FiLM measured better than FiLM without dropout (docs/gestures.md).
EMOTION_DROPOUT = 0.15
# The free-running losses (rollout_loss) on the flow stage's last 40% of its time, paired: from scratch in
# one hour this lifted emotion accuracy from about 0.55 to 0.89 and beat alignment past its target
# (docs/gestures.md, "The free-running loss in the one-hour recipe").
ROLLOUT_WEIGHT = 1.0
ROLLOUT_PAIRS = True
# The free-running stage also matches the third difference's statistics and switches on emotion FiLM, as
# the shipped chain's last runs did: the one-hour model's jerk fell from 1.95x the teacher's to 1.05x
# (docs/gestures.md, "Jerk statistics and FiLM in the free-running stage").
ROLLOUT_JERK = True
FREE_RUNNING_FILM = True
RESUME_RATE = 1e-3  # where a resume's learning rate starts, and the free-running stage's
# The free-running stage's rollouts pass through the output low-pass the generator had when the shipped
# model was trained; the generator now streams without it (DEFAULT_SMOOTHING, docs/gestures.md).
ROLLOUT_SMOOTHING = 0.75
# How many times the free-running loss counts each window's spread (every pose feature's std) against its
# other statistics. At 3, seed 0's neutral stopped reading as happy (2 to 15 of 24 held-out windows) and
# its emotion accuracy rose from 0.84 to 0.93; seed 1 went the other way (neutral 17 to 6), so the gain
# is within the seed spread. The default because seed 0 with it is the shipped model, which meets every
# target (docs/gestures.md, "More weight on the spread").
SPREAD_WEIGHT = 3.0
# The weight of one-sidedness (`one_sidedness`) in the free-running statistics; 0 leaves it out.
SIDES_WEIGHT = 0.0
# Classifier-free guidance on the emotion that the temperature fit samples with and the checkpoint carries.
# With the spread weight, guidance 1.5 made motion too fast (jerk 1.68x the teacher's) and 1 met every
# target (docs/gestures.md, "More weight on the spread"); the null emotion is still trained, so a user can
# sample with more.
FIT_GUIDANCE = 1.0
# Whether the network draws a phrase plan per arm (which kind of phrase, or rest) that the flow follows
# (GestureConfig.plan_codes). Off: added to the shipped model by a resume, and from scratch, it read worse
# by motion alone (0.505 and 0.568 against 0.635) and made fewer beats (docs/gestures.md, "What was tried").
PHRASE_PLAN = False
# The recipe's last stage: after the temperature fit, free-running steps whose loss also counts an emotion
# critic's reading of the model's own motion (training/emotion_critic.py, EMOTE's emotion-consistency
# loss), with this weight. It took the judge of motion alone from 0.73 of the teacher's reading to 0.87
# on held-out voices (docs/gestures.md, "The emotion critic").
CRITIC_STAGE_STEPS = 620
CRITIC_WEIGHT = 0.2


@dataclass(frozen=True)
class HistoryAugmentation:
    """What the flow's history (its last poses) goes through in training, in normalised units."""

    # Gaussian noise on every history frame: the flow becomes robust to its own errors.
    noise: float = 0.15
    # Sequences whose history is zeroed, as at a stream's start: without it the flow learns to copy posture
    # (and with it emotion and style) from the history and ignores its emotion and style inputs.
    dropout: float = 0.3
    # A random offset shared by all history frames of a step: it moves the posture the history shows but
    # keeps its motion (velocity, the phase of a gesture), so the flow learns to take motion from the
    # history and posture from emotion, style and audio, and pulls a drifting posture back.
    offset: float = 0.5
    offset_limbs: float | None = 0.15  # the offset on shoulders, arms and hands, where strokes live

    def offset_scales(self, n_pose: int) -> Tensor:
        """Per pose feature: the offset's σ (`offset_limbs` on shoulders, arms and hands, when given)."""
        scales = torch.full((n_pose,), self.offset)
        if self.offset_limbs is not None:
            scales[LIMB_FEATURES_START : 6 * len(GESTURE_JOINTS)] = self.offset_limbs
        return scales

    def offsets(self, shape: tuple[int, int, int, int], gen: torch.Generator) -> Tensor:
        """The offset of each step's history (B, frames, 1, n_pose): shared by the step's history frames."""
        return torch.randn((*shape[:2], 1, shape[3]), generator=gen) * self.offset_scales(shape[3])


class Batches:
    """Random crops of clips: audio with context and lookahead, poses with history, a style reference."""

    def __init__(self, clips: list[GestureClip], config: GestureConfig, seed: int) -> None:
        self.clips, self.c = clips, config
        self.rng = np.random.default_rng(seed)
        self.by_style: dict[int, list[tuple[int, int]]] = defaultdict(list)
        for i, clip in enumerate(clips):  # a take shorter than a reference is padded with its last pose
            for r, s in enumerate(clip.styles):
                self.by_style[s].append((i, r))
        self.silence = min(float(c.features[0].min()) for c in clips[:50])
        self.back = max(config.history_span, config.vae_window)

    def __call__(self, batch_size: int) -> dict[str, Tensor]:
        c, rng = self.c, self.rng
        D, n_mels = c.lookahead_frames, c.n_mels
        n_feature_frames = CONTEXT + CROP + D
        features = np.full((batch_size, n_feature_frames, FEATURES_PER_FRAME, n_mels), self.silence, np.float32)
        poses = np.zeros((batch_size, self.back + CROP, c.n_pose), np.float32)
        valid = np.zeros((batch_size, self.back + CROP), np.float32)
        plans = np.zeros((batch_size, self.back + CROP, 2), np.int64)  # "rest" outside the clip
        ref_len = int(rng.integers(STYLE_CLIP_FRAMES[0], STYLE_CLIP_FRAMES[1] + 1))
        references = np.zeros((batch_size, ref_len, c.n_pose), np.float32)
        emotions, styles = [], []
        for b in range(batch_size):
            clip = self.clips[int(rng.integers(len(self.clips)))]
            r = int(rng.integers(len(clip.poses)))
            pose = clip.poses[r].astype(np.float32)
            feats = clip.features[clip.versions[r]].astype(np.float32)
            if rng.random() < VTLP_PROBABILITY:
                feats = warp_mel(feats, rng.uniform(0.88, 1.12))
            feats = feats.reshape(-1, FEATURES_PER_FRAME, n_mels)
            T = pose.shape[0]
            start = int(rng.integers(0, max(1, T - CROP)))
            first = start - CONTEXT  # feature frames start - CONTEXT .. start + CROP + D; silence outside
            lo_f, hi_f = max(0, first), min(feats.shape[0], first + n_feature_frames)
            features[b, lo_f - first : hi_f - first] = feats[lo_f:hi_f]
            lo, hi = max(0, start - self.back), min(T, start + CROP)
            poses[b, lo - (start - self.back) : hi - (start - self.back)] = pose[lo:hi]
            valid[b, lo - (start - self.back) : hi - (start - self.back)] = 1
            if c.plan_codes:
                plans[b, lo - (start - self.back) : hi - (start - self.back)] = clip.plans[r][lo:hi]
            emotions.append(clip.emotions[r])
            styles.append(clip.styles[r])
            i, rr = self._reference(clip.styles[r], clip)
            ref = self.clips[i].poses[rr].astype(np.float32)
            s = int(rng.integers(0, max(1, ref.shape[0] - ref_len)))
            piece = ref[s : s + ref_len]
            references[b, : piece.shape[0]] = piece
            references[b, piece.shape[0] :] = piece[-1]
        return {
            "features": torch.from_numpy(features),
            "poses": torch.from_numpy(poses),
            "valid": torch.from_numpy(valid),
            "emotion": torch.from_numpy(np.stack(emotions)),
            "style": torch.tensor(styles),
            "reference": torch.from_numpy(references),
            "plan": torch.from_numpy(plans),
        }

    def _reference(self, style: int, clip: GestureClip) -> tuple[int, int]:
        """Another take of the same style, from a different clip when there is one."""
        options = self.by_style[style]
        for _ in range(8):
            i, r = options[int(self.rng.integers(len(options)))]
            if self.clips[i] is not clip:
                return i, r
        return options[int(self.rng.integers(len(options)))]


def poses_at(x: Tensor, back: int, frames: Tensor, offsets: list[int]) -> Tensor:
    """(B, back + T, P) poses, (B, K) of the T crop frames -> (B, K, len(offsets), P): the poses at those offsets
    from each frame. Gathering only these keeps a history with sparse lags as cheap as a dense one."""
    index = back + frames[..., None] + torch.tensor(offsets)  # (B, K, O)
    B, K, n = index.shape
    return torch.gather(x, 1, index.reshape(B, K * n, 1).expand(-1, -1, x.shape[-1])).reshape(B, K, n, -1)


def pose_windows(x: Tensor, back: int, size: int) -> Tensor:
    """(B, back + K, P) -> (B, K, size, P): for each crop frame, it and the size - 1 frames before it."""
    K = x.shape[1] - back
    return poses_at(x, back, torch.arange(K).expand(x.shape[0], K), list(range(1 - size, 1)))


def plans_at(net: GestureNetwork, batch: dict[str, Tensor], back: int, frames: Tensor, offset: int) -> Tensor:
    """(B, K) crop frames -> (B, K, plan_size): both arms' one-hot plans `offset` frames from each, zero
    before the clip's start (a stream starts with no plan)."""
    index = back + frames + offset
    codes = torch.gather(batch["plan"], 1, index[..., None].expand(-1, -1, 2))
    valid = torch.gather(batch["valid"], 1, index)[..., None]
    return torch.nn.functional.one_hot(codes, net.config.plan_codes).flatten(-2).float() * valid


def normalized_poses(net: GestureNetwork, batch: dict[str, Tensor]) -> Tensor:
    """Normalised residual poses (the emotion's posture taken off) with frames before a clip's start at
    zero, as the stream's initial history."""
    residual = net.normalize_pose(batch["poses"]) - net.posture(batch["emotion"])[:, None]
    return residual * batch["valid"][..., None]


def vae_loss(net: GestureNetwork, batch: dict[str, Tensor], gen: torch.Generator) -> Tensor:
    c = net.config
    back = batch["poses"].shape[1] - CROP
    x = normalized_poses(net, batch)
    window = pose_windows(x, back, c.vae_window).flatten(0, 1)  # (B K, W, P)
    target = window[:, -1]
    mean, log_var = net.vae.encode(window)
    z = mean + torch.exp(0.5 * log_var) * torch.randn(mean.shape, generator=gen)
    mask = batch["valid"][:, back:].reshape(-1, 1)
    recon = (((net.vae.decode(z) - target) ** 2) * mask).sum() / (mask.sum() * c.n_pose)
    kl = (-0.5 * (1 + log_var - mean**2 - log_var.exp()) * mask).sum() / (mask.sum() * c.latent)
    return recon + KL_WEIGHT * kl


def crop_frames(x: Tensor, picked: Tensor) -> Tensor:
    """(B, CROP, ...) -> (B, K, ...): each sequence's picked frames, picked (B, K) frame indices."""
    return torch.gather(x, 1, picked.reshape(*picked.shape, *[1] * (x.dim() - 2)).expand(-1, -1, *x.shape[2:]))


def flow_loss(net: GestureNetwork, batch: dict[str, Tensor], gen: torch.Generator,
              augment: HistoryAugmentation = HistoryAugmentation(), frames: int = CROP) -> Tensor:  # fmt: skip
    """The flow-matching loss on `frames` random frames of each crop. The audio encoder still runs over
    the whole crop (its convolutions need the sequence); the frames it is scored on are a sample, since
    neighbouring frames teach nearly the same thing and the per-frame parts (history, VAE, flow) are
    most of a step's cost."""
    c = net.config
    back = batch["poses"].shape[1] - CROP
    B, D = batch["poses"].shape[0], c.lookahead_frames
    K = min(frames, CROP)
    picked = torch.rand(B, CROP, generator=gen).argsort(dim=1)[:, :K] if K < CROP else None  # (B, K)

    def pick(x: Tensor) -> Tensor:  # scoring every frame needs no draw and no gather
        return x if picked is None else crop_frames(x, picked)

    x = normalized_poses(net, batch)
    frames_at = torch.arange(CROP).expand(B, CROP) if picked is None else picked
    with torch.no_grad():
        z1 = net.vae.encode(poses_at(x, back, frames_at, list(range(1 - c.vae_window, 1))).flatten(0, 1))[0]
        z1 = (z1 - net.latent_mean) / net.latent_std
    encoded = net.encode_sequence(batch["features"])  # (B, CONTEXT + CROP + D, C)
    windows = pick(torch.stack([encoded[:, CONTEXT + j : CONTEXT + j + CROP] for j in range(D + 1)], dim=2))
    history = poses_at(x, back, frames_at, [-lag for lag in c.lags])  # (B, K, N, P): the poses it reads
    history = history + augment.noise * torch.randn(history.shape, generator=gen)
    history = history + augment.offsets(history.shape, gen)
    kept = torch.rand(B, generator=gen) >= augment.dropout  # sequences that start as a stream does: no past
    history = history * kept[:, None, None, None]
    style = net.embed_style(batch["reference"])  # (B, style_dim)
    dropped = torch.rand(B * K, generator=gen) < c.emotion_dropout if net.guidable else None
    emotion = batch["emotion"][:, None].expand(B, K, -1).flatten(0, 1)
    context = net.context(windows.flatten(0, 1), style[:, None].expand(B, K, -1).flatten(0, 1), history.flatten(0, 1))
    mask = pick(batch["valid"][:, back:]).reshape(-1, 1)
    plan, plan_loss = None, context.new_zeros(())
    if c.plan_codes:  # the flow follows the teacher's plan; the plan head learns to draw it
        plan = plans_at(net, batch, back, frames_at, 0).flatten(0, 1)
        previous = (plans_at(net, batch, back, frames_at, -1) * kept[:, None, None]).flatten(0, 1)
        logits = net.plan_logits(context, emotion, previous)  # (B K, 2, codes)
        codes = plan.unflatten(-1, (2, c.plan_codes)).argmax(-1)
        error = torch.nn.functional.cross_entropy(logits.flatten(0, 1), codes.flatten(), reduction="none")
        plan_loss = (error.reshape(-1, 2) * mask).sum() / (2 * mask.sum()).clamp(min=1)
    cond = net.condition(context, emotion, plan, dropped)
    z0 = torch.randn(z1.shape, generator=gen)
    t = torch.rand(z1.shape[0], generator=gen)
    zt = (1 - t[:, None]) * z0 + t[:, None] * z1
    error = (net.velocity(zt, net.time_term(t), cond) - (z1 - z0)) ** 2
    return (error * mask).sum() / (mask.sum() * c.latent).clamp(min=1) + plan_loss


def window_statistics(poses: Tensor, jerk: bool = False) -> list[Tensor]:
    """(B, T, P) -> the statistics of each sequence over its T frames: the mean and spread of every pose
    feature and of its frame-to-frame change, each (B, P); with `jerk`, also the mean size and spread of
    its third difference, which weighs fast wobbles far above strokes (at 30 fps, a 6 Hz wobble about 8
    times a 2 Hz stroke that changes the pose as fast), as the benchmark's jerk does."""
    change = torch.diff(poses, dim=1)
    statistics = [poses.mean(1), poses.std(1, correction=0), change.abs().mean(1), change.std(1, correction=0)]
    if jerk:
        third = torch.diff(change, n=2, dim=1)
        statistics += [third.abs().mean(1), third.std(1, correction=0)]
    return statistics


def free_run(net: GestureNetwork, batch: dict[str, Tensor], gen: torch.Generator, n_steps: int = 2) -> Tensor:
    """The model running free over each crop, as it does in a stream: from the crop's true history, each
    frame is sampled (noise, the sampler's Euler steps, the network's own temperature) and fed back as
    history, and the output is low-passed as the generator did when the shipped model was trained
    (`ROLLOUT_SMOOTHING`). (B, CROP, P) normalised poses with the emotion's posture on."""
    c = net.config
    back = batch["poses"].shape[1] - CROP
    D = c.lookahead_frames
    x = normalized_poses(net, batch)
    emotion = batch["emotion"]
    posture = net.posture(emotion)
    scale = net.temperature(emotion) if c.emotion_temperature else DEFAULT_TEMPERATURE
    time_terms = net.sampler_time_terms(n_steps)
    encoded = net.encode_sequence(batch["features"])
    style = net.embed_style(batch["reference"])
    history = x[:, back - c.history_span : back]
    smoothed = x[:, back - 1] + posture
    rho = c.noise_correlation
    eps = torch.randn((x.shape[0], c.latent), generator=gen)
    before_crop = torch.zeros((x.shape[0], 1), dtype=torch.long)  # the plan in the frame before the crop
    plan = plans_at(net, batch, back, before_crop, -1)[:, 0] if c.plan_codes else None
    made = []
    for k in range(CROP):
        eps = rho * eps + math.sqrt(1 - rho**2) * torch.randn(eps.shape, generator=gen)
        context = net.context(encoded[:, CONTEXT + k : CONTEXT + k + D + 1], style, net.history_taps(history))
        if plan is not None:  # the model draws its own plan, as in a stream
            plan = net.sample_plan(net.plan_logits(context, emotion, plan), torch.rand((x.shape[0], 2), generator=gen))
        pose = net.next_pose(net.integrate(scale * eps, net.condition(context, emotion, plan), time_terms))
        history = push_ring(history, pose[:, None])
        smoothed = smoothed + ROLLOUT_SMOOTHING * (pose + posture - smoothed)
        made.append(smoothed)
    return torch.stack(made, dim=1)


def arm_speed(poses: Tensor) -> Tensor:
    """(B, T, P) -> (B, T - 1): the size of each frame's change in the spine's, shoulders' and arms'
    features (not the fingers', which are most of P), a stand-in for the upper-body joint speed whose
    pauses the benchmark's beat alignment reads."""
    return torch.diff(poses[..., ARM_FEATURES], dim=1).square().sum(-1).add(1e-8).sqrt()


def one_sidedness(poses: Tensor) -> Tensor:
    """(B, T, P) -> (B, 1): how much more one arm moves than the other over the window, |left - right| of the
    mean size of each arm's frame-to-frame change. The teacher makes most gestures with one hand; the
    per-feature statistics cannot tell that from both arms making half a gesture, since either hand may
    be the one, but this does not depend on which."""
    change = torch.diff(poses, dim=1)
    left, right = (change[..., SIDE_FEATURES[side]].square().sum(-1).add(1e-8).sqrt().mean(1)
                   for side in ("left", "right"))  # fmt: skip
    return (left - right).abs()[:, None]


def correlation(a: Tensor, b: Tensor) -> Tensor:
    """Pearson correlation of each row of a with the same row of b: (B, T) -> (B,)."""
    a, b = a - a.mean(1, keepdim=True), b - b.mean(1, keepdim=True)
    return (a * b).sum(1) / (a.norm(dim=1) * b.norm(dim=1)).clamp(min=1e-8)


def statistics_loss(made: Tensor, target: Tensor, full: Tensor, paired: bool = False, jerk: bool = False,
                    spread_weight: float = 1.0, sides_weight: float = 0.0) -> Tensor:  # fmt: skip
    """The 4 s statistics of `made` (B, T, P) against the teacher's `target` (`window_statistics`), each
    relative to its size in the teacher's takes so that all count alike, except the spread (each
    feature's std over the window, what tells a calm emotion's gestures from a lively one's), which
    counts `spread_weight` times; the result is the weighted mean. `full` (B,) is 1 for crops
    scored. `paired`: the two halves of the batch are two samples of the same crops, scored as
    (a - t)(b - t), whose expectation is the squared bias of the model's statistics alone. With
    `sides_weight` above 0, `one_sidedness` joins the statistics with that weight."""
    made_statistics, target_statistics = window_statistics(made, jerk), window_statistics(target, jerk)
    weights = [1.0, spread_weight] + [1.0] * (len(made_statistics) - 2)
    if sides_weight > 0:
        made_statistics.append(one_sidedness(made))
        target_statistics.append(one_sidedness(target))
        weights.append(sides_weight)
    loss = made.new_zeros(())
    count = full.sum().clamp(min=1)
    for w, a, t in zip(weights, made_statistics, target_statistics, strict=True):
        # Floored for a batch of still takes; real takes' smallest statistic (the change) is about 1e-3.
        size = (((t**2).mean(1) * full).sum() / count).clamp(min=1e-4)
        if paired:
            h = len(a) // 2
            error, weight = ((a[:h] - t[:h]) * (a[h:] - t[:h])).mean(1), full[:h]
        else:
            error, weight = ((a - t) ** 2).mean(1), full
        loss = loss + w * (error * weight).sum() / (weight.sum().clamp(min=1) * size)
    return loss / sum(weights)


def timing_loss(made: Tensor, target: Tensor, full: Tensor, smoothing: int = TIMING_SMOOTHING) -> Tensor:
    """1 minus the correlation of the arms' speed over each crop with the teacher's: low when strokes and
    pauses fall where the teacher's do, on the crop's stressed syllables. Both speeds are averaged over
    `smoothing` frames first. Neither raw nor averaged speed kept two trial runs from learning to wobble
    within strokes, a pause on nearly every syllable, since the teacher's strokes are a random draw a
    causal model cannot foresee (docs/gestures.md, "Two samples and a timing loss"); off by default."""

    def smooth(speed: Tensor) -> Tensor:
        return torch.nn.functional.avg_pool1d(speed[:, None], smoothing, stride=1)[:, 0]

    agreement = correlation(smooth(arm_speed(made)), smooth(arm_speed(target)))
    return ((1 - agreement) * full).sum() / full.sum().clamp(min=1)


def rollout_loss(net: GestureNetwork, batch: dict[str, Tensor], gen: torch.Generator, n_steps: int = 2,
                 paired: bool = False, jerk: bool = False, spread_weight: float = 1.0, sides_weight: float = 0.0,
                 critic: EmotionCritic | None = None) -> dict[str, Tensor]:  # fmt: skip
    """Sequence-level losses on the model running free (`free_run`), "statistics" (`statistics_loss`) and
    "timing" (`timing_loss`). The per-frame flow loss sees true histories only, so a model trained on it
    alone never learns what its own motion does to it over seconds; emotion lives in those seconds
    (gesture rate, size, sway). One sample against one take also rewards samples that differ less from
    each other, which cost the seventh run most of its seed diversity; `paired` runs each crop of the
    first half of the batch twice with different noise (the same cost) and scores the statistics' bias
    only, leaving the spread between samples to the flow loss. `jerk` adds the third difference's
    statistics (`window_statistics`); `spread_weight` and `sides_weight` are `statistics_loss`'s. With a
    `critic`, "emotion" is its `critic_loss` on the motion made. Crops that run past their
    clip's end are left out."""
    if paired:
        half = {k: v[: len(v) // 2] for k, v in batch.items()}
        batch = {k: torch.cat([v, v]) for k, v in half.items()}
    target, full = crop_targets(net, batch)
    made = free_run(net, batch, gen, n_steps)
    statistics = statistics_loss(made, target, full, paired, jerk, spread_weight, sides_weight)
    losses = {"statistics": statistics, "timing": timing_loss(made, target, full)}
    if critic is not None:
        losses["emotion"] = critic_loss(critic, made, batch["emotion"], full)
    return losses


def crop_targets(net: GestureNetwork, batch: dict[str, Tensor]) -> tuple[Tensor, Tensor]:
    """The teacher's crops as the free-running losses score them: (B, CROP, P) normalised poses with the
    emotion's posture on, and (B,) 1 where the whole crop is in its clip."""
    back = batch["poses"].shape[1] - CROP
    target = normalized_poses(net, batch)[:, back:] + net.posture(batch["emotion"])[:, None]
    return target, batch["valid"][:, back:].min(dim=1).values


def teacher_crops(net: GestureNetwork, batches: Batches, batch_size: int) -> tuple[Tensor, Tensor, Tensor]:
    """A batch of the teacher's crops for the emotion critic: `crop_targets` and the (B, classes) emotions."""
    batch = batches(batch_size)
    with torch.no_grad():
        poses, full = crop_targets(net, batch)
    return poses, batch["emotion"], full


def fit_normalisation(net: GestureNetwork, clips: list[GestureClip]) -> None:
    feats = np.concatenate([c.features[0].astype(np.float32) for c in clips[:300]])
    poses = np.concatenate([p.astype(np.float32) for c in clips[:300] for p in c.poses])
    net.feature_mean.copy_(torch.from_numpy(feats.mean(0)))
    net.feature_std.copy_(torch.from_numpy(feats.std(0) + 1e-3))
    net.pose_mean.copy_(torch.from_numpy(poses.mean(0)))
    net.pose_std.copy_(torch.from_numpy(poses.std(0) + 0.01))
    if net.config.emotion_posture:
        fit_emotion_posture(net, clips)


@torch.no_grad()
def fit_emotion_posture(net: GestureNetwork, clips: list[GestureClip]) -> None:
    """Least squares of the normalised poses on the emotion weights (and a constant): each emotion's
    posture offset per unit of weight."""
    renders = [(e, p[::4]) for c in clips[:300] for e, p in zip(c.emotions, c.poses, strict=True)]  # every 4th frame
    weights = np.concatenate([np.repeat(e[None], p.shape[0], axis=0) for e, p in renders])
    poses = net.normalize_pose(torch.from_numpy(np.concatenate([p for _, p in renders]).astype(np.float32)))
    design = np.concatenate([weights, np.ones((len(weights), 1))], axis=1)
    solution = np.linalg.lstsq(design, poses.numpy().astype(np.float64), rcond=None)[0]
    net.emotion_offsets.copy_(torch.from_numpy(solution[:-1].astype(np.float32)))


@torch.no_grad()
def fit_latent_statistics(net: GestureNetwork, batches: Batches, n: int = 20) -> None:
    c = net.config
    means = []
    for _ in range(n):
        batch = batches(32)
        back = batch["poses"].shape[1] - CROP
        window = pose_windows(normalized_poses(net, batch), back, c.vae_window).flatten(0, 1)
        keep = batch["valid"][:, back:].reshape(-1) > 0
        means.append(net.vae.encode(window)[0][keep])
    z = torch.cat(means)
    net.latent_mean.copy_(z.mean(0))
    net.latent_std.copy_(z.std(0) + 1e-3)


@torch.no_grad()
def fit_style_presets(net: GestureNetwork, clips: list[GestureClip], n_styles: int, seed: int) -> None:
    """Each style's preset: the mean embedding of up to 24 of its takes, 8 s of each (or all of a
    shorter one)."""
    rng = np.random.default_rng(seed)
    embeddings: dict[int, list[Tensor]] = defaultdict(list)
    for clip in clips:
        for r, s in enumerate(clip.styles):
            poses = clip.poses[r]
            if len(embeddings[s]) >= 24 or poses.shape[0] < 32:  # the style encoder needs about 1 s
                continue
            start = int(rng.integers(0, max(1, poses.shape[0] - 240 + 1)))
            take = torch.from_numpy(poses[start : start + 240].astype(np.float32))[None]
            embeddings[s].append(net.embed_style(take)[0])
    for s in range(n_styles):
        if embeddings[s]:
            net.style_presets[s] = torch.stack(embeddings[s]).mean(0)


def with_emotion_options(net: GestureNetwork, dropout: float, film: bool) -> GestureNetwork:
    """The same weights under a config with this emotion dropout and FiLM; a null emotion or a FiLM
    layer it did not have starts at zero (so the network starts out as it was)."""
    config = replace(net.config, emotion_dropout=dropout, emotion_film=film or net.config.emotion_film)
    return with_config(net, config, {"null_emotion", "emotion_film.weight", "emotion_film.bias"})


def with_phrase_plan(net: GestureNetwork, codes: int) -> GestureNetwork:
    """The same weights with a phrase plan of `codes` kinds an arm added; the plan's input to the flow
    starts at zero, so the network starts out as it was, and its head untrained."""
    out = with_config(net, replace(net.config, plan_codes=codes), {
        f"{part}.{name}" for part in ("plan_in", "plan_head.0", "plan_head.2", "plan_head.4")
        for name in ("weight", "bias")})  # fmt: skip
    torch.nn.init.zeros_(out.plan_in.weight)
    torch.nn.init.zeros_(out.plan_in.bias)
    return out


def flow_parameters(net: GestureNetwork) -> list[torch.nn.Parameter]:
    """Everything but the VAE, which the flow stage keeps fixed."""
    net.vae.requires_grad_(False)
    return [p for n, p in net.named_parameters() if not n.startswith("vae.")]


def train(clips: list[GestureClip], style_names: list[str], batch_size: int, seed: int,
          vae_steps: int = VAE_STEPS, flow_steps: int = FLOW_STEPS, free_running_steps: int = FREE_RUNNING_STEPS,
          resume: GestureNetwork | None = None, augment: HistoryAugmentation = HistoryAugmentation(),
          emotion_dropout: float = EMOTION_DROPOUT, emotion_posture: bool = True, emotion_film: bool = False,
          flow_frames: int = FLOW_FRAMES, rollout_weight: float = ROLLOUT_WEIGHT,
          rollout_pairs: bool = ROLLOUT_PAIRS, timing_weight: float = 0.0, rollout_jerk: bool = ROLLOUT_JERK,
          free_running_film: bool = FREE_RUNNING_FILM, spread_weight: float = SPREAD_WEIGHT,
          sides_weight: float = SIDES_WEIGHT, history_frames: int = GestureConfig.history_frames,
          history_lags: tuple[int, ...] = (), phrase_plan: bool = PHRASE_PLAN, critic_weight: float = 0.0
          ) -> tuple[GestureNetwork, dict]:  # fmt: skip
    """Both stages from scratch; with `resume`, only the flow stage goes on from that network (its
    normalisation, emotion posture, VAE and latent statistics are kept), at a lower rate, and
    `vae_steps` is not used. The flow trains frame by frame for `flow_steps`, then free-running for
    `free_running_steps`: the free-running statistics loss (`rollout_loss`, weighted by `rollout_weight`,
    paired with `rollout_pairs`) and its timing loss (`timing_weight`) join the flow's, as a stage of its
    own whose learning rate starts again from `RESUME_RATE`, as the shipped chain's last run did: at three
    times a step's cost, they pay most on a flow that has learned the motion frame by frame.
    `rollout_jerk` adds the third difference's statistics to that loss; `free_running_film` switches
    emotion FiLM on (from zero) for that stage; `spread_weight` weighs the windows' spread in the
    statistics (`statistics_loss`), `sides_weight` how much more one arm moves than the other;
    `history_frames` is how many of its own poses the model sees, the last ones, or those `history_lags`
    frames back (neither with `resume`, whose config is kept); `phrase_plan` gives the network a phrase
    plan per arm to draw and follow (GestureConfig.plan_codes), learnt from the teacher's plans (clips
    without them, motion capture, train without); with `critic_weight` above 0, an emotion critic
    (`training/emotion_critic.py`) is trained on the teacher's crops before the free-running stage and its
    loss on the model's own motion joins that stage's. The same arguments give the same weights."""
    if free_running_steps > 0 and rollout_weight == 0 and timing_weight == 0:
        raise ValueError("free-running steps need a rollout or timing weight above 0")
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    config = GestureConfig(emotion_dropout=emotion_dropout, emotion_posture=emotion_posture,
                           emotion_film=emotion_film, history_frames=len(history_lags) or history_frames,
                           history_lags=history_lags,
                           plan_codes=len(PLAN_CODES) if phrase_plan and all(c.plans for c in clips) else 0,
                           )  # fmt: skip
    batches = Batches(clips, config, seed)
    vae_losses: list[float] = []
    if resume is None:
        net = GestureNetwork(config, n_styles=len(style_names))
        fit_normalisation(net, clips)
        vae_losses = run_stage("motion VAE", list(net.vae.parameters()),
                               lambda: vae_loss(net, batches(batch_size), gen), vae_steps, 2e-3)  # fmt: skip
        fit_latent_statistics(net, batches)
    else:
        net = with_emotion_options(resume, emotion_dropout, emotion_film).train()
        if config.plan_codes and not net.config.plan_codes:
            net = with_phrase_plan(net, config.plan_codes).train()
    flow_params = flow_parameters(net)
    rate = 2e-3 if resume is None else RESUME_RATE
    rollout_losses: list[float] = []
    timing_losses: list[float] = []
    critic_losses: list[float] = []
    critic, critic_accuracy = None, None

    def frame_loss() -> Tensor:
        return flow_loss(net, batches(batch_size), gen, augment, flow_frames)

    def free_running_loss() -> Tensor:
        batch = batches(batch_size)
        free_running = rollout_loss(net, batch, gen, paired=rollout_pairs, jerk=rollout_jerk,
                                    spread_weight=spread_weight, sides_weight=sides_weight, critic=critic)  # fmt: skip
        rollout_losses.append(free_running["statistics"].item())
        timing_losses.append(free_running["timing"].item())
        loss = flow_loss(net, batch, gen, augment, flow_frames) + rollout_weight * free_running["statistics"] \
            + timing_weight * free_running["timing"]  # fmt: skip
        if critic is not None:
            critic_losses.append(free_running["emotion"].item())
            loss = loss + critic_weight * free_running["emotion"]
        return loss

    flow_losses = run_stage("latent flow", flow_params, frame_loss, flow_steps, rate)
    if free_running_steps > 0:
        if free_running_film and not net.config.emotion_film:
            net = with_emotion_options(net, emotion_dropout, True).train()
            flow_params = flow_parameters(net)
        if critic_weight > 0:  # its own crops and seed, so the stage's other draws stay as without it
            critic_batches = Batches(clips, net.config, seed + 1)
            critic, critic_accuracy = train_critic(lambda: teacher_crops(net, critic_batches, 64), ARM_FEATURES,
                                                   N_EMOTIONS, seed + 1)  # fmt: skip
            print(f"emotion critic: {critic_accuracy:.3f} of unseen teacher crops read right")
        flow_losses += run_stage("latent flow, free-running", flow_params, free_running_loss, free_running_steps,
                                 RESUME_RATE)  # fmt: skip
    net.eval()
    fit_style_presets(net, clips, len(style_names), seed)
    return net, {"vae_losses": vae_losses, "flow_losses": flow_losses, "rollout_losses": rollout_losses,
                 "timing_losses": timing_losses, "critic_losses": critic_losses, "critic_accuracy": critic_accuracy,
                 "batch_size": batch_size}  # fmt: skip


def plot_losses(log: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [("vae_losses", "motion VAE"), ("flow_losses", "latent flow")]
    if log.get("rollout_losses"):
        panels.append(("rollout_losses", "free-running statistics"))
        panels.append(("timing_losses", "free-running timing"))
    if log.get("critic_losses"):
        panels.append(("critic_losses", "emotion critic (last stage)"))
    fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 3.5))
    for ax, (key, title) in zip(axes, panels, strict=True):
        losses = log[key]
        if not losses:
            ax.set_title(f"{title}: kept from the resumed checkpoint")
            continue
        window = max(1, len(losses) // 50)
        smooth = np.convolve(losses, np.ones(window) / window, mode="valid")
        ax.plot(losses, alpha=0.3, linewidth=0.6)
        ax.plot(np.arange(smooth.size) + window - 1, smooth)
        ax.set_yscale("log" if min(losses) > 0 else "linear")  # the paired statistics loss can go below 0
        ax.set_xlabel("step")
        ax.set_title(f"gesture training: {title}")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def final_loss(losses: list[float]) -> float | None:
    """The mean of a stage's last 100 losses, or None for a stage that did not run."""
    return float(np.mean(losses[-100:])) if losses else None


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Train the gesture generator from scratch.")
    parser.add_argument("--corpus", type=Path, default=ROOT / "training" / "data" / "corpus")
    parser.add_argument("--utterances", type=int, default=2400, help="corpus size, if it must be built")
    parser.add_argument("--vae-steps", type=int, default=VAE_STEPS, help="motion VAE steps (not with --resume)")
    parser.add_argument("--flow-steps", type=int, default=FLOW_STEPS, help="latent flow steps, frame by frame")
    parser.add_argument("--free-running-steps", type=int, default=FREE_RUNNING_STEPS,
                        help="latent flow steps with the free-running losses, after the others (0: none)")  # fmt: skip
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--renders", type=int, default=6, help="teacher renders per clip")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--limit", type=int, default=None, help="use at most this many clips")
    parser.add_argument("--beat2", type=Path, default=None, help="train on BEAT2-style takes (npz + wav) instead")
    parser.add_argument("--resume", type=Path, default=None,
                        help="go on training the flow of this checkpoint (VAE kept)")  # fmt: skip
    recipe = HistoryAugmentation()
    parser.add_argument("--history-frames", type=int, default=GestureConfig.history_frames,
                        help="how many of its own poses the model sees (not with --resume)")
    parser.add_argument("--history-lags", type=lambda text: tuple(int(v) for v in text.split(",")), default=(),
                        help="how far back each pose it sees is, oldest first, e.g. 30,18,10,6,4,3,2,1 "
                             "(instead of --history-frames; not with --resume)")  # fmt: skip
    parser.add_argument("--history-noise", type=float, default=recipe.noise)
    parser.add_argument("--history-dropout", type=float, default=recipe.dropout)
    parser.add_argument("--history-offset", type=float, default=recipe.offset)
    parser.add_argument("--history-offset-limbs", type=float, default=recipe.offset_limbs,
                        help="the offset on shoulders, arms and hands, where strokes live")  # fmt: skip
    parser.add_argument("--emotion-dropout", type=float, default=EMOTION_DROPOUT,
                        help="share of frames trained on the null emotion (0: no classifier-free guidance)")
    parser.add_argument("--emotion-posture", action=argparse.BooleanOptionalAction, default=True,
                        help="model poses as a residual from a fitted per-emotion posture (from scratch only)")
    parser.add_argument("--emotion-film", action=argparse.BooleanOptionalAction, default=False,
                        help="the emotion also scales and shifts the flow's hidden units (FiLM); zero at the start")
    parser.add_argument("--flow-frames", type=int, default=FLOW_FRAMES,
                        help=f"frames of each {CROP}-frame crop the flow's loss is scored on")
    parser.add_argument("--rollout-weight", type=float, default=ROLLOUT_WEIGHT,
                        help="weight of the free-running loss: the 4 s statistics of the model's own sampled "
                             "motion matched to the teacher's (about 3x the time per flow step)")  # fmt: skip
    parser.add_argument("--rollout-pairs", action=argparse.BooleanOptionalAction, default=ROLLOUT_PAIRS,
                        help="score the free-running statistics on two samples of each crop, (a - t)(b - t), "
                             "which leaves the spread between seeds alone")  # fmt: skip
    parser.add_argument("--timing-weight", type=float, default=0.0,
                        help="weight of the free-running timing loss: 1 - the correlation of the arms' speed "
                             "with the teacher's over each crop")  # fmt: skip
    parser.add_argument("--rollout-jerk", action=argparse.BooleanOptionalAction, default=ROLLOUT_JERK,
                        help="the free-running loss also matches the statistics of the third difference")
    parser.add_argument("--free-running-film", action=argparse.BooleanOptionalAction, default=FREE_RUNNING_FILM,
                        help="switch emotion FiLM on (from zero) for the free-running stage")
    parser.add_argument("--spread-weight", type=float, default=SPREAD_WEIGHT,
                        help="how many times the free-running loss counts the windows' spread (each pose "
                             "feature's std) against its other statistics")  # fmt: skip
    parser.add_argument("--sides-weight", type=float, default=SIDES_WEIGHT,
                        help="weight of one-sidedness (how much more one arm moves than the other) in the "
                             "free-running loss; 0 leaves it out")  # fmt: skip
    parser.add_argument("--critic-steps", type=int, default=CRITIC_STAGE_STEPS,
                        help="after the temperature fit, free-running steps whose loss also counts an emotion "
                             "critic's reading of the model's own motion (training/emotion_critic.py); 0: "
                             "none (and none with --beat2, whose takes are all neutral)")  # fmt: skip
    parser.add_argument("--critic-weight", type=float, default=CRITIC_WEIGHT,
                        help="weight of the emotion critic's loss in that stage")  # fmt: skip
    parser.add_argument("--phrase-plan", action=argparse.BooleanOptionalAction, default=PHRASE_PLAN,
                        help="the network draws a phrase plan per arm, learnt from the teacher's, and the flow "
                             "follows it (with --resume, added to the resumed network; not with --beat2, "
                             "which has no plans)")  # fmt: skip
    parser.add_argument("--emotion-temperature", action=argparse.BooleanOptionalAction, default=True,
                        help="fit a sampling temperature per emotion after training (not with --beat2, "
                             "which has no teacher to match)")  # fmt: skip
    parser.add_argument("--guidance", type=float, default=None,
                        help="classifier-free guidance on the emotion that the temperature fit samples with and "
                             f"the checkpoint carries (1: none; default {FIT_GUIDANCE:g}, and 1 where no temperatures "
                             "are fitted or the model has no null emotion)")  # fmt: skip
    parser.add_argument("--out", type=Path, default=CHECKPOINT)
    args = parser.parse_args(argv)
    if not 1 <= args.flow_frames <= CROP or args.rollout_weight < 0 or args.timing_weight < 0 \
            or min(args.vae_steps, args.flow_steps, args.free_running_steps, args.critic_steps) < 0 \
            or min((args.history_frames, *args.history_lags)) < 1 \
            or args.spread_weight <= 0 or args.sides_weight < 0 or args.critic_weight <= 0:  # fmt: skip
        parser.error(f"need 1 <= --flow-frames <= {CROP}, --rollout-weight, --timing-weight and the step "
                     "counts >= 0, --history-frames and --history-lags >= 1, --spread-weight > 0, "
                     "--sides-weight >= 0 and --critic-weight > 0")  # fmt: skip
    if args.free_running_steps > 0 and args.rollout_weight == 0 and args.timing_weight == 0:
        parser.error("--free-running-steps need a --rollout-weight or --timing-weight above 0")
    fits_temperatures = args.emotion_temperature and args.beat2 is None
    if args.guidance is None:  # the default is fitted with the temperatures, so only where they are
        args.guidance = FIT_GUIDANCE if args.emotion_dropout > 0 and fits_temperatures else 1.0
    if args.guidance < 0 or (args.guidance != 1.0 and args.emotion_dropout == 0):
        parser.error("--guidance must be >= 0, and other than 1 only with an --emotion-dropout above 0")
    torch.set_num_threads(2)
    began = time.time()
    if args.beat2 is not None:
        from emostream.training.beat2 import build_beat2_dataset

        clips, style_names = build_beat2_dataset(args.beat2)
        data: dict = {"beat2": str(args.beat2), "takes": len(clips), "speakers": style_names}
    else:
        if not (args.corpus / "manifest.json").exists():
            from emostream.training.corpus import build

            build(args.corpus, args.utterances, seed=args.seed)
        clips = build_gesture_dataset(args.corpus, n_renders=args.renders, limit=args.limit)
        style_names = STYLE_NAMES
        data = {
            "clips": len(clips),
            "renders_per_clip": args.renders,
            "minutes_of_motion": sum(p.shape[0] for c in clips for p in c.poses) / 30 / 60,
            "voices_train": sorted({c.voice for c in clips}),
            "teacher_styles": style_names,
            "audio_versions": "clean + 1 augmented (speed, EQ, reverb, noise, telephone, level)",
        }
    resumed, earlier = None, None
    if args.resume is not None:
        resumed, _, earlier = load_gesture_checkpoint(args.resume)
    augment = HistoryAugmentation(args.history_noise, args.history_dropout, args.history_offset,
                                  args.history_offset_limbs)  # fmt: skip

    def train_from(start: GestureNetwork | None, flow_steps: int, free_running_steps: int,
                   critic_weight: float = 0.0) -> tuple[GestureNetwork, dict]:  # fmt: skip
        return train(clips, style_names, args.batch_size, args.seed, args.vae_steps, flow_steps, free_running_steps,
                     start, augment, args.emotion_dropout, args.emotion_posture, args.emotion_film, args.flow_frames,
                     args.rollout_weight, args.rollout_pairs, args.timing_weight, args.rollout_jerk,
                     args.free_running_film, args.spread_weight, args.sides_weight, args.history_frames,
                     args.history_lags, args.phrase_plan, critic_weight)  # fmt: skip

    net, log = train_from(resumed, args.flow_steps, args.free_running_steps)
    metadata: dict[str, Any] = {
        "data": data,
        "resumed_from": earlier,  # the metadata of the checkpoint this run went on from, if any
        "training": {"vae_steps": len(log["vae_losses"]), "flow_steps": len(log["flow_losses"]),
                     "free_running_steps": len(log["rollout_losses"]),
                     "batch_size": log["batch_size"], "seed": args.seed,
                     "final_vae_loss": final_loss(log["vae_losses"]),
                     **{f"history_{k}": v for k, v in asdict(augment).items()},
                     "history_frames": net.config.history_frames, "history_lags": list(net.config.lags),
                     "plan_codes": net.config.plan_codes,
                     "emotion_dropout": args.emotion_dropout, "emotion_posture": net.config.emotion_posture,
                     "emotion_film": net.config.emotion_film, "flow_frames": args.flow_frames,
                     "final_flow_loss": final_loss(log["flow_losses"]),  # with the free-running terms
                     "rollout_weight": args.rollout_weight, "rollout_pairs": args.rollout_pairs,
                     "rollout_jerk": args.rollout_jerk, "spread_weight": args.spread_weight,
                     "sides_weight": args.sides_weight,
                     "free_running_film": args.free_running_film, "guidance": args.guidance,
                     "timing_weight": args.timing_weight,
                     "final_timing_loss": final_loss(log["timing_losses"]),
                     "final_rollout_loss": final_loss(log["rollout_losses"]),
                     "wall_minutes_total": (time.time() - began) / 60, "machine": machine()},
        "created": time.strftime("%Y-%m-%d %H:%M"),
    }  # fmt: skip
    # The shipped checkpoint's figures go with the benchmark results; any other run's sit beside it.
    # Named by appending, not with_suffix, which would cut a stem that has a dot in it ("run.v2").
    shipped = args.out == CHECKPOINT
    folder, prefix = (RESULTS, "gesture") if shipped else (args.out.parent, args.out.stem)
    stem = f"{prefix}_training"
    folder.mkdir(parents=True, exist_ok=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    net = with_guidance(net, args.guidance)  # the temperature fit below samples with it
    save_gesture_checkpoint(args.out, net, style_names, metadata)  # kept should the fit below fail
    figures = folder / f"{prefix}_temperature"
    # A resume that trains nothing before the critic keeps the temperatures it was fitted with.
    if fits_temperatures and (resumed is None or args.flow_steps or args.free_running_steps):
        net, metadata["emotion_temperature"] = calibrate(net, style_names, args.corpus, figures)
        metadata["training"]["wall_minutes_total"] = (time.time() - began) / 60
        save_gesture_checkpoint(args.out, net, style_names, metadata)
    if args.critic_steps > 0 and args.beat2 is None:
        # As a resume of the checkpoint just written runs it (`--resume OUT --flow-steps 0
        # --free-running-steps 0`, which trains nothing first), so the stage can be rerun on its own.
        net, critic_log = train_from(net, 0, args.critic_steps, args.critic_weight)
        log["critic_losses"] = critic_log["critic_losses"]
        log["flow_losses"] += critic_log["flow_losses"]
        metadata["critic_stage"] = {"steps": args.critic_steps, "weight": args.critic_weight,
                                    "critic_accuracy_on_teacher": critic_log["critic_accuracy"],
                                    "final_critic_loss": final_loss(critic_log["critic_losses"]),
                                    "final_rollout_loss": final_loss(critic_log["rollout_losses"])}  # fmt: skip
        # The temperatures stay those the stage trained the flow under: fitted again, they all fell to 0.2
        # and two seeds' motion to 0.24 cm apart (from 0.82), for no gain (docs/gestures.md).
        net = with_guidance(net, args.guidance)
        metadata["training"]["wall_minutes_total"] = (time.time() - began) / 60
        save_gesture_checkpoint(args.out, net, style_names, metadata)
    plot_losses(log, folder / f"{stem}.png")
    summary = {**metadata, **{key: log[key][::10] for key in ("vae_losses", "flow_losses", "rollout_losses",
                                                             "timing_losses", "critic_losses")}}
    (folder / f"{stem}.json").write_text(json.dumps(summary, indent=1))
    print(f"loss curves: {folder / stem}.png")
    print(f"wrote {args.out} ({args.out.stat().st_size / 1e6:.1f} MB); "
          f"flow loss {metadata['training']['final_flow_loss']:.4f}")  # fmt: skip


if __name__ == "__main__":
    main()
