"""Trains the face network's lip-shape head (`FaceNetwork.lip_shape`) on its frozen encoder.

The sampled mouth all but leaves out the lips' rounding and tuck: on held-out TTS voices, frames of the
rounded visemes (oh, ou) had mouthFunnel and mouthPucker at 0.07 against the teacher's 0.36 and 0.20 to
0.46, and the labiodental tuck (mouthRollLower in FF) at 0.19 against 0.5, on training voices alike, so a
lip-reader read oh and ou in under a tenth of their frames (docs/real-voices.md). Fed its own unrounded
past, the flow keeps to it: with the history zeroed the same network rounds twice as much. This head hears
the audio window and the emotion, not the history, and sets the viseme channels other than the jaw and
the bilabial press (`LIP_SHAPES`: rounding, tuck, spread, parting, tongue); at run time they replace the
sampled ones, before the lips are opened and closed (`FaceNetwork.finish`). The teacher's lip shapes
follow the phones deterministically (scaled by an emotion's articulation), so a deterministic head loses
no variety the teacher has. Older checkpoints' head regresses the shapes (squared error).

The head names the viseme (`VisemeTemplates`, `lip_visemes` in the config): its logits are trained by
cross-entropy on the teacher's viseme of each frame, and one template of lip shapes per viseme, with a
gain and an offset per emotion, by the squared error of the posterior's mix of them (the posterior held
fixed there, so the classifier learns only to name visemes). At run time the posterior is sharpened
first (LIP_SHARPNESS): where the audio leaves a shape in doubt a regression averaged the candidates into
a mouth a lip-reader could not read (oh and ou at two thirds of the teacher's rounding); the head now
makes the likeliest one (docs/real-voices.md).
"""

from __future__ import annotations

import torch
from torch import Tensor

from emostream.runtime.models.face import LIP_SHAPES, LIP_SHARPNESS, FaceNetwork, VisemeTemplates
from emostream.runtime.rigs import FACE_CHANNELS
from emostream.training.audio_closure import train_audio_head
from emostream.training.face_data import FaceExample
from emostream.training.visemes import VISEMES

LEARNING_RATE = 2e-3
SEED_OFFSET = 4  # this stage's random streams differ from the other stages' of the same seed


def shape_error(predicted: Tensor, batch: dict[str, Tensor], channels: list[int]) -> Tensor:
    """Squared error of predicted lip shapes (B * K, len(channels)) against the teacher's face channels
    `channels`, summed over the channels, mean over the batch's frames."""
    B, K = batch["mask"].shape
    target = batch["target"][..., channels].reshape(B * K, -1)
    mask = batch["mask"].reshape(-1, 1)
    return (((predicted - target) ** 2) * mask).sum() / mask.sum()


def naming_error(logits: Tensor, batch: dict[str, Tensor]) -> Tensor:
    """Cross-entropy of (B * K, n_visemes) logits against the teacher's viseme of each frame, mean over the
    batch's frames."""
    mask = batch["mask"].reshape(-1)
    naming = torch.nn.functional.cross_entropy(logits, batch["visemes"].reshape(-1), reduction="none")
    return (naming * mask).sum() / mask.sum()


def lip_shape_loss(net: FaceNetwork, windows: Tensor, batch: dict[str, Tensor]) -> Tensor:
    """`shape_error` of the network's lip-shape head; for the viseme head, plus its classifier's
    cross-entropy on the teacher's visemes."""
    B, K = batch["mask"].shape
    emotion = batch["emotion"][:, None].expand(B, K, -1).reshape(B * K, -1)
    heard = torch.cat([windows.flatten(1), emotion], dim=1)
    channels = [FACE_CHANNELS.index(name) for name in net.config.lip_shapes]
    head = net.lip_shape
    assert head is not None
    if not isinstance(head, VisemeTemplates):
        return shape_error(head(heard), batch, channels)  # unclamped: gradients at 0 and 1
    logits = head.classify(heard)
    return naming_error(logits, batch) + shape_error(head.mix(torch.softmax(logits, dim=-1).detach(), emotion), batch,
                                                     channels)  # fmt: skip


def train_lip_shape(
    network: FaceNetwork, examples: list[FaceExample], steps: int, batch_size: int, seed: int
) -> tuple[FaceNetwork, dict]:
    """Returns the network with a trained lip-shape head and a record of the stage."""
    return train_audio_head(network, "lip_shape", examples, steps, batch_size, seed, SEED_OFFSET, "lip-shape head",
                            LEARNING_RATE, lip_shape_loss, visemes=VISEMES, sharpness=LIP_SHARPNESS,
                            config={"lip_shapes": LIP_SHAPES, "lip_visemes": len(VISEMES)})  # fmt: skip
