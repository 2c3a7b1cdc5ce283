"""Trains the face network's lip-shape head (`FaceNetwork.lip_shape`) on its frozen encoder.

The sampled mouth all but leaves out the lips' rounding and tuck: on held-out TTS voices, frames of the
rounded visemes (oh, ou) had mouthFunnel and mouthPucker at 0.07 against the teacher's 0.36 and 0.20 to
0.46, and the labiodental tuck (mouthRollLower in FF) at 0.19 against 0.5, on training voices alike, so a
lip-reader read oh and ou in under a tenth of their frames (docs/real-voices.md). Fed its own unrounded
past, the flow keeps to it: with the history zeroed the same network rounds twice as much. This head hears
the audio window and the emotion, not the history, and regresses the teacher's weights of the viseme
channels other than the jaw and the bilabial press (`LIP_SHAPES`: rounding, tuck, spread, parting,
tongue; squared error); at run time they replace the sampled ones, before the lips are opened and closed
(`FaceNetwork.finish`). The teacher's lip shapes follow the phones deterministically (scaled by an
emotion's articulation), so a regression loses no variety the teacher has.
"""

from __future__ import annotations

import torch
from torch import Tensor

from emostream.runtime.models.face import LIP_SHAPES, FaceNetwork
from emostream.runtime.rigs import FACE_CHANNELS
from emostream.training.audio_closure import train_audio_head
from emostream.training.face_data import FaceExample

LEARNING_RATE = 2e-3
SEED_OFFSET = 4  # this stage's random streams differ from the other stages' of the same seed


def shape_error(predicted: Tensor, batch: dict[str, Tensor], channels: list[int]) -> Tensor:
    """Squared error of predicted lip shapes (B * K, len(channels)) against the teacher's face channels
    `channels`, summed over the channels, mean over the batch's frames."""
    B, K = batch["mask"].shape
    target = batch["target"][..., channels].reshape(B * K, -1)
    mask = batch["mask"].reshape(-1, 1)
    return (((predicted - target) ** 2) * mask).sum() / mask.sum()


def lip_shape_loss(net: FaceNetwork, windows: Tensor, batch: dict[str, Tensor]) -> Tensor:
    """`shape_error` of the network's lip-shape head."""
    B, K = batch["mask"].shape
    emotion = batch["emotion"][:, None].expand(B, K, -1).reshape(B * K, -1)
    assert net.lip_shape is not None
    predicted = net.lip_shape(torch.cat([windows.flatten(1), emotion], dim=1))  # unclamped: gradients at 0 and 1
    return shape_error(predicted, batch, [FACE_CHANNELS.index(name) for name in net.config.lip_shapes])


def train_lip_shape(
    network: FaceNetwork, examples: list[FaceExample], steps: int, batch_size: int, seed: int
) -> tuple[FaceNetwork, dict]:
    """Returns the network with a trained lip-shape head and a record of the stage."""
    return train_audio_head(network, "lip_shape", examples, steps, batch_size, seed, SEED_OFFSET, "lip-shape head",
                            LEARNING_RATE, lip_shape_loss, config={"lip_shapes": LIP_SHAPES})  # fmt: skip
