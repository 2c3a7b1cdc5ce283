"""Distils the face network's one-step sampler from its two-step Euler sampler (a stage after training:
training/face_stages.py).

One Euler step from noise lands on the conditional mean of the flow, which mixes open and closed mouths
into a half-open gape (`docs/real-voices.md`). Distillation (as in rectified-flow distillation, Liu et al.
2023, "Flow Straight and Fast") teaches a small map the two-step sampler's result for the same noise and
condition: the frozen network gives both the condition and the target, only `OneStepSampler` learns, so the
two- and four-step samplers stay exactly as they were.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import torch
from torch import Tensor

from emostream.runtime.models.face import FaceGenerator, FaceNetwork
from emostream.runtime.rigs import FACE_CHANNELS
from emostream.training.face_data import FaceExample
from emostream.training.optimise import run_recorded_stage, train_only
from emostream.training.teacher_face import MOUTH_CHANNELS
from emostream.training.train_face import MOUTH_WEIGHT, frame_conditions, random_batch

TEACHER_STEPS = 2  # the sampler the one-step map learns to repeat: the server's default
LEARNING_RATE = 1e-3
SEED_OFFSET = 1  # the distillation's random streams differ from the training's of the same seed


def with_one_step(network: FaceNetwork) -> FaceNetwork:
    """A copy of `network` that also carries a one-step sampler, started as its one-step Euler sampler."""
    student = FaceNetwork(replace(network.config, one_step=True))
    student.load_state_dict(network.state_dict(), strict=False)
    assert student.one_step is not None
    student.one_step.start_from(student)
    return student


def distil(
    network: FaceNetwork, examples: list[FaceExample], steps: int, batch_size: int, seed: int
) -> tuple[FaceNetwork, dict]:
    """Returns the network with a distilled one-step sampler and a record of the stage."""
    net = with_one_step(network)
    sampler = net.one_step
    assert sampler is not None
    params = train_only(net, sampler)
    rng = np.random.default_rng(seed + SEED_OFFSET)
    gen = torch.Generator().manual_seed(seed + SEED_OFFSET)
    teacher = FaceGenerator(net, n_steps=TEACHER_STEPS)  # its time terms and noise scale
    weights = torch.ones(len(FACE_CHANNELS))
    weights[[FACE_CHANNELS.index(n) for n in MOUTH_CHANNELS]] = MOUTH_WEIGHT

    def loss() -> Tensor:
        batch = random_batch(examples, rng, batch_size)
        with torch.no_grad():
            cond, _ = frame_conditions(net, batch, gen)
            noise = torch.randn(cond.shape[0], net.config.n_channels, generator=gen) * teacher.noise_scale
            target = net.integrate(noise, cond, teacher.time_terms)
        m = batch["mask"].reshape(-1, 1)
        error = (sampler(noise, cond) - target) ** 2 * weights
        return (error * m).sum() / (m.sum() * weights.sum())

    record = run_recorded_stage(
        "distil one step",
        params,
        loss,
        steps,
        LEARNING_RATE,
        teacher_steps=TEACHER_STEPS,
        batch_size=batch_size,
        seed=seed,
    )
    return net.eval(), record
