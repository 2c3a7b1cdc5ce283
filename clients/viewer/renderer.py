"""Draws the avatar with ModernGL into an off-screen multisampled framebuffer (EGL when headless) or the
window's default framebuffer: backdrop, mannequin, head with GPU blendshapes, eyes, optional overlay.
"""

from __future__ import annotations

from dataclasses import replace
from functools import cache

import moderngl
import numpy as np

from emostream.runtime.rigs import ARKIT_BLENDSHAPES, FACE_CHANNELS

from . import shaders
from .blendshapes import ShapeSet, build_shapes
from .camera import OrbitCamera, affine, head_rotation, rotation_x, rotation_y
from .head_mesh import PARTS, EyeMesh, HeadMesh, build_eye, build_head
from .mannequin import HEAD_CENTRE_IN_HEAD_JOINT, Mannequin, relaxed_pose

_CHANNEL = {name: i for i, name in enumerate(FACE_CHANNELS)}
TEXTURE_WIDTH = 4096
ACTIVE_THRESHOLD = 1e-3


def _uniform(program: moderngl.Program, name: str) -> moderngl.Uniform:
    member = program[name]
    assert isinstance(member, moderngl.Uniform), name
    return member


def _set(program: moderngl.Program, name: str, value: object) -> None:
    _uniform(program, name).value = value


def _write(program: moderngl.Program, name: str, array: np.ndarray) -> None:
    _uniform(program, name).write(np.ascontiguousarray(array).tobytes())


def headless_context() -> moderngl.Context:
    """A standalone OpenGL 3.3 context through EGL: works with no display (Mesa's llvmpipe on CPUs)."""
    return moderngl.create_context(standalone=True, backend="egl", require=330)  # type: ignore[arg-type]


def is_software(ctx: moderngl.Context) -> bool:
    """Whether the context draws on the CPU (Mesa's llvmpipe or softpipe, SwiftShader)."""
    renderer = str(ctx.info.get("GL_RENDERER", "")).lower()
    return any(name in renderer for name in ("llvmpipe", "softpipe", "swiftshader"))


def _delta_texture(ctx: moderngl.Context, deltas: np.ndarray) -> moderngl.Texture:
    flat = deltas.reshape(-1, 3).astype(np.float32)
    height = -(-len(flat) // TEXTURE_WIDTH)
    padded = np.zeros((height * TEXTURE_WIDTH, 3), np.float32)
    padded[: len(flat)] = flat
    texture = ctx.texture((TEXTURE_WIDTH, height), 3, padded.tobytes(), dtype="f4")
    texture.filter = (moderngl.NEAREST, moderngl.NEAREST)
    return texture


class Backdrop:
    """The gradient behind the avatar, drawn first with depth off; the depth test is on again after it."""

    def __init__(self, ctx: moderngl.Context) -> None:
        self.ctx = ctx
        self.program = ctx.program(vertex_shader=shaders.BACKDROP_VERTEX, fragment_shader=shaders.BACKDROP_FRAGMENT)
        corners = ctx.buffer(np.array([-1, -1, 1, -1, -1, 1, 1, 1], np.float32).tobytes())
        self.vao = ctx.vertex_array(self.program, [(corners, "2f", "in_position")])

    def draw(self) -> None:
        self.ctx.disable(moderngl.DEPTH_TEST)
        self.vao.render(moderngl.TRIANGLE_STRIP)
        self.ctx.enable(moderngl.DEPTH_TEST)
        self.ctx.disable(moderngl.CULL_FACE)


def face_view() -> OrbitCamera:
    return OrbitCamera(target=np.array([0.0, 1.655, 0.03]), distance=0.62, yaw=0.0, pitch=0.05, fov_y_deg=30)


def following_head(camera: OrbitCamera, avatar: object, body: np.ndarray | None) -> OrbitCamera:
    """A face camera moved with the built-in avatar's head (`AvatarRenderer.head_offset`), so a body that
    slumps or leans keeps the face framed; other avatars keep the camera as it is."""
    if not isinstance(avatar, AvatarRenderer):
        return camera
    return replace(camera, target=camera.target + avatar.head_offset(body))


def body_view() -> OrbitCamera:
    return OrbitCamera(target=np.array([0.0, 1.05, 0.0]), distance=3.6, yaw=0.35, pitch=0.08, fov_y_deg=35)


@cache
def built_in_avatar() -> tuple[HeadMesh, ShapeSet]:
    """The built-in head and its blend shapes, built once a process: a demo draws its video and two contact
    sheets with three renderers. The arrays are read-only, so no renderer can change another's."""
    head = build_head()
    shapes = build_shapes(head)
    for array in (*vars(head).values(), *head.landmarks.values(), shapes.position_deltas, shapes.normal_deltas):
        if isinstance(array, np.ndarray):
            array.flags.writeable = False
    return head, shapes


class AvatarRenderer:
    """Owns the GPU resources for one context. `draw` renders one face frame (FACE_CHANNELS) and one body
    frame (BODY_CHANNELS, or None for the relaxed standing pose) with `camera` into the bound target."""

    def __init__(self, ctx: moderngl.Context, head: HeadMesh | None = None, shapes: ShapeSet | None = None,
                 blend_on_cpu: bool | None = None):  # fmt: skip
        """`blend_on_cpu`: sum the blend shapes with numpy rather than in the vertex shader (by default on a
        software renderer only, below)."""
        self.ctx = ctx
        self.blend_on_cpu = is_software(ctx) if blend_on_cpu is None else blend_on_cpu
        if head is None and shapes is None:
            head, shapes = built_in_avatar()
        self.head = head or build_head()
        self.shapes = shapes or build_shapes(self.head)
        self.eye_mesh: EyeMesh = build_eye()
        self.mannequin = Mannequin()
        self._relaxed = relaxed_pose()
        self._posed: tuple[bytes, tuple[np.ndarray, np.ndarray]] | None = None
        self._relaxed_head = self._pose(None)[1][:3, 3]
        self._build_programs()
        self._build_head()
        self._build_eyes()
        self._build_body()
        self.backdrop = Backdrop(ctx)

    def _build_programs(self) -> None:
        ctx = self.ctx
        self.head_program = ctx.program(vertex_shader=shaders.HEAD_VERTEX, fragment_shader=shaders.HEAD_FRAGMENT)
        self.mesh_program = ctx.program(vertex_shader=shaders.MESH_VERTEX, fragment_shader=shaders.MESH_FRAGMENT)
        self.body_program = ctx.program(vertex_shader=shaders.SKINNED_VERTEX, fragment_shader=shaders.MESH_FRAGMENT)

    def _build_head(self) -> None:
        ctx, head = self.ctx, self.head
        # The inside of the skin shell is drawn dark; the mouth cavity is dark on both faces.
        dark_inside = np.isin(head.part, [PARTS.index("skin"), PARTS.index("cavity")]).astype(np.float32)[:, None]
        self.rest_geometry = np.hstack([head.positions, head.normals]).astype(np.float32)
        self.posed_geometry = ctx.buffer(self.rest_geometry.tobytes(), dynamic=True)  # rewritten on the CPU path
        surface = np.hstack([head.colors, dark_inside]).astype(np.float32)
        self.head_vao = ctx.vertex_array(
            self.head_program,
            [
                (self.posed_geometry, "3f 3f", "in_position", "in_normal"),
                (ctx.buffer(surface.tobytes()), "3f 1f", "in_colour", "in_dark_inside"),
            ],
            ctx.buffer(head.triangles.astype(np.int32).tobytes()),
        )
        # A software renderer (Mesa's llvmpipe, as headless here) fetches texels slowly in a vertex shader:
        # with the shader's sums a 640 px frame took 1.4 times as long (docs/viewer.md). There numpy sums
        # them once a frame instead (2.5 ms) and the shader gets no shapes to add; a GPU sums them itself.
        if self.blend_on_cpu:  # (shape, vertex * (position, normal)), as the vertex buffer lays them out
            deltas = np.concatenate([self.shapes.position_deltas, self.shapes.normal_deltas], axis=2)
            self.flat_deltas = deltas.reshape(len(deltas), -1).astype(np.float32, copy=False)
        else:
            self.position_deltas = _delta_texture(ctx, self.shapes.position_deltas)
            self.normal_deltas = _delta_texture(ctx, self.shapes.normal_deltas)
        _set(self.head_program, "position_deltas", 0)
        _set(self.head_program, "normal_deltas", 1)
        _set(self.head_program, "n_vertices", len(head.positions))
        _set(self.head_program, "texture_width", TEXTURE_WIDTH)

    def _build_eyes(self) -> None:
        eye = self.eye_mesh
        vertices = np.hstack([eye.positions, eye.normals, eye.colors]).astype(np.float32)
        self.eye_vao = self.ctx.vertex_array(
            self.mesh_program,
            [(self.ctx.buffer(vertices.tobytes()), "3f 3f 3f", "in_position", "in_normal", "in_colour")],
            self.ctx.buffer(eye.triangles.astype(np.int32).tobytes()),
        )

    def _build_body(self) -> None:
        mesh = self.mannequin.mesh
        ctx = self.ctx
        floats = np.hstack([mesh.positions, mesh.normals, mesh.colors]).astype(np.float32)
        self.body_vao = ctx.vertex_array(
            self.body_program,
            [
                (ctx.buffer(floats.tobytes()), "3f 3f 3f", "in_position", "in_normal", "in_colour"),
                (ctx.buffer(mesh.joints.astype(np.int32).tobytes()), "4i", "in_joints"),
                (ctx.buffer(mesh.weights.astype(np.float32).tobytes()), "4f", "in_weights"),
            ],
            ctx.buffer(mesh.triangles.astype(np.int32).tobytes()),
        )

    def _pose(self, body: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        """The mannequin's pose of a body frame (the relaxed pose for None), kept for the frame it was last
        asked for: a face camera that follows the head and the draw then pose it once."""
        frame = self._relaxed if body is None else body
        key = frame.tobytes()
        if self._posed is None or self._posed[0] != key:
            self._posed = (key, self.mannequin.pose(frame))
        return self._posed[1]

    def head_offset(self, body: np.ndarray | None) -> np.ndarray:
        """How far the head has moved from where it is in the relaxed pose: a face camera that adds it
        keeps the face framed when the body leans, slumps or sways."""
        if body is None:
            return np.zeros(3)
        return self._pose(body)[1][:3, 3] - self._relaxed_head

    def draw(self, face: np.ndarray | None, body: np.ndarray | None, camera: OrbitCamera, aspect: float) -> None:
        self.backdrop.draw()
        view_projection = camera.projection(aspect) @ camera.view()
        eye_pos = camera.eye()
        light = np.array([0.4, 0.7, 0.8])
        for program in (self.head_program, self.mesh_program, self.body_program):
            _set(program, "light_dir", tuple(light))
            _set(program, "eye_pos", tuple(eye_pos))

        skin, head_joint = self._pose(body)
        padded = np.zeros((shaders.MAX_JOINTS, 4, 4), np.float32)
        padded[: len(skin)] = skin.transpose(0, 2, 1)  # column-major for GLSL
        _write(self.body_program, "skin", padded)
        _write(self.body_program, "view_projection", view_projection.T.astype(np.float32))
        _set(self.body_program, "shininess", 12.0)
        _set(self.body_program, "specular", 0.05)
        self.body_vao.render()

        face = np.zeros(len(FACE_CHANNELS), np.float32) if face is None else face
        head_rot = head_rotation(*(float(face[_CHANNEL[k]]) for k in ("headYaw", "headPitch", "headRoll")))
        # The head turns about the top of the neck, not its centre.
        pivot = np.array([0.0, -0.075, -0.012])
        head_local = affine(np.eye(3), HEAD_CENTRE_IN_HEAD_JOINT + pivot) @ affine(head_rot, -pivot)
        head_model = head_joint @ head_local
        self._draw_head(face, view_projection, head_model)
        for side, centre in zip(("left", "right"), self.head.eye_centres, strict=True):
            yaw, pitch = float(face[_CHANNEL[f"{side}EyeYaw"]]), float(face[_CHANNEL[f"{side}EyePitch"]])
            model = head_model @ affine(rotation_y(yaw) @ rotation_x(pitch), centre)
            _write(self.mesh_program, "mvp", (view_projection @ model).T.astype(np.float32))
            _write(self.mesh_program, "model", model.T.astype(np.float32))
            _set(self.mesh_program, "shininess", 80.0)
            _set(self.mesh_program, "specular", 0.6)
            self.eye_vao.render()

    def _draw_head(self, face: np.ndarray, view_projection: np.ndarray, model: np.ndarray) -> None:
        weights = np.clip(face[: len(ARKIT_BLENDSHAPES)], 0.0, 1.0)
        active = np.flatnonzero(weights > ACTIVE_THRESHOLD)
        if self.blend_on_cpu:  # the same sums as the shader's, written into the vertices
            used = np.where(weights > ACTIVE_THRESHOLD, weights, 0.0).astype(np.float32)
            posed = self.rest_geometry + (used @ self.flat_deltas).reshape(self.rest_geometry.shape)
            self.posed_geometry.write(posed.tobytes())
            active = np.empty(0, np.int64)  # the shader adds no shapes
        shape_ids = np.zeros(shaders.MAX_ACTIVE_SHAPES, np.int32)
        shape_weights = np.zeros(shaders.MAX_ACTIVE_SHAPES, np.float32)
        shape_ids[: len(active)] = active
        shape_weights[: len(active)] = weights[active]
        program = self.head_program
        _set(program, "n_active", len(active))
        _write(program, "active_shape", shape_ids)
        _write(program, "active_weight", shape_weights)
        _write(program, "mvp", (view_projection @ model).T.astype(np.float32))
        _write(program, "model", model.T.astype(np.float32))
        if not self.blend_on_cpu:
            self.position_deltas.use(0)
            self.normal_deltas.use(1)
        self.head_vao.render()


class OffscreenTarget:
    """A multisampled colour+depth framebuffer resolved into a plain one for reading pixels."""

    def __init__(self, ctx: moderngl.Context, width: int, height: int, samples: int = 4) -> None:
        samples = min(samples, ctx.max_samples)
        self.ctx, self.width, self.height = ctx, width, height
        self.msaa = ctx.framebuffer(
            color_attachments=[ctx.renderbuffer((width, height), 4, samples=samples)],
            depth_attachment=ctx.depth_renderbuffer((width, height), samples=samples),
        )
        self.resolved = ctx.framebuffer(color_attachments=[ctx.renderbuffer((width, height), 4)])

    def use(self) -> None:
        self.msaa.use()
        self.ctx.viewport = (0, 0, self.width, self.height)
        self.msaa.clear(0.0, 0.0, 0.0, 1.0)

    def read(self) -> np.ndarray:
        """The image as (height, width, 3) uint8, top row first."""
        self.ctx.copy_framebuffer(self.resolved, self.msaa)
        pixels = np.frombuffer(self.resolved.read(components=3), np.uint8)
        return pixels.reshape(self.height, self.width, 3)[::-1].copy()
