from typing import ClassVar

import numpy as np
import pytest
import torch
from torch import Tensor

from emostream.runtime.body_pose import N_POSE_FEATURES
from emostream.runtime.models.gesture import (
    GestureConfig,
    GestureGenerator,
    GestureNetwork,
    load_gesture_checkpoint,
    save_gesture_checkpoint,
)
from emostream.runtime.step import StreamingGenerator
from tests.harness.step_contract import StepContractSuite

SMALL = GestureConfig(channels=32, dilations=(1, 2), hidden=48, latent=8, style_dim=4, history_frames=3)


def small_network(lookahead: int = 5, emotion_dropout: float = 0.0, posture: bool = False, film: bool = False,
                  temperatures: bool = False, history_lags: tuple[int, ...] = (), plan_codes: int = 0
                  ) -> GestureNetwork:  # fmt: skip
    torch.manual_seed(0)
    config = GestureConfig(**{**SMALL.__dict__, "lookahead_frames": lookahead, "emotion_dropout": emotion_dropout,
                              "emotion_posture": posture, "emotion_film": film,
                              "emotion_temperature": temperatures, "history_lags": history_lags,
                              "plan_codes": plan_codes})  # fmt: skip
    net = GestureNetwork(config, n_styles=3).eval()
    with torch.no_grad():  # trained ones are not zero
        if net.guidable:
            net.null_emotion.normal_()
        if posture:
            net.emotion_offsets.normal_()
        if film:
            net.emotion_film.weight.normal_(std=0.3)
        if temperatures:
            net.emotion_temperatures.copy_(torch.linspace(0.2, 1.0, 8))
        if plan_codes:  # a plan head that changes its mind often, so that the draws matter
            net.plan_head[-1].weight.mul_(20)
    return net


def sequence(frames: int, seed: int, emotion: int | None = None) -> tuple[dict[str, Tensor], Tensor]:
    """Offline inputs for the small network (`emotion` at full weight, or all zero) and seeded noise."""
    inputs = {"features": torch.randn(1, 4 * frames, 80), "emotion": torch.zeros(1, frames, 8),
              "style": torch.zeros(1, frames, 4)}  # fmt: skip
    if emotion is not None:
        inputs["emotion"][..., emotion] = 1.0
    return inputs, torch.randn(1, frames, 8, generator=torch.Generator().manual_seed(seed))


class GestureStepContract(StepContractSuite):
    # The wire's quaternions come from the 6D pose by Gram-Schmidt and a square root, which magnify the
    # pose's rounding (streamed and offline poses differ by about 4e-7) where a random network's 6D
    # vectors are nearly parallel.
    streaming_tolerance: ClassVar[dict[str, float]] = {"body": 1e-4}


class TestGestureGeneratorTwoSteps(GestureStepContract):
    onnx_parity_covered_by = "TestGuidedGestureGeneratorWithEveryOption"

    def make_model(self) -> StreamingGenerator:
        return GestureGenerator(small_network(), n_steps=2)


class TestGuidedGestureGeneratorWithEmotionPosture(GestureStepContract):
    onnx_parity_covered_by = "TestGuidedGestureGeneratorWithEveryOption"

    def make_model(self) -> StreamingGenerator:
        return GestureGenerator(small_network(emotion_dropout=0.2, posture=True), n_steps=2, guidance=2.5)


class TestGuidedGestureGeneratorWithEmotionFilm(GestureStepContract):
    onnx_parity_covered_by = "TestGuidedGestureGeneratorWithEveryOption"

    def make_model(self) -> StreamingGenerator:
        return GestureGenerator(small_network(emotion_dropout=0.2, film=True), n_steps=2, guidance=2.0)


class TestGestureGeneratorWithATemperaturePerEmotion(GestureStepContract):
    onnx_parity_covered_by = "TestGuidedGestureGeneratorWithEveryOption"

    def make_model(self) -> StreamingGenerator:
        return GestureGenerator(small_network(posture=True, temperatures=True), n_steps=2)


class TestGestureGeneratorWithSparseHistoryLags(GestureStepContract):
    onnx_parity_covered_by = "TestGuidedGestureGeneratorWithEveryOption"

    def make_model(self) -> StreamingGenerator:
        return GestureGenerator(small_network(history_lags=(9, 4, 1)), n_steps=2)


class TestGestureGeneratorWithAPhrasePlan(GestureStepContract):
    onnx_parity_covered_by = "TestGuidedGestureGeneratorWithEveryOption"

    def make_model(self) -> StreamingGenerator:
        return GestureGenerator(small_network(plan_codes=4), n_steps=2)


class TestGuidedGestureGeneratorWithEveryOption(GestureStepContract):
    """Guidance, posture, FiLM, a temperature per emotion, sparse history lags and a phrase plan in one graph."""

    def make_model(self) -> StreamingGenerator:
        network = small_network(emotion_dropout=0.2, posture=True, film=True, temperatures=True, history_lags=(9, 4, 1),
                                plan_codes=4)  # fmt: skip
        return GestureGenerator(network, n_steps=2, guidance=2.0)


class TestGestureGeneratorNoLookaheadOneStep(GestureStepContract):
    def make_model(self) -> StreamingGenerator:
        return GestureGenerator(small_network(lookahead=0), n_steps=1)


def test_lookahead_is_at_most_200_ms() -> None:
    generator = GestureGenerator(GestureNetwork(GestureConfig()), n_steps=2)
    assert generator.lookahead_ms <= 200.0 + 1e-9
    assert generator.spec.delay_frames == 5 and generator.spec.inputs_per_step == 4
    with pytest.raises(ValueError, match="lookahead"):
        GestureConfig(lookahead_frames=7)


def test_guidance_pushes_away_from_the_null_emotion_and_needs_one() -> None:
    guidable = small_network(emotion_dropout=0.2)
    inputs, noise = sequence(30, seed=0)
    with torch.no_grad():
        plain, guided = (GestureGenerator(guidable, n_steps=2, guidance=w).forward_sequence(inputs, noise)["pose"]
                         for w in (1.0, 3.0))  # fmt: skip
    assert torch.isfinite(guided).all() and not torch.allclose(plain, guided)
    with pytest.raises(ValueError, match="null emotion"):
        GestureGenerator(small_network(), guidance=2.0)


def test_the_emotion_posture_is_added_to_the_pose_and_left_out_of_the_history() -> None:
    net = small_network(posture=True)
    generator = GestureGenerator(net, n_steps=1, smoothing=1.0)
    state = generator.init_state(2)
    inputs = {"features": torch.randn(2, 4, 80), "style": torch.zeros(2, 1, 4),
              "emotion": torch.tensor([[[1.0] + [0.0] * 7], [[0.0] * 7 + [1.0]]])}  # fmt: skip
    on, noise = torch.ones(2, dtype=torch.bool), torch.zeros(2, 8)
    with torch.no_grad():
        for _ in range(generator.delay + 1):
            out, state = generator.step(inputs, state, noise, ~on, on)
    pose = net.normalize_pose(out["pose"][:, 0])
    residual = state["history"][:, -1]
    torch.testing.assert_close(pose - residual, net.emotion_offsets[[0, 7]], atol=1e-4, rtol=1e-4)
    assert small_network().posture(torch.ones(3, 8)).abs().sum() == 0  # a network without one adds nothing


def test_checkpoint_round_trip_keeps_weights_and_style_names(tmp_path) -> None:  # type: ignore[no-untyped-def]
    net = small_network(emotion_dropout=0.2, posture=True)
    net.style_presets.normal_()
    path = tmp_path / "gesture.pt"
    save_gesture_checkpoint(path, net, ["a", "b", "c"], {"note": "test"})
    loaded, names, meta = load_gesture_checkpoint(path)
    assert names == ["a", "b", "c"] and meta == {"note": "test"}
    for (k, v), w in zip(net.state_dict().items(), loaded.state_dict().values(), strict=True):
        assert torch.equal(v, w), k


def test_a_checkpoint_carries_its_guidance_and_generators_sample_with_it(tmp_path) -> None:  # type: ignore[no-untyped-def]
    plain = small_network(emotion_dropout=0.2)
    carried = GestureNetwork(GestureConfig(**{**plain.config.__dict__, "guidance": 2.0}), n_styles=3).eval()
    carried.load_state_dict(plain.state_dict())
    path = tmp_path / "gesture.pt"
    save_gesture_checkpoint(path, carried, ["a", "b", "c"], {})
    loaded = load_gesture_checkpoint(path)[0]
    assert loaded.config.guidance == 2.0 and GestureGenerator(loaded).guidance == 2.0
    inputs, noise = sequence(20, seed=0, emotion=2)
    with torch.no_grad():
        own = GestureGenerator(loaded, n_steps=2).forward_sequence(inputs, noise)["pose"]
        asked = GestureGenerator(plain, n_steps=2, guidance=2.0).forward_sequence(inputs, noise)["pose"]
        unguided = GestureGenerator(loaded, n_steps=2, guidance=1.0).forward_sequence(inputs, noise)["pose"]
    torch.testing.assert_close(own, asked)
    assert not torch.allclose(own, unguided)  # an explicit guidance still wins
    # A checkpoint saved before the field existed samples without guidance; a network with no null emotion
    # cannot carry one.
    older = {k: v for k, v in plain.config.__dict__.items() if k != "guidance"}
    assert GestureConfig.from_dict(older).guidance == 1.0
    with pytest.raises(ValueError, match="null emotion"):
        GestureConfig(guidance=1.5)


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


def test_engine_cache_tells_sampling_settings_apart() -> None:
    from emostream.engines.cache import model_hash

    net = small_network(emotion_dropout=0.2)
    knobs: tuple[dict, ...] = ({}, {"guidance": 1.5}, {"temperature": 0.3}, {"noise_correlation": 0.5})
    hashes = {model_hash(GestureGenerator(net, **knob)) for knob in knobs}
    assert len(hashes) == len(knobs)  # else a server would reuse a graph exported with other settings


def test_the_noise_correlation_is_a_sampling_choice() -> None:
    net = small_network()
    inputs, noise = sequence(20, seed=3)
    with torch.no_grad():
        poses = [GestureGenerator(net, n_steps=2, noise_correlation=rho).forward_sequence(inputs, noise)["pose"]
                 for rho in (None, net.config.noise_correlation, 0.3)]  # fmt: skip
    torch.testing.assert_close(poses[0], poses[1])  # the config's unless asked otherwise
    assert not torch.allclose(poses[0], poses[2])
    with pytest.raises(ValueError, match="noise correlation"):
        GestureGenerator(net, noise_correlation=1.0)


def test_emotion_film_starts_at_zero_and_then_changes_the_motion() -> None:
    from emostream.training.train_gesture import with_emotion_options

    def motion(net: GestureNetwork) -> Tensor:
        generator = GestureGenerator(net, n_steps=2).eval()
        state = generator.init_state(1)
        inputs = {"features": torch.randn(1, 4, 80, generator=torch.Generator().manual_seed(1)),
                  "style": torch.zeros(1, 1, 4), "emotion": torch.eye(8)[None, 2:3]}  # fmt: skip
        masks = torch.ones(1, dtype=torch.bool), torch.ones(1, dtype=torch.bool)
        with torch.no_grad():
            return generator.step(inputs, state, torch.ones(1, *generator.spec.noise.shape), *masks)[0]["pose"]

    plain = small_network()
    resumed = with_emotion_options(plain, 0.0, film=True).eval()
    assert resumed.config.emotion_film and resumed.emotion_film.weight.abs().sum() == 0
    torch.testing.assert_close(motion(resumed), motion(plain))  # resumed with FiLM: as it was
    with torch.no_grad():
        resumed.emotion_film.weight.normal_()
    assert (motion(resumed) - motion(plain)).abs().max() > 1e-3


def test_a_temperature_per_emotion_blends_by_weight_and_yields_to_an_explicit_one() -> None:
    net = small_network(temperatures=True)  # neutral 0.2 .. contempt 1.0
    emotion = torch.zeros(3, 8)
    emotion[0, 0], emotion[1, 6], emotion[2, 6] = 1.0, 1.0, 0.5
    neutral, angry = net.emotion_temperatures[0], net.emotion_temperatures[6]
    expected = torch.stack([neutral, angry, (neutral + angry) / 2])[:, None]
    torch.testing.assert_close(net.temperature(emotion), expected)
    inputs, noise = sequence(30, seed=0, emotion=6)
    with torch.no_grad():
        own = GestureGenerator(net, n_steps=2).forward_sequence(inputs, noise)["pose"]
        fixed = GestureGenerator(net, n_steps=2, temperature=float(angry)).forward_sequence(inputs, noise)["pose"]
        other = GestureGenerator(net, n_steps=2, temperature=0.2).forward_sequence(inputs, noise)["pose"]
    torch.testing.assert_close(own, fixed)  # angry at full weight samples at angry's temperature
    assert not torch.allclose(own, other)


def test_the_phrase_plan_draws_move_the_pose() -> None:
    """The plan's two draws a frame (the noise's last two channels) change which phrases it picks, and
    those change the motion; the flow's noise left the same."""
    generator = GestureGenerator(small_network(plan_codes=4), n_steps=2)
    inputs, _ = sequence(40, 0)
    noise = torch.randn(1, 40, 10, generator=torch.Generator().manual_seed(1))
    other = noise.clone()
    other[..., -2:] = torch.randn(1, 40, 2, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        a, b = generator.forward_sequence(inputs, noise)["pose"], generator.forward_sequence(inputs, other)["pose"]
    assert (a - b).abs().max() > 1e-2
