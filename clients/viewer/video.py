"""Headless renders: an animation to an H.264 video with the speech muxed in as AAC (PyAV), and a PNG
contact sheet. Rendering goes through EGL, so no display is needed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from .camera import OrbitCamera
from .renderer import AvatarRenderer, OffscreenTarget, body_view, face_view, following_head, headless_context
from .user_renderer import UserAvatarRenderer

AUDIO_RATE_HZ = 48000


@dataclass(frozen=True)
class Clip:
    """What to render: face frames (T, FACE_CHANNELS) at `fps`, optional body frames at `body_fps`."""

    face: np.ndarray
    fps: float
    body: np.ndarray | None = None
    body_fps: float = 30.0
    captions: list[tuple[float, str]] | None = None  # (media time s, text) shown from that time on

    @property
    def seconds(self) -> float:
        return len(self.face) / self.fps

    def face_at(self, t: float) -> np.ndarray:
        return self.face[min(round(t * self.fps), len(self.face) - 1)]

    def body_at(self, t: float) -> np.ndarray | None:
        if self.body is None or len(self.body) == 0:
            return None
        return self.body[min(round(t * self.body_fps), len(self.body) - 1)]

    def caption_at(self, t: float) -> str:
        text = ""
        for start, caption in self.captions or []:
            if t + 1e-9 >= start:
                text = caption
        return text


def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    try:
        return ImageFont.truetype("DejaVuSans.ttf", size)
    except OSError:
        return ImageFont.load_default()


def draw_caption(image: np.ndarray, lines: list[str]) -> np.ndarray:
    """Text in the top-left corner on a translucent band (the HUD of videos and contact sheets)."""
    if not any(lines):
        return image
    canvas = Image.fromarray(image).convert("RGBA")
    overlay = Image.new("RGBA", canvas.size, (0, 0, 0, 0))
    draw = ImageDraw.Draw(overlay)
    size = max(12, canvas.size[1] // 32)
    font = _font(size)
    height = int(size * 1.35 * len(lines) + size * 0.6)
    width = int(max(draw.textlength(line, font=font) for line in lines) + size)
    draw.rectangle((0, 0, width, height), fill=(0, 0, 0, 120))
    for k, line in enumerate(lines):
        draw.text((size // 2, size // 3 + k * size * 1.35), line, font=font, fill=(240, 240, 240, 255))
    return np.asarray(Image.alpha_composite(canvas, overlay).convert("RGB"))


class FrameRenderer:
    """Renders clip frames at a size with a camera preset ("face" or "body")."""

    def __init__(self, width: int, height: int, view: str = "face", avatar: Path | None = None) -> None:
        self.ctx = headless_context()
        self.target = OffscreenTarget(self.ctx, width, height)
        self.width, self.height, self.view = width, height, view
        self.avatar: AvatarRenderer | UserAvatarRenderer
        if avatar is None:
            self.avatar = AvatarRenderer(self.ctx)
            self.camera: OrbitCamera = face_view() if view == "face" else body_view()
        else:
            self.avatar = UserAvatarRenderer(self.ctx, avatar)
            self.camera = self.avatar.focus(view)

    def render(self, face: np.ndarray | None, body: np.ndarray | None) -> np.ndarray:
        self.target.use()
        camera = following_head(self.camera, self.avatar, body) if self.view == "face" else self.camera
        self.avatar.draw(face, body, camera, self.width / self.height)
        return self.target.read()

    def release(self) -> None:
        self.ctx.release()


def write_video(
    clip: Clip,
    path: Path,
    audio: tuple[np.ndarray, int] | None = None,
    size: tuple[int, int] = (720, 720),
    fps: float = 30.0,
    view: str = "face",
    hud: Callable[[float], list[str]] | None = None,
    progress: Callable[[int, int], None] | None = None,
    avatar: Path | None = None,
) -> int:
    """Renders `clip` to an mp4 (H.264, yuv420p) with `audio` (float samples, rate) as AAC. Returns the
    number of video frames."""
    import av

    renderer = FrameRenderer(*size, view=view, avatar=avatar)
    total = int(np.floor(clip.seconds * fps + 1e-9))
    try:
        with av.open(str(path), mode="w") as container:
            video = container.add_stream("libx264", rate=Fraction(fps).limit_denominator(1000))
            video.width, video.height, video.pix_fmt = size[0], size[1], "yuv420p"
            video.options = {"crf": "20", "preset": "veryfast"}
            audio_stream = container.add_stream("aac", rate=AUDIO_RATE_HZ) if audio is not None else None
            for k in range(total):
                t = k / fps
                image = renderer.render(clip.face_at(t), clip.body_at(t))
                lines = hud(t) if hud else [clip.caption_at(t)]
                frame = av.VideoFrame.from_ndarray(draw_caption(image, lines), format="rgb24")
                container.mux(video.encode(frame))
                if progress:
                    progress(k + 1, total)
            container.mux(video.encode())
            if audio_stream is not None and audio is not None:
                _mux_audio(container, audio_stream, *audio)
    finally:
        renderer.release()
    return total


def _mux_audio(container, stream, samples: np.ndarray, rate: int) -> None:  # type: ignore[no-untyped-def]
    import av

    from emostream.runtime.audio import Resampler

    mono = Resampler(rate, AUDIO_RATE_HZ).offline(samples.astype(np.float32)) if rate != AUDIO_RATE_HZ else samples
    mono = np.clip(mono, -1.0, 1.0).astype(np.float32)
    block = 1024  # AAC's frame size
    for start in range(0, len(mono), block):
        piece = mono[start : start + block]
        frame = av.AudioFrame.from_ndarray(piece[None, :], format="flt", layout="mono")
        frame.sample_rate = AUDIO_RATE_HZ
        frame.pts = start
        container.mux(stream.encode(frame))
    container.mux(stream.encode())


def contact_sheet(
    clip: Clip,
    path: Path,
    columns: int = 6,
    rows: int = 3,
    tile: int = 256,
    view: str = "face",
    avatar: Path | None = None,
) -> np.ndarray:
    """A grid of evenly spaced frames, each labelled with its media time and caption; saved as PNG."""
    times = np.linspace(0.0, max(clip.seconds - 1.0 / clip.fps, 0.0), columns * rows)
    grid = np.zeros((rows * tile, columns * tile, 3), np.uint8)
    renderer = FrameRenderer(tile, tile, view=view, avatar=avatar)
    try:
        for k, t in enumerate(times):
            image = renderer.render(clip.face_at(t), clip.body_at(t))
            r, c = divmod(k, columns)
            grid[r * tile : (r + 1) * tile, c * tile : (c + 1) * tile] = draw_caption(
                image, [f"{t:5.2f} s  {clip.caption_at(t)}".rstrip()]
            )
    finally:
        renderer.release()
    Image.fromarray(grid).save(path)
    return grid
