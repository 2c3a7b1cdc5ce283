"""The audio closure head's training target: the teacher's closed runs, one frame shorter at each end."""

import torch

from emostream.training.audio_closure import eroded_closure


def test_long_closed_runs_lose_one_frame_at_each_end_and_short_runs_are_kept() -> None:
    curves = torch.tensor(
        [
            [0, 1, 1, 1, 1, 1, 0, 0, 1, 1, 0, 0],  # a five-frame run and a two-frame run
            [0, 0, 1, 0, 0, 1, 1, 1, 0, 0, 0, 0],  # a one-frame run and a three-frame run
        ],
        dtype=torch.float32,
    )
    expected = torch.tensor(
        [
            [0, 0, 1, 1, 1, 0, 0, 0, 1, 1, 0, 0],
            [0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0],
        ],
        dtype=torch.float32,
    )
    assert torch.equal(eroded_closure(curves), expected)


def test_soft_edges_erode_to_the_lesser_neighbour_and_a_run_at_the_clip_end_keeps_its_last_frame() -> None:
    curves = torch.tensor([[0.0, 0.4, 1.0, 1.0, 1.0, 1.0]])
    eroded = eroded_closure(curves)
    # The run touches the clip's end: the edge past it is unknown, so the last frame stays closed.
    assert torch.allclose(eroded, torch.tensor([[0.0, 0.0, 0.4, 1.0, 1.0, 1.0]]))
