"""The gesture trainer's crops and its flow loss, on a synthetic clip whose every frame carries its index."""

import math

import numpy as np
import pytest
import torch

from emostream.runtime.body_pose import N_POSE_FEATURES
from emostream.runtime.models.gesture import FEATURES_PER_FRAME, GestureConfig, GestureNetwork
from emostream.training.gesture_data import GestureClip
from emostream.training.train_gesture import (
    ARM_FEATURES,
    CONTEXT,
    CROP,
    SIDE_FEATURES,
    Batches,
    crop_frames,
    flow_loss,
    one_sidedness,
    poses_at,
    rollout_loss,
    statistics_loss,
    timing_loss,
    window_statistics,
)

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


@pytest.mark.slow
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


def test_sparse_history_lags_in_training_read_the_poses_the_stream_reads() -> None:
    config = GestureConfig(history_frames=4, history_lags=(10, 5, 2, 1))
    batches = Batches([indexed_clip()], config, seed=0)
    batch, back, span = batches(4), batches.back, config.history_span
    assert back == span == 10
    frames = torch.tensor([[0, 5, 60]] * 4)
    history = poses_at(batch["poses"], back, frames, [-lag for lag in config.lags])  # (B, K, N, P)
    net = GestureNetwork(config)
    for b in range(4):
        start = int(batch["poses"][b, back, 0])
        for i, k in enumerate(frames[b].tolist()):
            ring = batch["poses"][b : b + 1, back + k - span : back + k]  # what the stream keeps before frame k
            assert torch.equal(history[b, i], net.history_taps(ring)[0])
            if start + k - span >= 0:  # inside the clip: the poses 10, 5, 2 and 1 frames before
                assert history[b, i, :, 0].tolist() == [start + k - 10, start + k - 5, start + k - 2, start + k - 1]


def test_history_lags_must_match_the_count_and_run_oldest_first() -> None:
    for lags in [(3, 1), (1, 2, 3), (4, 2, 0), (4, 4, 1)]:
        with pytest.raises(ValueError, match="history_lags"):
            GestureConfig(history_frames=3 if len(lags) == 3 else 4, history_lags=lags)


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


def indexed_network() -> GestureNetwork:
    torch.manual_seed(0)
    net = GestureNetwork(GestureConfig(emotion_film=True, emotion_posture=True, emotion_temperature=True))
    net.pose_std.fill_(50.0)  # the indexed poses, normalised to a few units
    return net


def test_the_free_running_loss_trains_every_part() -> None:
    _, batch = indexed_batches()
    net = indexed_network()
    losses = rollout_loss(net, batch, torch.Generator().manual_seed(0))
    assert all(torch.isfinite(v) and v > 0 for v in losses.values())
    sum(losses.values()).backward()
    parts = (next(net.convs[0].parameters()), net.history.weight, net.style_encoder.out.weight, net.out.weight,
             net.emotion_film.weight, net.t_in.weight)  # fmt: skip
    for part in parts:
        assert part.grad is not None and part.grad.abs().sum() > 0


def test_the_free_running_loss_scores_only_whole_crops() -> None:
    _, batch = indexed_batches()
    net = indexed_network().eval()
    back = batch["poses"].shape[1] - CROP

    def loss(b: dict[str, torch.Tensor]) -> float:
        with torch.no_grad():
            return float(sum(rollout_loss(net, b, torch.Generator().manual_seed(0)).values()))

    batch["valid"][0, -10:] = 0  # the first crop runs past its clip's end
    before = loss(batch)
    moved = {k: v.clone() for k, v in batch.items()}
    moved["poses"][0, back:] += 20.0
    assert loss(moved) == pytest.approx(before, rel=1e-6)
    moved["poses"][1, back:] *= 3.0  # a whole crop's target does count
    assert loss(moved) != pytest.approx(before, rel=1e-3)


def test_window_statistics_are_posture_spread_and_change() -> None:
    ramp = torch.arange(5, dtype=torch.float32)[None, :, None].expand(1, 5, 2) * torch.tensor([1.0, -2.0])
    mean, spread, change, change_spread = window_statistics(ramp)
    assert torch.allclose(mean, torch.tensor([[2.0, -4.0]]))
    assert torch.allclose(spread, torch.tensor([[2.0**0.5, 2 * 2.0**0.5]]))
    assert torch.allclose(change, torch.tensor([[1.0, 2.0]]))
    assert torch.allclose(change_spread, torch.zeros(1, 2))


def test_the_jerk_statistics_weigh_a_fast_wobble_that_the_others_barely_see() -> None:
    t = torch.arange(CROP, dtype=torch.float32)
    cubic = (t.double() ** 3 / 6)[None, :, None]  # its third difference is 1 at every frame
    *_, jerk, jerk_spread = window_statistics(cubic, jerk=True)
    assert len(window_statistics(cubic)) == 4
    assert torch.allclose(jerk, torch.ones(1, 1).double()) and torch.allclose(jerk_spread, torch.zeros(1, 1).double())
    stroke = torch.sin(2 * torch.pi * t / 15)[None, :, None].repeat(1, 1, 4)  # 2 Hz at 30 fps
    wobbly = stroke + 0.05 * torch.sin(2 * torch.pi * t / 5)[None, :, None]  # plus a small 6 Hz wobble
    full = torch.ones(1)
    without, with_jerk = (float(statistics_loss(wobbly, stroke, full, jerk=j)) for j in (False, True))
    # Six statistics instead of four: without the wobble's weight the loss would shrink by a third.
    assert with_jerk > 20 * without


def test_the_spread_weight_counts_a_wrong_spread_more_and_a_wrong_posture_less() -> None:
    gen = torch.Generator().manual_seed(1)
    target = torch.randn(8, CROP, 4, generator=gen)
    full = torch.ones(8)
    mean = target.mean(1, keepdim=True)
    too_large = mean + 1.5 * (target - mean)  # gestures too large: spread and change wrong, posture right
    shifted = target + 0.3  # posture wrong only
    assert float(statistics_loss(shifted, target, full, spread_weight=1.0)) == pytest.approx(
        float(statistics_loss(shifted, target, full)), rel=1e-6
    )  # 1 is the unweighted mean of the four statistics
    for made, grows in ((too_large, True), (shifted, False)):
        one, three = (float(statistics_loss(made, target, full, spread_weight=w)) for w in (1.0, 3.0))
        assert (three > 1.1 * one) if grows else (three < 0.8 * one)  # 0.208 vs 0.188; 1.33 vs 1.99


def test_the_paired_statistics_loss_scores_bias_not_spread_between_samples() -> None:
    gen = torch.Generator().manual_seed(0)
    target = torch.randn(64, CROP, 4, generator=gen)
    full = torch.ones(128)
    biased = target.repeat(2, 1, 1) + 0.5  # two identical samples of each crop, off by the same bias
    assert statistics_loss(biased, target.repeat(2, 1, 1), full, paired=True) == pytest.approx(
        float(statistics_loss(biased, target.repeat(2, 1, 1), full)), rel=1e-5
    )
    # Samples placed apart from each other and from the take, but not on average: only one sample pays.
    apart = target.repeat(2, 1, 1) + torch.randn(128, 1, 4, generator=gen)
    one_sample = float(statistics_loss(apart, target.repeat(2, 1, 1), full))
    assert one_sample > 0.05
    assert abs(float(statistics_loss(apart, target.repeat(2, 1, 1), full, paired=True))) < 0.2 * one_sample


def gestures(arms: dict[str, float]) -> torch.Tensor:
    """(8, CROP, P) poses: each named arm's features swing at 1 Hz with that amplitude."""
    swing = torch.sin(2 * math.pi * torch.arange(CROP) / 30)[None, :, None]
    poses = torch.zeros(8, CROP, N_POSE_FEATURES)
    for side, amplitude in arms.items():
        poses[..., SIDE_FEATURES[side]] = amplitude * swing
    return poses


def test_one_sidedness_tells_one_handed_gestures_from_two_half_ones_whichever_the_hand() -> None:
    left, right, both_half = gestures({"left": 1.0}), gestures({"right": 1.0}), gestures({"left": 0.5, "right": 0.5})
    assert torch.allclose(one_sidedness(left), one_sidedness(right))
    assert float(one_sidedness(both_half).max()) < 1e-3 < float(one_sidedness(left).min())
    full = torch.ones(8)
    # The teacher's crops use either hand at random. A model that cannot know which hand may hedge with
    # half a gesture on each arm, or pick a hand and be right half the time. The per-feature statistics
    # make hedging the cheaper (the same arms on every crop: 0.375 against 0.75); with the one-sidedness
    # at weight 2, picking a hand is (0.5 against 0.58).
    teacher = torch.cat([left[:4], right[4:]])
    swapped = torch.cat([right[:4], left[4:]])
    for weight, hedging_cheaper in ((0.0, True), (2.0, False)):
        hedge = float(statistics_loss(both_half, teacher, full, sides_weight=weight))
        guess = 0.5 * float(statistics_loss(swapped, teacher, full, sides_weight=weight))  # right half the time
        assert (hedge < guess) == hedging_cheaper


def test_the_timing_loss_rewards_strokes_where_the_teachers_are() -> None:
    t = torch.arange(CROP, dtype=torch.float32)
    strokes = torch.zeros(1, CROP, N_POSE_FEATURES)
    strokes[..., ARM_FEATURES] = torch.sin(2 * torch.pi * t / 20)[None, :, None]  # a stroke every 2/3 s
    late = torch.roll(strokes, 5, dims=1)  # a quarter period late: pauses where the teacher moves fastest
    fingers = strokes.clone()
    fingers[..., ARM_FEATURES] = 0.0
    fingers[..., -10:] = torch.sin(2 * torch.pi * t / 20)[None, :, None]
    full = torch.ones(1)
    assert float(timing_loss(2 * strokes + 1, strokes, full)) == pytest.approx(0.0, abs=1e-5)  # size is free
    assert float(timing_loss(late, strokes, full)) > 1.5
    assert float(timing_loss(fingers + 0.01 * torch.randn(fingers.shape), strokes, full)) > 0.5  # arms only


def test_a_phrase_plan_is_cropped_with_its_poses_and_both_losses_train_its_head() -> None:
    clip = indexed_clip()
    clip.plans = [(np.arange(CLIP_FRAMES)[:, None] // 20 % 3 * np.array([1, 2]) % 4).astype(np.int8)]
    config = GestureConfig(plan_codes=4)
    batches = Batches([clip], config, seed=0)
    batches.silence = SILENCE
    batch = batches(16)
    frame = batch["poses"][..., 0].long()  # each pose carries its frame's index
    inside = batch["valid"] > 0
    expected = (frame[..., None] // 20 % 3 * torch.tensor([1, 2]) % 4)
    assert torch.equal(batch["plan"][inside], expected[inside]) and (batch["plan"][~inside] == 0).all()
    torch.manual_seed(0)
    net = GestureNetwork(config)
    net.pose_std.fill_(50.0)
    gen = torch.Generator().manual_seed(0)
    (flow_loss(net, batch, gen) + sum(rollout_loss(net, batch, gen).values())).backward()
    for part in (net.plan_in.weight, net.plan_head[0].weight):
        assert part.grad is not None and part.grad.abs().sum() > 0
