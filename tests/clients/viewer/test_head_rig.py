"""The built-in head's rig, checked numerically: each ARKit shape moves its own region and nothing else,
visibly, and the mouth opens and closes as lip-sync needs."""

from __future__ import annotations

import numpy as np
import pytest

from emostream.clients.viewer import head_mesh as H
from emostream.clients.viewer.blendshapes import ShapeSet, build_shapes
from emostream.clients.viewer.head_mesh import HeadMesh, build_head
from emostream.runtime.rigs import ARKIT_BLENDSHAPES

MOVED_M = 1e-4  # a vertex displaced by more than 0.1 mm counts as moved
VISIBLE_M = 0.0015  # every shape moves some vertex at least 1.5 mm at weight 1


@pytest.fixture(scope="module")
def rig() -> tuple[HeadMesh, ShapeSet]:
    head = build_head()
    return head, build_shapes(head)


def _regions(head: HeadMesh) -> dict[str, np.ndarray]:
    """Regions from the geometry alone (not from the shape definitions): where each family may act."""
    p = head.positions
    x, y = p[:, 0], p[:, 1]
    skin = head.where("skin")
    mouth_y = float(p[head.landmarks["upper_lip"][0], 1])
    inside = head.where("upper_teeth") | head.where("lower_teeth") | head.where("tongue") | head.where("cavity")
    lids = head.where("upper_lid") | head.where("lower_lid")
    eye_y = H.EYE_CENTRE_Y
    return {
        "lower_face": (skin & (y < -0.008)) | inside,  # below the nose's tip
        "eyes": lids | (skin & (np.abs(np.abs(x) - H.EYE_CENTRE_X) < 0.03) & (np.abs(y - eye_y) < 0.03)),
        "brows": skin & (y > eye_y + 0.002),
        "cheeks": (skin & (y < eye_y) & (y > mouth_y) & (np.abs(x) > 0.015)) | head.where("lower_lid"),
        "nose": skin & (np.abs(x) < 0.03) & (y < eye_y) & (y > mouth_y + 0.004),
    }


FAMILY = {"eye": "eyes", "jaw": "lower_face", "mouth": "lower_face", "tongue": "lower_face",
          "brow": "brows", "cheekSquint": "cheeks", "cheekPuff": "lower_face", "nose": "nose"}  # fmt: skip


DIRECTIONS = ("jawLeft", "jawRight", "mouthLeft", "mouthRight")  # move the whole jaw or mouth sideways


def _family(name: str) -> str:
    for prefix, region in sorted(FAMILY.items(), key=lambda kv: -len(kv[0])):
        if name.startswith(prefix):
            return region
    raise AssertionError(name)


@pytest.mark.parametrize("name", ARKIT_BLENDSHAPES)
def test_each_shape_moves_its_own_region_visibly_and_nothing_else(rig: tuple[HeadMesh, ShapeSet], name: str) -> None:
    head, shapes = rig
    delta = np.linalg.norm(shapes.position_deltas[ARKIT_BLENDSHAPES.index(name)], axis=1)
    assert delta.max() >= VISIBLE_M, f"{name} moves at most {delta.max() * 1e3:.2f} mm"
    allowed = _regions(head)[_family(name)]
    outside = (delta > MOVED_M) & ~allowed
    assert not outside.any(), f"{name} moves {outside.sum()} vertices outside its region, up to {delta[outside].max()}"
    if name.endswith(("Left", "Right")) and name not in DIRECTIONS:
        sign = 1.0 if name.endswith("Left") else -1.0  # the character's left is +X
        wrong_side = (delta > MOVED_M) & (sign * head.positions[:, 0] < -0.005)
        assert not wrong_side.any(), f"{name} moves the other side"


def _weights(**named: float) -> np.ndarray:
    w = np.zeros(len(ARKIT_BLENDSHAPES), np.float32)
    for name, value in named.items():
        w[ARKIT_BLENDSHAPES.index(name)] = value
    return w


def _lip_gap(head: HeadMesh, shapes: ShapeSet, weights: np.ndarray) -> float:
    posed = shapes.pose(head, weights)
    return float(posed[head.landmarks["upper_lip"][0], 1] - posed[head.landmarks["lower_lip"][0], 1])


def test_lips_part_with_the_jaw_and_close_for_a_bilabial(rig: tuple[HeadMesh, ShapeSet]) -> None:
    head, shapes = rig
    assert _lip_gap(head, shapes, _weights()) == pytest.approx(0.0, abs=1e-6)  # closed at rest
    open_gap = _lip_gap(head, shapes, _weights(jawOpen=0.5))
    assert open_gap > 0.006
    # mouthClose presses the lips together while the jaw stays open (ARKit's bilabial pose).
    assert abs(_lip_gap(head, shapes, _weights(jawOpen=0.5, mouthClose=0.5))) < 0.0005
    assert abs(_lip_gap(head, shapes, _weights(jawOpen=0.2, mouthClose=0.2))) < 0.0005
    # The gap grows with jawOpen.
    gaps = [_lip_gap(head, shapes, _weights(jawOpen=w)) for w in (0.1, 0.3, 0.6, 1.0)]
    assert np.all(np.diff(gaps) > 0)


def test_rounding_shapes_push_the_lips_forward_and_narrow_the_mouth(rig: tuple[HeadMesh, ShapeSet]) -> None:
    head, shapes = rig
    corner = head.landmarks["mouth_corner_left"][0]
    lip = head.landmarks["upper_lip"][0]
    for name in ("mouthPucker", "mouthFunnel"):
        posed = shapes.pose(head, _weights(**{name: 1.0}))
        assert posed[lip, 2] - head.positions[lip, 2] > 0.004, name
        assert posed[corner, 0] < head.positions[corner, 0] - 0.003, name
    smile = shapes.pose(head, _weights(mouthSmileLeft=1.0))
    assert smile[corner, 1] - head.positions[corner, 1] > 0.004  # the corner goes up


def test_blink_brings_the_upper_lid_down_to_the_lower(rig: tuple[HeadMesh, ShapeSet]) -> None:
    head, shapes = rig
    upper = head.landmarks["upper_lid_edge_left"]
    lower = head.landmarks["lower_lid_edge_left"]
    middle_up, middle_low = upper[len(upper) // 2], lower[len(lower) // 2]
    rest_opening = head.positions[middle_up, 1] - head.positions[middle_low, 1]
    closed = shapes.pose(head, _weights(eyeBlinkLeft=1.0))
    assert rest_opening > 0.008
    assert closed[middle_up, 1] - closed[middle_low, 1] < 0.001
    wide = shapes.pose(head, _weights(eyeWideLeft=1.0))
    assert wide[middle_up, 1] > head.positions[middle_up, 1] + 0.002
