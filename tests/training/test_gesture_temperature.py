"""The per-emotion temperature fit: interpolation on the grid and carrying a network over."""

import pytest
import torch

from emostream.runtime.models.gesture import GestureConfig, GestureGenerator, GestureNetwork
from emostream.training.gesture_temperature import (
    pick_temperature,
    temperature_matching_speed,
    with_emotion_temperatures,
    with_guidance,
)
from emostream.training.train_gesture import with_phrase_plan


def test_the_temperature_read_right_most_often_and_then_nearest_the_teachers_speed() -> None:
    grid = (0.2, 0.4, 0.6, 0.8)
    speeds = [0.1, 0.2, 0.3, 0.4]
    assert pick_temperature([0.2, 0.9, 0.5, 0.1], speeds, teacher_speed=0.4, grid=grid) == 0.4
    # Two temperatures read equally well: the one moving at the teacher's pace wins.
    assert pick_temperature([0.5, 0.9, 0.9, 0.1], speeds, teacher_speed=0.32, grid=grid) == 0.6
    assert pick_temperature([0.5, 0.9, 0.9, 0.1], speeds, teacher_speed=0.1, grid=grid) == 0.4


def test_a_speed_tolerance_leaves_out_temperatures_that_move_too_fast_or_too_slow() -> None:
    grid = (0.2, 0.4, 0.6, 0.8)
    speeds = [0.1, 0.2, 0.3, 0.4]
    recognised = [0.3, 0.5, 0.7, 0.9]  # read best where it moves fastest, as neutral and happy were
    assert pick_temperature(recognised, speeds, teacher_speed=0.2, grid=grid) == 0.8
    assert pick_temperature(recognised, speeds, teacher_speed=0.2, grid=grid, speed_tolerance=0.5) == 0.6
    assert pick_temperature(recognised, speeds, teacher_speed=0.2, grid=grid, speed_tolerance=0.1) == 0.4
    # No temperature within the tolerance: the one nearest the teacher's speed.
    assert pick_temperature(recognised, speeds, teacher_speed=0.7, grid=grid, speed_tolerance=0.1) == 0.8


def test_the_speed_criterion_interpolates_where_the_speed_meets_the_teachers() -> None:
    grid = (0.2, 0.4, 0.6, 0.8, 1.0)
    speeds = [0.1, 0.2, 0.3, 0.4, 0.5]
    assert abs(temperature_matching_speed(0.25, speeds, grid) - 0.5) < 1e-6
    assert temperature_matching_speed(0.05, speeds, grid) == 0.2  # slower than the model ever is: the grid's end
    assert temperature_matching_speed(0.9, speeds, grid) == 1.0
    # A dip in the measured curve does not make the fit jump back.
    assert 0.6 <= temperature_matching_speed(0.35, [0.1, 0.2, 0.3, 0.28, 0.5], grid) <= 1.0


def test_a_network_carried_over_samples_as_before_at_equal_temperatures() -> None:
    torch.manual_seed(0)
    config = GestureConfig(channels=32, dilations=(1, 2), hidden=48, latent=8, style_dim=4, history_frames=3)
    plain = GestureNetwork(config, n_styles=2).eval()
    carried = with_emotion_temperatures(plain, [0.6] * 8)
    assert carried.config.emotion_temperature and not plain.config.emotion_temperature
    S = 20
    inputs = {"features": torch.randn(1, 4 * S, 80), "emotion": torch.zeros(1, S, 8), "style": torch.zeros(1, S, 4)}
    inputs["emotion"][..., 3] = 0.7
    noise = torch.randn(1, S, 8, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        before = GestureGenerator(plain, n_steps=2, temperature=0.6).forward_sequence(inputs, noise)["pose"]
        after = GestureGenerator(carried, n_steps=2).forward_sequence(inputs, noise)["pose"]
    torch.testing.assert_close(before, after)


def test_the_fitted_guidance_is_carried_with_the_temperatures_and_needs_a_null_emotion() -> None:
    config = GestureConfig(channels=32, dilations=(1, 2), hidden=48, latent=8, style_dim=4, history_frames=3)
    guidable = GestureNetwork(GestureConfig(**{**config.__dict__, "emotion_dropout": 0.15}), n_styles=2)
    fitted = with_emotion_temperatures(with_guidance(guidable, 1.5), [0.4] * 8)
    assert fitted.config.guidance == 1.5 and fitted.config.emotion_temperature
    assert GestureGenerator(fitted).guidance == 1.5
    with pytest.raises(ValueError, match="null emotion"):
        with_guidance(GestureNetwork(config, n_styles=2), 1.5)


def test_a_network_given_a_phrase_plan_starts_out_as_it_was_whatever_it_draws() -> None:
    """`--resume` of a network without a plan adds one (train_gesture.with_phrase_plan): until training
    moves its input to the flow off zero, the motion is the old network's."""
    torch.manual_seed(0)
    config = GestureConfig(channels=32, dilations=(1, 2), hidden=48, latent=8, style_dim=4, history_frames=3)
    plain = GestureNetwork(config, n_styles=2).eval()
    planned = with_phrase_plan(plain, 6).eval()
    assert planned.config.plan_codes == 6
    S = 20
    inputs = {"features": torch.randn(1, 4 * S, 80), "emotion": torch.zeros(1, S, 8), "style": torch.zeros(1, S, 4)}
    noise = torch.randn(1, S, 10, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        before = GestureGenerator(plain, n_steps=2).forward_sequence(inputs, noise[..., :8])["pose"]
        after = GestureGenerator(planned, n_steps=2).forward_sequence(inputs, noise)["pose"]
    torch.testing.assert_close(before, after)
