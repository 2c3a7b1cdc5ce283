"""Draws a user's avatar (clients/avatar/user_avatar.py) with ModernGL: posed on the CPU each frame, its
vertices uploaded and drawn with the base colour texture of each primitive's material."""

from __future__ import annotations

import io
from pathlib import Path

import moderngl
import numpy as np
from PIL import Image

from emostream.clients.avatar.user_avatar import UserAvatar, load_avatar

from . import shaders
from .camera import OrbitCamera
from .renderer import Backdrop, _set, _write


class UserAvatarRenderer:
    """The same `draw(face, body, camera, aspect)` as AvatarRenderer, for an avatar loaded from a file."""

    def __init__(self, ctx: moderngl.Context, avatar: UserAvatar | Path) -> None:
        self.ctx = ctx
        self.avatar = avatar if isinstance(avatar, UserAvatar) else load_avatar(avatar)
        self.program = ctx.program(vertex_shader=shaders.USER_VERTEX, fragment_shader=shaders.USER_FRAGMENT)
        self.backdrop = Backdrop(ctx)
        self.textures: dict[int, moderngl.Texture] = {}
        self.draws = []
        for p in self.avatar.primitives:
            n = len(p.positions)
            dynamic = ctx.buffer(reserve=n * 6 * 4, dynamic=True)
            uv = p.texcoords if p.texcoords is not None else np.zeros((n, 2), np.float32)
            # glTF colours are linear; this shader works in display values, as the textures are (sRGB)
            display = np.hstack([np.clip(p.colour[:, :3], 0, 1) ** (1 / 2.2), p.colour[:, 3:]])
            static = ctx.buffer(np.hstack([display, uv]).astype(np.float32).tobytes())
            vao = ctx.vertex_array(
                self.program,
                [(dynamic, "3f 3f", "in_position", "in_normal"), (static, "4f 2f", "in_colour", "in_uv")],
                ctx.buffer(p.triangles.astype(np.int32).tobytes()),
            )
            self.draws.append((vao, dynamic, self._texture(p.image) if p.texcoords is not None else None))
        _set(self.program, "base_colour", 0)

    def _texture(self, image: int | None) -> moderngl.Texture | None:
        if image is None:
            return None
        if image not in self.textures:
            gltf = self.avatar.gltf
            source = gltf.images[image]
            if source.bufferView is not None:
                view = gltf.bufferViews[source.bufferView]
                data = gltf.binary_blob()[view.byteOffset or 0 : (view.byteOffset or 0) + view.byteLength]
            else:
                data = gltf.get_data_from_buffer_uri(source.uri)
            # glTF's UV origin is the image's top left, and its first row is the first one uploaded: no flip
            picture = Image.open(io.BytesIO(data)).convert("RGBA")
            texture = self.ctx.texture(picture.size, 4, picture.tobytes())
            texture.build_mipmaps()
            self.textures[image] = texture
        return self.textures[image]

    def focus(self, view: str) -> OrbitCamera:
        """A camera on the avatar's face or whole body, whatever its size."""
        world = self.avatar.rest_world
        head = self.avatar.humanoid.get("head")
        top = world[head][:3, 3] if head is not None else np.array([0.0, 1.6, 0.0])
        if view == "face":
            return OrbitCamera(target=top + np.array([0.0, 0.08, 0.03]), distance=0.62 * max(top[1], 0.3) / 1.58,
                               yaw=0.0, pitch=0.05, fov_y_deg=30)  # fmt: skip
        return OrbitCamera(target=np.array([0.0, top[1] * 0.62, 0.0]), distance=3.6 * max(top[1], 0.3) / 1.58,
                           yaw=0.35, pitch=0.08, fov_y_deg=35)  # fmt: skip

    def draw(self, face: np.ndarray | None, body: np.ndarray | None, camera: OrbitCamera, aspect: float) -> None:
        self.backdrop.draw()
        _write(self.program, "view_projection", (camera.projection(aspect) @ camera.view()).T.astype(np.float32))
        _set(self.program, "light_dir", (0.4, 0.7, 0.8))
        _set(self.program, "eye_pos", tuple(camera.eye()))
        for (vao, dynamic, texture), (positions, normals) in zip(self.draws, self.avatar.pose(face, body), strict=True):
            dynamic.write(np.hstack([positions, normals]).astype(np.float32).tobytes())
            _set(self.program, "textured", int(texture is not None))
            if texture is not None:
                texture.use(0)
            vao.render()
