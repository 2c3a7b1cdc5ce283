"""Trains the face network's lip-opening head (`FaceNetwork.audio_opening`) on its frozen encoder.

Half of the false closures on real voices are the sampled mouth's own: on an open vowel the sampler
sometimes draws lips that touch, which the closure head cannot undo (docs/real-voices.md). This head hears
the audio window alone and predicts a low quantile of the teacher's lip gap for the frame (pinball loss at
`QUANTILE`): the gap the lips have at least in nine frames of ten with such audio. At run time a frame
whose gap is smaller is opened to it (`apply_opening`), before the closure head closes bilabials. A low
quantile rather than the mean, so that quiet or ambiguous audio asks for little and the sampler's variety
is left alone where the audio allows it.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from emostream.runtime.models.face import FaceNetwork, lip_gap, lookahead_timing
from emostream.training.audio_closure import with_fresh_head
from emostream.training.face_data import FaceExample
from emostream.training.optimise import run_recorded_stage, train_only
from emostream.training.train_face import frame_windows, random_batch

LEARNING_RATE = 2e-3
QUANTILE = 0.1
SEED_OFFSET = 3  # this stage's random streams differ from the other stages' of the same seed


def pinball(prediction: Tensor, target: Tensor, quantile: float) -> Tensor:
    """The quantile regression loss: minimised where a share `quantile` of the targets lie below."""
    error = target - prediction
    return torch.maximum(quantile * error, (quantile - 1) * error)


def train_audio_opening(
    network: FaceNetwork, examples: list[FaceExample], steps: int, batch_size: int, seed: int
) -> tuple[FaceNetwork, dict]:
    """Returns the network with a trained lip-opening head and a record of the stage."""
    torch.manual_seed(seed + SEED_OFFSET)  # the head's initial weights
    net = with_fresh_head(network, "audio_opening")
    head = net.audio_opening
    assert head is not None
    params = train_only(net, head)
    rng = np.random.default_rng(seed + SEED_OFFSET)

    def loss() -> Tensor:
        batch = random_batch(examples, rng, batch_size)
        B, K = batch["mask"].shape
        delay, _ = lookahead_timing(int(batch["lookahead"]))
        with torch.no_grad():
            encoded = net.encode_sequence(batch["features"])
            windows = frame_windows(encoded, K, delay, net.window)
        target, mask = lip_gap(batch["target"]), batch["mask"]
        return (pinball(net.least_gap(windows.reshape(B * K, *windows.shape[2:])).reshape(B, K), target,
                        QUANTILE) * mask).sum() / mask.sum()  # fmt: skip

    record = run_recorded_stage(
        "lip-opening head", params, loss, steps, LEARNING_RATE, quantile=QUANTILE, batch_size=batch_size, seed=seed
    )
    return net.eval(), record
