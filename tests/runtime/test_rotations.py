import numpy as np
import pytest

from emostream.runtime import rotations as R


def random_rotations(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    q = rng.normal(size=(n, 4))
    return R.quat_to_matrix(q)


def is_rotation(m: np.ndarray) -> bool:
    identity = np.broadcast_to(np.eye(3), m.shape)
    return bool(np.allclose(m @ np.swapaxes(m, -1, -2), identity, atol=1e-9)) and bool(
        np.allclose(np.linalg.det(m), 1.0, atol=1e-9)
    )


def test_quaternion_matrix_round_trip() -> None:
    m = random_rotations(500)
    assert is_rotation(m)
    q = R.matrix_to_quat(m)
    assert np.all(q[..., 3] >= 0)
    np.testing.assert_allclose(R.quat_to_matrix(q), m, atol=1e-10)


def test_axis_angle_matrix_round_trip_including_small_and_near_pi_angles() -> None:
    rng = np.random.default_rng(1)
    axes = rng.normal(size=(300, 3))
    axes /= np.linalg.norm(axes, axis=-1, keepdims=True)
    angles = np.concatenate([rng.uniform(0, np.pi - 1e-3, 280), [0.0, 1e-9, 1e-7, 1e-4], [np.pi - 1e-6] * 16])
    aa = axes * angles[:, None]
    m = R.axis_angle_to_matrix(aa)
    assert is_rotation(m)
    back = R.matrix_to_axis_angle(m)
    np.testing.assert_allclose(R.axis_angle_to_matrix(back), m, atol=1e-9)
    np.testing.assert_allclose(back[:284], aa[:284], atol=1e-8)


def test_axis_angle_matches_rodrigues_formula() -> None:
    aa = np.array([0.3, -1.1, 0.7])
    theta = np.linalg.norm(aa)
    k = aa / theta
    K = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    expected = np.eye(3) + np.sin(theta) * K + (1 - np.cos(theta)) * K @ K
    np.testing.assert_allclose(R.axis_angle_to_matrix(aa), expected, atol=1e-12)


def test_sixd_round_trip_and_projection_of_noisy_input() -> None:
    m = random_rotations(200, seed=2)
    np.testing.assert_allclose(R.sixd_to_matrix(R.matrix_to_sixd(m)), m, atol=1e-12)
    noisy = R.matrix_to_sixd(m) * 3.0 + np.random.default_rng(3).normal(scale=0.05, size=(200, 6))
    assert is_rotation(R.sixd_to_matrix(noisy))


def test_quat_multiply_composes_like_matrices() -> None:
    a, b = random_rotations(50, seed=4), random_rotations(50, seed=5)
    product = R.quat_multiply(R.matrix_to_quat(a), R.matrix_to_quat(b))
    np.testing.assert_allclose(R.quat_to_matrix(product), a @ b, atol=1e-10)


@pytest.mark.parametrize("shape", [(), (7,), (2, 3)])
def test_conversions_keep_batch_shape(shape: tuple[int, ...]) -> None:
    aa = np.random.default_rng(6).normal(size=shape + (3,))
    assert R.axis_angle_to_matrix(aa).shape == shape + (3, 3)
    assert R.axis_angle_to_quat(aa).shape == shape + (4,)
    assert R.matrix_to_sixd(R.axis_angle_to_matrix(aa)).shape == shape + (6,)
