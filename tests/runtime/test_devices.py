"""The shipped generators run wholly on whatever device their network is on.

The server moves each network to its device when it builds the first backend, then makes generators for
other sampler step counts from the moved network; a GPU server once failed at start because those were
built with CPU tensors. The meta device (shapes, no values) raises the same mixed-device errors as a GPU,
so these checks need none.
"""

import pytest
import torch

from runtime.animate import default_face_checkpoint, default_gesture_checkpoint
from runtime.models.face import FaceGenerator, load_checkpoint
from runtime.models.gesture import GestureGenerator, load_gesture_checkpoint
from runtime.step import StreamingGenerator

META = torch.device("meta")


def step_on_meta(generator: StreamingGenerator, batch: int = 3) -> None:
    spec = generator.spec
    inputs = {t.name: torch.zeros((batch, *t.shape), device=META) for t in spec.inputs}
    state = generator.init_state(batch, META)
    reset = torch.ones(batch, dtype=torch.bool, device=META)
    with torch.no_grad():
        outputs, state = generator.step(inputs, state, torch.zeros((batch, *spec.noise.shape), device=META),
                                        reset, torch.ones(batch, dtype=torch.bool, device=META))  # fmt: skip
    assert all(v.device == META for v in [*outputs.values(), *state.values()])


@pytest.mark.parametrize("steps", [1, 2])
def test_face_generators_made_from_a_moved_network_step_on_its_device(steps: int) -> None:
    network, _ = load_checkpoint(default_face_checkpoint())
    generator = FaceGenerator(network.to(META), lookahead=7, n_steps=steps)
    assert generator.time_terms.device == META
    step_on_meta(generator.to(META))


@pytest.mark.parametrize("steps", [1, 2])
def test_gesture_generators_made_from_a_moved_network_step_on_its_device(steps: int) -> None:
    network, _, _ = load_gesture_checkpoint(default_gesture_checkpoint())
    generator = GestureGenerator(network.to(META), n_steps=steps)
    assert generator.time_terms.device == META
    step_on_meta(generator.to(META))
