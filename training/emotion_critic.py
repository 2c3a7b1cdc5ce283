"""An emotion critic for the gesture flow's free-running stage: EMOTE's emotion-consistency loss, on motion.

EMOTE (Danecek et al. 2023) keeps a talking face's emotion by scoring its output with a frozen emotion
recogniser and training the generator to be recognised. Here the recogniser reads the arms' motion alone,
since that is where the gesture model's emotion is weakest (docs/gestures.md, Known limits: the model's
fixed posture per emotion is read at once, its motion much less than the teacher's). It is trained on the
teacher's crops of the training voices just before the stage that uses it, then frozen.

It is deliberately unlike the benchmark's judges (`training/motion_judge.py`: convolutions over joint
positions from forward kinematics at 15 fps, fitted on other takes): a GRU over the network's own
normalised rotation features at 30 fps, each window's mean taken off (motion, not posture), with their
frame-to-frame change beside them. A gain the benchmark's judge reads is then motion a different reader
also recognises, not that judge's filters learnt by the generator.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn
from tqdm import tqdm

CRITIC_STEPS = 600  # Adam steps on teacher crops (about 1.5 minutes); its accuracy on fresh crops is printed
# Label smoothing in the critic's own training, so that it is not certain of every reading: the model's motion
# starts far from the teacher's, and a certain critic scores it at a cross-entropy of 5 or more (a scratch run).
LABEL_SMOOTHING = 0.1
CRITIC_HIDDEN = 64
CHANGE_SCALE = 10.0  # the frame-to-frame change is about a tenth of a window's spread in these units


class EmotionCritic(nn.Module):
    """(B, T, F) normalised pose features of a window -> (B, classes) emotion logits, from motion alone."""

    def __init__(self, features: list[int], n_classes: int, hidden: int = CRITIC_HIDDEN) -> None:
        super().__init__()
        self.features = features
        self.gru = nn.GRU(2 * len(features), hidden, batch_first=True)
        self.out = nn.Linear(hidden, n_classes)

    def forward(self, poses: Tensor) -> Tensor:
        x = poses[..., self.features]
        centred = x - x.mean(1, keepdim=True)
        change = torch.diff(x, dim=1, prepend=x[:, :1]) * CHANGE_SCALE
        h, _ = self.gru(torch.cat([centred, change], -1))
        return self.out(h.mean(1))


def emotion_targets(emotion: Tensor) -> tuple[Tensor, Tensor]:
    """(B, classes) one-hot times intensity -> the class and its weight (the intensity: a take at 0.4 of an
    emotion moves less like it than one at full)."""
    weight, label = emotion.max(1)
    return label, weight


def critic_loss(critic: EmotionCritic, poses: Tensor, emotion: Tensor, full: Tensor, smoothing: float = 0.0) -> Tensor:
    """Intensity-weighted cross-entropy of the critic's reading of (B, T, F) poses, over the crops that
    `full` (B,) marks as whole."""
    label, weight = emotion_targets(emotion)
    weight = weight * full
    losses = nn.functional.cross_entropy(critic(poses), label, reduction="none", label_smoothing=smoothing)
    return (losses * weight).sum() / weight.sum().clamp(min=1e-6)


def train_critic(teacher_crops: Callable[[], tuple[Tensor, Tensor, Tensor]], features: list[int], n_classes: int,
                 seed: int, steps: int | None = None) -> tuple[EmotionCritic, float]:  # fmt: skip
    """Adam on `teacher_crops()` ((B, T, P) teacher poses, (B, classes) emotion, (B,) whole crops) for
    `steps` (default `CRITIC_STEPS`), from `seed`. Returns the frozen critic and its accuracy on 8 fresh
    batches of crops (whole ones only)."""
    steps = CRITIC_STEPS if steps is None else steps
    torch.manual_seed(seed)
    critic = EmotionCritic(features, n_classes)
    optimizer = torch.optim.Adam(critic.parameters(), lr=2e-3, weight_decay=1e-4)
    for _ in tqdm(range(steps), desc="emotion critic", mininterval=5):
        loss = critic_loss(critic, *teacher_crops(), smoothing=LABEL_SMOOTHING)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    right = seen = 0.0
    with torch.no_grad():
        for _ in range(8):
            poses, emotion, full = teacher_crops()
            label, _ = emotion_targets(emotion)
            right += float(((critic(poses).argmax(1) == label).float() * full).sum())
            seen += float(full.sum())
    critic.eval().requires_grad_(False)
    return critic, right / max(seen, 1.0)
