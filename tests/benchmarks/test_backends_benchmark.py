from pathlib import Path

import torch

from emostream.benchmarks.backends import plot, time_steps
from emostream.engines.backend import EagerBackend
from emostream.runtime.models.conv_stack import CausalConvStack


def test_step_timing_carries_state_and_the_plot_is_written(tmp_path: Path) -> None:
    torch.manual_seed(0)
    times = time_steps(EagerBackend(CausalConvStack()), batch=4, n_steps=10)
    assert times.shape == (10,) and (times > 0).all()
    rows = [{"batch": b, "ms_per_step": 0.1 * b, "frames_per_s": 10_000.0} for b in (1, 8)]
    result = {"backends": {"eager": rows}, "device": "cpu", "threads": 1, "model": "body (gestures), 2 sampler steps"}
    plot(result, str(tmp_path / "b.png"))
    assert (tmp_path / "b.png").stat().st_size > 5_000
