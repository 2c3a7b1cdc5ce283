"""Headless renders through EGL: golden images with a tolerance, the video writer and the contact sheet.

Regenerate the golden images after a deliberate change to the avatar with
`EMOSTREAM_UPDATE_GOLDEN=1 pytest tests/clients/viewer/test_render.py` and look at them before committing.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from emostream.runtime.rigs import FACE_CHANNELS

GOLDEN = Path(__file__).parents[2] / "data" / "golden"
SIZE = 160


def _egl_or_skip() -> None:
    try:
        from emostream.clients.viewer.renderer import headless_context

        headless_context().release()
    except Exception as exc:  # no libEGL / Mesa on this machine
        pytest.skip(f"no headless OpenGL 3.3 through EGL here: {exc}")


@pytest.fixture(scope="module")
def renderer():  # type: ignore[no-untyped-def]
    _egl_or_skip()
    from emostream.clients.viewer.video import FrameRenderer

    r = FrameRenderer(SIZE, SIZE, view="face")
    yield r
    r.release()


def _face(**named: float) -> np.ndarray:
    face = np.zeros(len(FACE_CHANNELS), np.float32)
    for name, value in named.items():
        face[FACE_CHANNELS.index(name)] = value
    return face


POSES = {
    "neutral": _face(),
    "open_smile": _face(jawOpen=0.45, mouthSmileLeft=0.8, mouthSmileRight=0.8, cheekSquintLeft=0.4),
    "surprised_turned": _face(
        jawOpen=0.3, eyeWideLeft=1, eyeWideRight=1, browInnerUp=1, headYaw=0.35, leftEyeYaw=-0.2, rightEyeYaw=-0.2
    ),
}


@pytest.mark.parametrize("pose", sorted(POSES))
def test_headless_render_matches_its_golden_image(renderer, pose: str) -> None:  # type: ignore[no-untyped-def]
    image = renderer.render(POSES[pose], None)
    path = GOLDEN / f"head_{pose}.png"
    if os.environ.get("EMOSTREAM_UPDATE_GOLDEN"):
        Image.fromarray(image).save(path)
    golden = np.asarray(Image.open(path).convert("RGB")).astype(np.int16)
    diff = np.abs(image.astype(np.int16) - golden).max(axis=2)
    # Tolerance for rasteriser and driver differences: a few levels on average, few pixels far off.
    assert diff.mean() < 2.0, f"{pose}: mean difference {diff.mean():.2f}"
    assert (diff > 40).mean() < 0.01, f"{pose}: {(diff > 40).mean():.2%} of pixels differ by more than 40"


def test_the_vertex_shader_blends_the_shapes_as_the_cpu_does(renderer) -> None:  # type: ignore[no-untyped-def]
    # A software renderer (llvmpipe, as on a machine without a GPU) has the CPU sum the blend shapes
    # (renderer.py); a GPU's vertex shader sums them from textures. Both must draw the same head.
    from emostream.clients.viewer.renderer import AvatarRenderer, is_software
    from emostream.clients.viewer.video import FrameRenderer

    assert renderer.avatar.blend_on_cpu == is_software(renderer.ctx)
    on_cpu, on_shader = FrameRenderer(SIZE, SIZE, view="face"), FrameRenderer(SIZE, SIZE, view="face")
    on_cpu.avatar = AvatarRenderer(on_cpu.ctx, blend_on_cpu=True)
    on_shader.avatar = AvatarRenderer(on_shader.ctx, blend_on_cpu=False)
    try:
        for pose, face in POSES.items():
            diff = np.abs(on_cpu.render(face, None).astype(np.int16) - on_shader.render(face, None)).max(axis=2)
            assert diff.mean() < 0.05 and (diff > 40).mean() < 0.001, f"{pose}: mean difference {diff.mean():.3f}"
    finally:
        on_cpu.release()
        on_shader.release()


def test_blendshapes_change_the_picture_where_they_act(renderer) -> None:  # type: ignore[no-untyped-def]
    neutral = renderer.render(POSES["neutral"], None).astype(np.int16)
    jaw = renderer.render(_face(jawOpen=0.6), None).astype(np.int16)
    blink = renderer.render(_face(eyeBlinkLeft=1.0, eyeBlinkRight=1.0), None).astype(np.int16)
    rows = np.arange(SIZE)
    jaw_rows = rows[np.abs(jaw - neutral).max(axis=(1, 2)) > 30]
    blink_rows = rows[np.abs(blink - neutral).max(axis=(1, 2)) > 30]
    assert jaw_rows.size and blink_rows.size
    assert blink_rows.max() < jaw_rows.min()  # the eyes change above where the mouth changes


@pytest.mark.slow
def test_video_has_the_frames_and_the_sound(tmp_path: Path) -> None:
    _egl_or_skip()
    import av

    from emostream.clients.viewer.video import Clip, contact_sheet, write_video

    fps = 60
    face = np.zeros((45, len(FACE_CHANNELS)), np.float32)
    face[:, FACE_CHANNELS.index("jawOpen")] = np.linspace(0, 0.6, 45)
    clip = Clip(face=face, fps=fps, captions=[(0.0, "neutral"), (0.4, "happy")])
    tone = (0.3 * np.sin(2 * np.pi * 220 * np.arange(12_000) / 16_000)).astype(np.float32)
    frames = write_video(clip, tmp_path / "a.mp4", audio=(tone, 16_000), size=(96, 96), fps=30)
    assert frames == 22  # 0.75 s at 30 fps
    with av.open(str(tmp_path / "a.mp4")) as container:
        video = container.streams.video[0]
        audio = container.streams.audio[0]
        assert (video.codec_context.name, video.width, video.height) == ("h264", 96, 96)
        assert audio.codec_context.name == "aac" and audio.rate == 48_000
        decoded = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    assert len(decoded) == 22
    assert np.abs(decoded[-1].astype(int) - decoded[0].astype(int)).max() > 40  # the jaw moved
    sheet = contact_sheet(clip, tmp_path / "sheet.png", columns=3, rows=2, tile=64)
    assert sheet.shape == (128, 192, 3) and (tmp_path / "sheet.png").stat().st_size > 1000


def test_the_face_camera_follows_the_head_when_the_body_leans(renderer) -> None:  # type: ignore[no-untyped-def]
    from emostream.clients.viewer.camera import rotation_x
    from emostream.clients.viewer.mannequin import relaxed_pose
    from emostream.runtime.rigs import SMPLX_JOINTS
    from emostream.runtime.rotations import matrix_to_quat

    avatar = renderer.avatar
    assert np.allclose(avatar.head_offset(None), 0) and np.allclose(avatar.head_offset(relaxed_pose()), 0)
    leaning = relaxed_pose().copy()
    spine = SMPLX_JOINTS.index("spine1")
    leaning[spine * 4 : spine * 4 + 4] = matrix_to_quat(rotation_x(0.4)[None])[0]  # bend forward at the waist
    offset = avatar.head_offset(leaning)
    assert offset[2] > 0.1 and offset[1] < 0  # the head comes forward and down with the trunk
