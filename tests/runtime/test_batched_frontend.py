import numpy as np
import pytest
import torch

from emostream.runtime.audio import SUPPORTED_RATES_HZ, LogMelFrontEnd
from emostream.runtime.audio_table import INPUT_RING
from emostream.runtime.batched_frontend import MAX_HOPS_PER_TICK, MODEL_RING, BatchedLogMel


@pytest.mark.parametrize("rate", SUPPORTED_RATES_HZ)
def test_streams_batched_together_equal_the_reference_front_end(rate: int) -> None:
    """Three streams of one rate, their hops computed a tick at a time in one batch (mixed phases and
    ring positions, the model rings wrapping), give the float64 reference's log-mel frames."""
    front_end = BatchedLogMel()
    rng = np.random.default_rng(rate)
    seconds = 0.9
    audio = [(0.3 * rng.standard_normal(int(seconds * rate)) * np.sin(np.linspace(0, 9 + k, int(seconds * rate))))
             .astype(np.float32) for k in range(3)]  # fmt: skip
    inputs = torch.zeros(3, INPUT_RING.row)
    for k, pcm in enumerate(audio):
        INPUT_RING.write(inputs[k].numpy(), 0, pcm)
    model = torch.zeros(3, MODEL_RING.row)
    plan = front_end.plans[rate]
    total = int(plan.hops_ready(np.array([a.size for a in audio])).min())
    made = [[] for _ in range(3)]
    offsets = [0, 5, 11]  # the streams are at different hops in every tick
    done = [0, 0, 0]
    while min(done) < total:
        slots, hops = [], []
        for k in range(3):
            end = min(total, done[k] + MAX_HOPS_PER_TICK, offsets[k] + done[k] + 7)
            slots += [k] * (end - done[k])
            hops += list(range(done[k], end))
            done[k] = end
        slots_array, hops_array = np.array(slots), np.array(hops)
        front_end.resample_hops(inputs, model, rate, slots_array, hops_array)
        for k, frame in zip(slots, front_end.frames(model, slots_array, hops_array).numpy(), strict=True):
            made[k].append(frame)
    for k, pcm in enumerate(audio):
        reference = LogMelFrontEnd(rate).offline(pcm)[:total]
        np.testing.assert_allclose(np.stack(made[k]), reference, atol=2e-3)
