"""Small matrix helpers and the orbit camera (column vectors; numpy arrays are transposed on upload)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def perspective(fov_y_deg: float, aspect: float, near: float, far: float) -> np.ndarray:
    f = 1.0 / np.tan(np.radians(fov_y_deg) / 2)
    m = np.zeros((4, 4))
    m[0, 0], m[1, 1] = f / aspect, f
    m[2, 2], m[2, 3] = (far + near) / (near - far), 2 * far * near / (near - far)
    m[3, 2] = -1.0
    return m


UP = np.array([0.0, 1.0, 0.0])


def look_at(eye: np.ndarray, target: np.ndarray, up: np.ndarray = UP) -> np.ndarray:
    forward = target - eye
    forward = forward / np.linalg.norm(forward)
    right = np.cross(forward, up)
    right = right / np.linalg.norm(right)
    true_up = np.cross(right, forward)
    m = np.eye(4)
    m[0, :3], m[1, :3], m[2, :3] = right, true_up, -forward
    m[:3, 3] = -m[:3, :3] @ eye
    return m


def translation(offset: np.ndarray) -> np.ndarray:
    m = np.eye(4)
    m[:3, 3] = offset
    return m


def rotation_x(angle: float) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[1, 0, 0], [0, c, -s], [0, s, c]])


def rotation_y(angle: float) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])


def rotation_z(angle: float) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])


def head_rotation(yaw: float, pitch: float, roll: float) -> np.ndarray:
    """runtime/rigs.py conventions: +yaw turns the face to the character's left (+X), +pitch tilts it
    down, +roll tilts the head toward the right shoulder."""
    return rotation_y(yaw) @ rotation_x(pitch) @ rotation_z(roll)


def affine(rotation: np.ndarray, offset: np.ndarray) -> np.ndarray:
    m = np.eye(4)
    m[:3, :3], m[:3, 3] = rotation, offset
    return m


@dataclass
class OrbitCamera:
    """Orbits `target` at `distance`; yaw 0 looks at the character's face (from +Z)."""

    target: np.ndarray
    distance: float
    yaw: float = 0.0
    pitch: float = 0.0
    fov_y_deg: float = 30.0

    def eye(self) -> np.ndarray:
        direction = np.array(
            [np.sin(self.yaw) * np.cos(self.pitch), np.sin(self.pitch), np.cos(self.yaw) * np.cos(self.pitch)]
        )
        return self.target + self.distance * direction

    def view(self) -> np.ndarray:
        return look_at(self.eye(), self.target)

    def projection(self, aspect: float) -> np.ndarray:
        return perspective(self.fov_y_deg, aspect, self.distance * 0.05, self.distance * 20)

    def orbit(self, d_yaw: float, d_pitch: float) -> None:
        self.yaw += d_yaw
        self.pitch = float(np.clip(self.pitch + d_pitch, -1.3, 1.3))

    def zoom(self, factor: float) -> None:
        self.distance = float(np.clip(self.distance * factor, 0.15, 8.0))
