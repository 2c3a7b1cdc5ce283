"""Trains the face network's lip-opening head (`FaceNetwork.audio_opening`) on its frozen encoder.

Half of the false closures on real voices are the sampled mouth's own: on an open vowel the sampler
sometimes draws lips that touch, which the closure head cannot undo (docs/real-voices.md). This head hears
the audio window alone and predicts a quantile of the teacher's lip gap for the frame (pinball loss at
`QUANTILE`, the median): the gap the lips have at least in half the frames with such audio. At run time a
frame whose gap is smaller is opened to it (`apply_opening`), by what the closure head leaves of it (the
least gap times one minus the closure's probability), before the closure head closes bilabials: a likely
bilabial is not opened first, which a closure short of 1 would leave short of sealed. The median was
chosen over the 0.1 and 0.25 quantiles on the validation speaker (benchmarks/closure_offset.py,
docs/real-voices.md).
"""

from __future__ import annotations

import torch
from torch import Tensor

from emostream.runtime.models.face import FaceNetwork, lip_gap
from emostream.training.audio_closure import train_audio_head
from emostream.training.face_data import FaceExample

LEARNING_RATE = 2e-3
QUANTILE = 0.5
SEED_OFFSET = 3  # this stage's random streams differ from the other stages' of the same seed


def pinball(prediction: Tensor, target: Tensor, quantile: float) -> Tensor:
    """The quantile regression loss: minimised where a share `quantile` of the targets lie below."""
    error = target - prediction
    return torch.maximum(quantile * error, (quantile - 1) * error)


def opening_loss(net: FaceNetwork, windows: Tensor, batch: dict[str, Tensor]) -> Tensor:
    """The pinball loss of the predicted least gap against the teacher's lip gap, at `QUANTILE`."""
    target, mask = lip_gap(batch["target"]).reshape(-1), batch["mask"].reshape(-1)
    return (pinball(net.least_gap(windows), target, QUANTILE) * mask).sum() / mask.sum()


def train_audio_opening(
    network: FaceNetwork, examples: list[FaceExample], steps: int, batch_size: int, seed: int
) -> tuple[FaceNetwork, dict]:
    """Returns the network with a trained lip-opening head and a record of the stage."""
    return train_audio_head(network, "audio_opening", examples, steps, batch_size, seed, SEED_OFFSET,
                            "lip-opening head", LEARNING_RATE, opening_loss, quantile=QUANTILE)  # fmt: skip
