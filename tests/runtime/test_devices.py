"""The shipped generators run wholly on whatever device their network is on.

The server moves each network to its device when it builds the first backend, then makes generators for
other sampler step counts from the moved network; a GPU server once failed at start because those were
built with CPU tensors. The meta device (shapes, no values) raises the same mixed-device errors as a GPU,
so these checks need none; stepping there is the step-contract harness's own device check.
"""

import pytest
import torch

from emostream.runtime.assets import default_face_checkpoint, default_gesture_checkpoint
from emostream.runtime.models.face import FaceGenerator, load_checkpoint
from emostream.runtime.models.gesture import GestureGenerator, load_gesture_checkpoint
from tests.harness.step_contract import StepContractSuite

META = torch.device("meta")


@pytest.mark.parametrize("steps", [1, 2])
def test_face_generators_made_from_a_moved_network_step_on_its_device(steps: int) -> None:
    network, _ = load_checkpoint(default_face_checkpoint())
    generator = FaceGenerator(network.to(META), lookahead=7, n_steps=steps)
    assert generator.time_terms.device == META
    StepContractSuite().test_a_step_stays_on_the_device_of_its_inputs(generator.eval())


@pytest.mark.parametrize("steps", [1, 2])
def test_gesture_generators_made_from_a_moved_network_step_on_its_device(steps: int) -> None:
    network, _, _ = load_gesture_checkpoint(default_gesture_checkpoint())
    generator = GestureGenerator(network.to(META), n_steps=steps)
    assert generator.time_terms.device == META
    StepContractSuite().test_a_step_stays_on_the_device_of_its_inputs(generator.eval())
