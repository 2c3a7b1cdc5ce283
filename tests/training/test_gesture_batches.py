"""The gesture trainer's crops and its flow loss, on a synthetic clip whose every frame carries its index."""

import numpy as np
import pytest
import torch

from runtime.body_pose import N_POSE_FEATURES
from runtime.models.gesture import FEATURES_PER_FRAME, GestureConfig, GestureNetwork
from training.gesture_data import GestureClip
from training.train_gesture import CONTEXT, CROP, Batches, crop_frames, flow_loss

SILENCE = -5.0
CLIP_FRAMES = 200


def indexed_clip() -> GestureClip:
    """Audio and motion whose values are their body frame's index (4 log-mel frames per body frame)."""
    frames = np.arange(CLIP_FRAMES, dtype=np.float32)
    features = np.repeat(frames, FEATURES_PER_FRAME)[:, None].repeat(80, axis=1).astype(np.float16)
    poses = np.repeat(frames[:, None], N_POSE_FEATURES, axis=1).astype(np.float16)
    emotion = np.eye(8, dtype=np.float32)[3]
    return GestureClip([features], [poses], [0], [emotion], [2], "test-voice")


def indexed_batches() -> tuple[Batches, dict[str, torch.Tensor]]:
    batches = Batches([indexed_clip()], GestureConfig(), seed=0)
    batches.silence = SILENCE  # the clip's own minimum is frame 0's index, which must stay readable
    return batches, batches(16)


def test_crops_keep_audio_and_motion_in_step() -> None:
    batches, batch = indexed_batches()
    back, D = batches.back, GestureConfig().lookahead_frames
    for b in range(16):
        start = int(batch["poses"][b, back, 0])
        # Audio: CONTEXT frames before the crop, the crop, then the lookahead; silence outside the clip.
        audio = batch["features"][b].numpy()
        assert audio.shape == (CONTEXT + CROP + D, FEATURES_PER_FRAME, 80)
        for k in range(audio.shape[0]):
            j = start - CONTEXT + k
            expected = j if 0 <= j < CLIP_FRAMES else SILENCE
            assert audio[k] == pytest.approx(np.full((FEATURES_PER_FRAME, 80), expected), abs=1e-3), (b, k)
        # Motion: the frames before the crop as history, zero and invalid before the clip's start.
        poses, valid = batch["poses"][b, :, 0].numpy(), batch["valid"][b].numpy()
        for i in range(back + CROP):
            j = start - back + i
            assert valid[i] == (0 <= j < CLIP_FRAMES)
            assert poses[i] == (j if 0 <= j < CLIP_FRAMES else 0)
    assert (batch["poses"][:, back, 0] < CONTEXT).any()  # some crops start near the clip's start


def test_crop_frames_picks_each_sequences_own_frames() -> None:
    x = torch.arange(2 * CROP * 3, dtype=torch.float32).reshape(2, CROP, 3)
    picked = torch.tensor([[5, 0, CROP - 1], [7, 7, 1]])
    assert torch.equal(crop_frames(x, picked), torch.stack([x[0, [5, 0, CROP - 1]], x[1, [7, 7, 1]]]))
    windows = x[:, :, None, :].expand(2, CROP, 4, 3)
    assert torch.equal(crop_frames(windows, picked)[1, 2], windows[1, 1])


@pytest.mark.parametrize("frames", [16, CROP])
def test_the_flow_loss_on_a_sample_of_frames_trains_every_part(frames: int) -> None:
    _, batch = indexed_batches()
    torch.manual_seed(0)
    net = GestureNetwork(GestureConfig(emotion_film=True))
    net.pose_std.fill_(50.0)  # the indexed poses, normalised to a few units
    loss = flow_loss(net, batch, torch.Generator().manual_seed(0), frames=frames)
    assert torch.isfinite(loss)
    loss.backward()
    for part in (next(net.convs[0].parameters()), net.history.weight, net.style_encoder.out.weight, net.out.weight):
        assert part.grad is not None and part.grad.abs().sum() > 0
