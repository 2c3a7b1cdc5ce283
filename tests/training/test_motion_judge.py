"""The temporal emotion judge reads what the window statistics cannot: how joints move together in time."""

import numpy as np
import pytest
import torch

from emostream.runtime.rigs import SMPLX_JOINTS
from emostream.training.gesture_evaluation import window_features
from emostream.training.motion_judge import JUDGE_JOINTS, STRIDE, WINDOW, judge, judge_windows, train_judge

LEFT, RIGHT = SMPLX_JOINTS.index("left_wrist"), SMPLX_JOINTS.index("right_wrist")


def waving(frames: int, together: bool, rng: np.random.Generator, rate: float | None = None) -> np.ndarray:
    """(frames, 55, 3) positions: both wrists bob at the same random rate, in step or in opposition; each
    wrist alone moves the same way in both cases."""
    pos = np.zeros((frames, 55, 3), np.float32)
    pos[:, :, 0] = np.arange(55) * 0.01  # joints apart, so the pelvis-relative offsets are not all zero
    rate, phase = rate or rng.uniform(0.5, 2.0), rng.uniform(0, 2 * np.pi)
    t = np.arange(frames) / 30
    pos[:, LEFT, 1] += 0.1 * np.sin(2 * np.pi * rate * t + phase)
    pos[:, RIGHT, 1] += 0.1 * np.sin(2 * np.pi * rate * t + phase + (0 if together else np.pi))
    return pos


def test_judge_windows_are_pelvis_relative_and_read_at_15_fps() -> None:
    pos = np.random.default_rng(0).normal(size=(300, 55, 3)).astype(np.float32)
    windows = judge_windows(pos)
    assert windows.shape == (2, 3 * len(JUDGE_JOINTS), WINDOW // STRIDE)
    assert len(judge_windows(pos, hop=15)) == 13
    moved = pos + np.array([1.0, 2.0, 3.0], np.float32)  # the whole body stepping aside changes nothing
    assert np.allclose(judge_windows(moved), windows, atol=1e-5)
    assert judge_windows(pos[:100]).shape[0] == 0


@pytest.mark.parametrize("centred", [False, True])
@pytest.mark.slow
def test_the_judge_tells_motions_apart_that_have_the_same_window_statistics(centred: bool) -> None:
    rng = np.random.default_rng(0)
    takes = [(waving(240, together, rng), int(together)) for together in [False, True] * 20]
    # Per joint, the two kinds have the same statistics; only their timing relative to each other differs.
    apart, together = (window_features(waving(240, k, rng, rate=1.0)[:, [LEFT, RIGHT], 1]) for k in (False, True))
    assert np.allclose(apart, together, atol=0.01)
    windows = [(judge_windows(p, hop=15), label) for p, label in takes]
    x = np.concatenate([w for w, _ in windows])
    y = np.concatenate([[label] * len(w) for w, label in windows])
    model = train_judge(x, y, 2, steps=150, centred=centred)
    test = [(waving(240, together, rng), int(together)) for together in [False, True] * 5]
    hits = np.concatenate([judge(model, p) == label for p, label in test])
    assert hits.mean() >= 0.9


def test_the_centred_judge_does_not_see_posture() -> None:
    rng = np.random.default_rng(1)
    windows = np.concatenate([judge_windows(waving(240, k, rng), hop=15) for k in (False, True)])
    model = train_judge(windows, np.repeat([0, 1], len(windows) // 2), 2, steps=5, centred=True)
    held = torch.from_numpy(windows[:4])
    with torch.no_grad():
        assert torch.allclose(model(held), model(held + 0.3), atol=1e-5)  # a whole window's pose moved
