"""The emotion critic of the gesture flow's free-running stage (training/emotion_critic.py)."""

import math

import pytest
import torch

from emostream.training.emotion_critic import EmotionCritic, critic_loss, train_critic

FRAMES = 60
FEATURES = [0, 2, 4]  # the critic reads these of the poses' 6


def swinging(rate_hz: torch.Tensor, posture: torch.Tensor) -> torch.Tensor:
    """(B,) swing rates, (B,) postures -> (B, FRAMES, 6) poses swinging at that rate about that posture."""
    t = torch.arange(FRAMES) / 30.0
    phase = torch.rand(len(rate_hz), 1) * 2 * math.pi
    wave = torch.sin(2 * math.pi * rate_hz[:, None] * t + phase)
    return (wave[..., None] + posture[:, None, None]).expand(-1, -1, 6).contiguous()


def crops(batch: int = 16) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Class 1 swings three times as fast as class 0, and its posture is drawn from the same range, so that
    only the motion tells them apart."""
    label = torch.randint(0, 2, (batch,))
    poses = swinging(0.5 + 1.0 * label, torch.empty(batch).uniform_(-2, 2))
    emotion = torch.nn.functional.one_hot(label, 2).float()
    return poses, emotion, torch.ones(batch)


def test_the_critic_reads_motion_not_posture() -> None:
    torch.manual_seed(0)
    critic = EmotionCritic(FEATURES, n_classes=8)
    poses = torch.randn(4, FRAMES, 6)
    assert torch.allclose(critic(poses), critic(poses + 3.0), atol=1e-5)
    assert not torch.allclose(critic(poses), critic(poses * 2.0), atol=1e-3)


def test_the_critic_learns_to_tell_emotions_by_their_motion_and_is_frozen_after() -> None:
    critic, accuracy = train_critic(crops, FEATURES, n_classes=2, seed=0, steps=100)
    assert accuracy > 0.95
    assert not any(p.requires_grad for p in critic.parameters())
    poses = swinging(torch.full((8,), 0.5), torch.zeros(8)).requires_grad_()
    wrong = torch.nn.functional.one_hot(torch.ones(8, dtype=torch.long), 2).float()
    critic_loss(critic, poses, wrong, torch.ones(8)).backward()
    assert poses.grad is not None and poses.grad.abs().sum() > 0  # it trains what it reads, not itself


def test_the_critic_loss_weighs_by_intensity_and_leaves_out_broken_crops() -> None:
    torch.manual_seed(0)
    critic = EmotionCritic(FEATURES, n_classes=2)
    poses = torch.randn(2, FRAMES, 6)
    emotion = torch.tensor([[0.0, 1.0], [0.4, 0.0]])
    each = torch.nn.functional.cross_entropy(critic(poses), torch.tensor([1, 0]), reduction="none")
    both = critic_loss(critic, poses, emotion, torch.ones(2))
    assert float(both) == pytest.approx(float((each[0] + 0.4 * each[1]) / 1.4), rel=1e-5)
    first_only = critic_loss(critic, poses, emotion, torch.tensor([1.0, 0.0]))
    assert float(first_only) == pytest.approx(float(each[0]), rel=1e-5)
