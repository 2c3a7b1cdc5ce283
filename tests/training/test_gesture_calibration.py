"""The per-emotion output calibration: moment matching, and carrying a network over."""

import numpy as np
import torch

from runtime.models.gesture import GestureConfig, GestureGenerator, GestureNetwork
from training.gesture_calibration import GAIN_RANGE, identity_calibration, moment_match, window_spread
from training.gesture_temperature import with_emotion_temperatures

WINDOW = 120


def takes(rng: np.random.Generator, mean: np.ndarray, spread: np.ndarray, n: int = 6) -> list[np.ndarray]:
    """Takes of 2 to 3 windows whose features move around `mean` by `spread`, each take offset a little."""
    return [mean + 0.05 * rng.normal(size=mean.shape) + spread * rng.normal(size=(int(rng.integers(2, 4)) * WINDOW,
            mean.size)) for _ in range(n)]  # fmt: skip


def test_the_fitted_map_gives_the_model_the_teachers_mean_and_window_spread() -> None:
    rng = np.random.default_rng(0)
    n = 5
    model = takes(rng, np.zeros(n), np.array([0.9, 1.0, 1.0, 0.1, 1.0]))
    taught = takes(rng, np.array([1.0, -1.0, 0.0, 0.0, 0.0]), np.array([1.0, 1.0, 0.9, 1.0, 0.01]))
    gain, shift = moment_match(model, taught)
    mapped = [gain * p + shift for p in model]
    np.testing.assert_allclose(np.concatenate(mapped).mean(axis=0), np.concatenate(taught).mean(axis=0), atol=1e-5)
    # Spread ratios inside the range are matched; a feature that hardly moves in one of the two is held to it.
    np.testing.assert_allclose(window_spread(mapped)[:3], window_spread(taught)[:3], rtol=1e-4)
    assert gain[3] == GAIN_RANGE[1] and gain[4] == GAIN_RANGE[0]


def test_window_spread_leaves_out_motion_between_windows() -> None:
    slow = np.repeat(np.arange(4.0), WINDOW)[:, None]  # constant within each window, different between them
    assert window_spread([slow])[0] == 0.0
    assert abs(window_spread([np.tile([-1.0, 1.0], 2 * WINDOW)[:, None]])[0] - 1.0) < 1e-9


def test_a_network_carried_over_moves_as_before_until_fitted() -> None:
    torch.manual_seed(0)
    config = GestureConfig(channels=32, dilations=(1, 2), hidden=48, latent=8, style_dim=4, history_frames=3)
    plain = with_emotion_temperatures(GestureNetwork(config, n_styles=2).eval(), [0.3] * 4 + [0.9] * 4)
    carried = identity_calibration(plain)
    assert carried.config.emotion_calibration and carried.config.emotion_temperature
    S = 20
    inputs = {"features": torch.randn(1, 4 * S, 80), "emotion": torch.zeros(1, S, 8), "style": torch.zeros(1, S, 4)}
    inputs["emotion"][..., 5] = 1.0
    noise = torch.randn(1, S, 8, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        before = GestureGenerator(plain, n_steps=2).forward_sequence(inputs, noise)["pose"]
        after = GestureGenerator(carried, n_steps=2).forward_sequence(inputs, noise)["pose"]
    torch.testing.assert_close(before, after)
