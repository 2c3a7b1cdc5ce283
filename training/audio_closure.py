"""Trains the face network's audio-only closure head (`FaceNetwork.audio_closure`) on its frozen encoder.

The closure head trained with the flow hears the emotion and the model's own history as well as the
audio, and on real voices it closes fewer bilabials in surprised, disgusted and fear than in neutral
(docs/real-voices.md). This head hears the audio window alone (the same encodings, the lookahead's
future included), so no emotion can talk it out of a closure. Its loss is the same cross-entropy against
the teacher's closure curve, with closed frames weighted up for recall: a missed bilabial is what a
viewer sees; a lip press on an open vowel is rarer than a miss in the teacher's curves.

Most false closures sit on the short vowel beside a bilabial, one frame early or late (`emostream bench
false-closures`), so the target is the teacher's curve eroded by a frame at each edge of a closed run that
is long enough to keep a core; a short run keeps its frames. Erosion alone makes the head close less
often, so a fixed offset on its logit (`LOGIT_OFFSET`) gives the recall back; docs/real-voices.md has
the figures with and without each.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

import numpy as np
import torch
from torch import Tensor

from emostream.runtime.models.face import FaceNetwork, lookahead_timing
from emostream.training.face_data import FaceExample
from emostream.training.optimise import run_recorded_stage, train_only
from emostream.training.train_face import frame_windows, random_batch

LEARNING_RATE = 2e-3
CLOSED_WEIGHT = 2.0  # weight of a fully closed target frame against an open one
SEED_OFFSET = 2  # this stage's random streams differ from the training's and the distillation's
LOGIT_OFFSET = 1.0  # added to the trained head's logit: the recall the eroded target takes away
# The head hears the band below 4 kHz only, in training as in serving: above it real voices differ most from
# TTS ones, and misled it (docs/real-voices.md).
TELEPHONE_BAND = True


def with_fresh_head(network: FaceNetwork, head: str, **config: Any) -> FaceNetwork:
    """A copy of `network` with a freshly initialised head `head` (the module's name: "audio_closure",
    "audio_opening", "lip_shape"), made by the FaceConfig fields `config` (by default the flag named as the
    head); one it had is replaced."""
    out = FaceNetwork(replace(network.config, **(config or {head: True})))
    kept = {k: v for k, v in network.state_dict().items() if not k.startswith(f"{head}.")}
    missing, _ = out.load_state_dict(kept, strict=False)
    assert all(name.startswith(f"{head}.") for name in missing), missing
    return out


def train_audio_head(
    network: FaceNetwork, head: str, examples: list[FaceExample], steps: int, batch_size: int, seed: int,
    seed_offset: int, stage: str, learning_rate: float,
    frame_loss: Callable[[FaceNetwork, Tensor, dict[str, Tensor]], Tensor], config: dict[str, Any] | None = None,
    closure_pass: bool = False, **facts: object,
) -> tuple[FaceNetwork, dict]:  # fmt: skip
    """Trains a fresh head `head` that hears the audio window (and what `frame_loss` adds from the batch), on
    the frozen encoder: `frame_loss` takes the network, every frame's window (B * K, W, C) and the batch;
    `config` as for `with_fresh_head`; with `closure_pass` the windows are of the closure head's own encoder
    pass where the network has one (`FaceNetwork.closure_features`). Returns the network and a record of
    the stage."""
    torch.manual_seed(seed + seed_offset)  # the head's initial weights
    net = with_fresh_head(network, head, **(config or {}))
    params = train_only(net, getattr(net, head))
    rng = np.random.default_rng(seed + seed_offset)

    def loss() -> Tensor:
        batch = random_batch(examples, rng, batch_size)
        B, K = batch["mask"].shape
        delay, _ = lookahead_timing(int(batch["lookahead"]))
        with torch.no_grad():
            heard = net.closure_features(batch["features"]) if closure_pass else None
            encoded = net.encode_sequence(batch["features"] if heard is None else heard)
            windows = frame_windows(encoded, K, delay, net.window)
        return frame_loss(net, windows.reshape(B * K, *windows.shape[2:]), batch)

    record = run_recorded_stage(stage, params, loss, steps, learning_rate, **facts, batch_size=batch_size, seed=seed)
    return net.eval(), record


def eroded_closure(closure: Tensor) -> Tensor:
    """The closure curves (B, K) with each closed run one frame shorter at both ends, where the run is long
    enough (over 2 frames) for a closed core to survive; shorter runs are left as they are."""
    curves = closure[:, None]
    eroded = -torch.nn.functional.max_pool1d(-curves, 3, 1, 1)  # the least of each frame and its neighbours
    survives = torch.nn.functional.max_pool1d(eroded, 5, 1, 2) > 0.5  # a closed core within two frames
    return torch.where(survives, eroded, curves)[:, 0]


def closure_loss(net: FaceNetwork, windows: Tensor, batch: dict[str, Tensor]) -> Tensor:
    """Cross-entropy against the teacher's eroded closure curve, closed frames weighted `CLOSED_WEIGHT`."""
    assert net.audio_closure is not None
    target, mask = eroded_closure(batch["closure"]).reshape(-1, 1), batch["mask"].reshape(-1, 1)
    weight = mask * (1 + (CLOSED_WEIGHT - 1) * target)
    logits = net.audio_closure(windows.flatten(1))
    return torch.nn.functional.binary_cross_entropy_with_logits(logits, target, weight=weight, reduction="sum") / (
        mask.sum()
    )


def train_audio_closure(
    network: FaceNetwork, examples: list[FaceExample], steps: int, batch_size: int, seed: int
) -> tuple[FaceNetwork, dict]:
    """Returns the network with a trained audio-only closure head (its logit offset by `LOGIT_OFFSET`) and a
    record of the stage."""
    net, record = train_audio_head(network, "audio_closure", examples, steps, batch_size, seed, SEED_OFFSET,
                                   "audio closure head", LEARNING_RATE, closure_loss, closed_weight=CLOSED_WEIGHT,
                                   target="teacher closure eroded one frame each side",
                                   logit_offset=LOGIT_OFFSET, telephone_band=TELEPHONE_BAND,
                                   config={"audio_closure": True, "closure_telephone_band": TELEPHONE_BAND},
                                   closure_pass=True)  # fmt: skip
    assert net.audio_closure is not None
    output = net.audio_closure[-1]
    assert isinstance(output, torch.nn.Linear)
    with torch.no_grad():
        output.bias += LOGIT_OFFSET
    return net, record
