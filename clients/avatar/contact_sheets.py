"""Contact sheets of the built-in avatar, to look at it: the 52 ARKit shapes one by one at full weight,
and every emotion as the shipped face and gesture models play it on the bundled speech sample (the
same three moments for each emotion, face and body).

    python -m emostream.clients.avatar.contact_sheets --out docs/images
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

from emostream.runtime.protocol import EMOTIONS
from emostream.runtime.rigs import ARKIT_BLENDSHAPES, FACE_CHANNELS

from ..viewer.camera import OrbitCamera
from ..viewer.renderer import AvatarRenderer, OffscreenTarget, body_view, following_head, headless_context
from ..viewer.video import draw_caption

SAMPLE_TIMES_S = (1.7, 6.85, 11.1)  # moments in runtime/assets/speech_sample.wav with the mouth open


def _close_face() -> OrbitCamera:
    return OrbitCamera(target=np.array([0.0, 1.655, 0.03]), distance=0.5, yaw=0.25, pitch=0.05, fov_y_deg=30)


def grid(tiles: list[np.ndarray], columns: int) -> np.ndarray:
    height, width, _ = tiles[0].shape
    rows = -(-len(tiles) // columns)
    grid = np.zeros((rows * height, columns * width, 3), np.uint8)
    for k, tile in enumerate(tiles):
        r, c = divmod(k, columns)
        grid[r * height : (r + 1) * height, c * width : (c + 1) * width] = tile
    return grid


class Stills:
    def __init__(self, size: int) -> None:
        self.ctx = headless_context()
        self.target = OffscreenTarget(self.ctx, size, size)
        self.avatar = AvatarRenderer(self.ctx)

    def render(self, face: np.ndarray | None, body: np.ndarray | None, camera: OrbitCamera, caption: str) -> np.ndarray:
        self.target.use()
        self.avatar.draw(face, body, camera, 1.0)
        return draw_caption(self.target.read(), [caption])


def shapes_sheet(path: Path, size: int = 200) -> None:
    """All 52 shapes, each alone at weight 1, in ARKit's order; mouthClose with jawOpen, as ARKit uses it
    (alone it would push the lower lip up through the upper)."""
    stills = Stills(size)
    tiles = []
    for k, name in enumerate(tqdm(ARKIT_BLENDSHAPES, desc="shapes")):
        face = np.zeros(len(FACE_CHANNELS), np.float32)
        face[k] = 1.0
        if name == "mouthClose":
            face[ARKIT_BLENDSHAPES.index("jawOpen")] = 1.0
            name = "mouthClose + jawOpen"
        tiles.append(stills.render(face, None, _close_face(), name))
    Image.fromarray(grid(tiles, 8)).save(path)


def emotions_sheet(path: Path, audio: Path, size: int = 220) -> None:
    """One row per emotion: the face at three moments of the speech, then the body at the same moments."""
    from emostream.runtime.animate import animate  # torch: only for this sheet

    stills = Stills(size)
    rows = []
    for emotion in tqdm(EMOTIONS, desc="emotions"):
        animation = animate(audio, emotion=emotion)
        assert animation.body is not None
        moments = []
        for t in SAMPLE_TIMES_S:
            face = animation.face[min(round(t * animation.fps), len(animation.face) - 1)]
            body = animation.body[min(round(t * animation.body_fps), len(animation.body) - 1)]
            moments.append((face, body, f"{emotion} {t:.1f} s"))
        row = [
            stills.render(face, body, following_head(_close_face(), stills.avatar, body), caption)
            for face, body, caption in moments
        ]
        row += [stills.render(face, body, body_view(), caption) for face, body, caption in moments]
        rows.append(np.hstack(row))
    Image.fromarray(np.vstack(rows)).save(path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("docs/images"))
    parser.add_argument("--audio", type=Path, default=Path(__file__).parents[2] / "runtime/assets/speech_sample.wav")
    parser.add_argument("--only", choices=("shapes", "emotions"), default=None)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    if args.only in (None, "shapes"):
        shapes_sheet(args.out / "avatar_shapes.png")
    if args.only in (None, "emotions"):
        emotions_sheet(args.out / "avatar_emotions.png", args.audio)


if __name__ == "__main__":
    main()
