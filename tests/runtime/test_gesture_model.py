import numpy as np
import pytest
import torch

from runtime.body_pose import N_POSE_FEATURES
from runtime.models.gesture import (
    GestureConfig,
    GestureGenerator,
    GestureNetwork,
    load_gesture_checkpoint,
    save_gesture_checkpoint,
)
from runtime.step import StreamingGenerator
from tests.harness.step_contract import StepContractSuite

SMALL = GestureConfig(channels=32, dilations=(1, 2), hidden=48, latent=8, style_dim=4, history_frames=3)


def small_network(lookahead: int = 5) -> GestureNetwork:
    torch.manual_seed(0)
    config = GestureConfig(**{**SMALL.__dict__, "lookahead_frames": lookahead})
    return GestureNetwork(config, n_styles=3).eval()


class TestGestureGeneratorTwoSteps(StepContractSuite):
    def make_model(self) -> StreamingGenerator:
        return GestureGenerator(small_network(), n_steps=2)


class TestGestureGeneratorNoLookaheadOneStep(StepContractSuite):
    def make_model(self) -> StreamingGenerator:
        return GestureGenerator(small_network(lookahead=0), n_steps=1)


def test_lookahead_is_at_most_200_ms() -> None:
    generator = GestureGenerator(GestureNetwork(GestureConfig()), n_steps=2)
    assert generator.lookahead_ms <= 200.0 + 1e-9
    assert generator.spec.delay_frames == 5 and generator.spec.inputs_per_step == 4
    with pytest.raises(ValueError, match="lookahead"):
        GestureConfig(lookahead_frames=7)


def test_checkpoint_round_trip_keeps_weights_and_style_names(tmp_path) -> None:  # type: ignore[no-untyped-def]
    net = small_network()
    net.style_presets.normal_()
    path = tmp_path / "gesture.pt"
    save_gesture_checkpoint(path, net, ["a", "b", "c"], {"note": "test"})
    loaded, names, meta = load_gesture_checkpoint(path)
    assert names == ["a", "b", "c"] and meta == {"note": "test"}
    for (k, v), w in zip(net.state_dict().items(), loaded.state_dict().values(), strict=True):
        assert torch.equal(v, w), k


def test_style_encoder_takes_4_to_10_s_clips() -> None:
    net = small_network()
    for frames in (120, 300):
        assert net.embed_style(torch.randn(2, frames, N_POSE_FEATURES)).shape == (2, 4)


def test_seeds_change_the_motion_but_not_its_range() -> None:
    generator = GestureGenerator(small_network(), n_steps=2)
    S = 40
    features = torch.randn(1, 4 * S, 80)
    emotion = torch.zeros(1, S, 8)
    style = torch.zeros(1, S, 4)
    poses = []
    for seed in (0, 1):
        noise = torch.randn(1, S, 8, generator=torch.Generator().manual_seed(seed))
        with torch.no_grad():
            inputs = {"features": features, "emotion": emotion, "style": style}
            poses.append(generator.forward_sequence(inputs, noise)["pose"].numpy())
    assert not np.allclose(poses[0], poses[1])
    assert np.isfinite(poses[0]).all()
