"""`emostream view`: the live viewer window (glfw + ModernGL).

A network thread runs the client session (audio up from a file or the microphone, frames down) and feeds
the jitter buffer; the main thread draws at the display's rate, sampling the buffer at the playout clock,
and plays the audio through sounddevice on that same clock, so mouth and sound stay in sync. The HUD
shows end-to-end latency, the playout delay, fps, dropped frames, the emotion and, while the emotion
follows the voice, the server's estimate of it. Keys: 1-8 emotions, 0 the voice's own (emotion "auto"),
F face / B body view, drag to orbit, scroll to zoom, Esc quits. When the take ends, the HUD's last lines
are printed.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from emostream.runtime import protocol as P
from emostream.runtime.protocol import EMOTIONS

from .jitter import JitterBuffer

SCRIPT = Sequence[tuple[float, str, float]]  # (fraction of the take, emotion, intensity)


def display_available() -> bool:
    """True when a window can be opened: a display server is named and glfw initialises."""
    if not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        return False
    try:
        import glfw

        return bool(glfw.init())
    except Exception:  # no glfw shared library, or the display refuses
        return False


@dataclass
class LiveState:
    """Shared between the network thread and the window."""

    jitter: JitterBuffer = field(default_factory=JitterBuffer)
    body_jitter: JitterBuffer = field(default_factory=JitterBuffer)  # stays empty without a body stream
    latencies_ms: list[float] = field(default_factory=list)
    dropped: int = 0
    emotion: str = "neutral"
    audio: np.ndarray | None = None  # int16 samples by media index, for playback
    rate: int = 16_000
    finished: bool = False
    error: str | None = None
    loop: asyncio.AbstractEventLoop | None = None
    client: object | None = None

    def latency_p95_ms(self) -> float:
        recent = self.latencies_ms[-240:]
        return float(np.percentile(recent, 95)) if recent else float("nan")


async def _session(args: argparse.Namespace, state: LiveState, script: SCRIPT) -> None:
    from emostream.clients.client import EmostreamClient
    from emostream.clients.sources import file_source, microphone_source
    from emostream.runtime.audio_files import read_audio, to_int16

    if args.mic:
        rate, total = args.rate, None
        source = microphone_source(rate, 20.0, args.mic_device)
    else:
        samples, rate = read_audio(args.audio)
        total = samples.size
        state.audio = to_int16(samples)  # played back on the playout clock
        source = file_source(args.audio, 20.0, realtime=True)
    state.rate = rate
    asked = state.emotion
    client = await EmostreamClient.connect(args.url, rate, streams=("face", "body"),
                                           controls=P.Controls(emotion=asked), token=args.token)  # fmt: skip
    state.client = client
    if state.emotion != asked:  # a key pressed while the session was opening
        await set_emotion(state, state.emotion)
    await client.clock_sync()
    pending = list(script)
    origin_s: list[float] = []  # capture time of media sample 0, from the source's first chunk

    async def receive() -> None:
        while True:
            frame = await client.frames.get()
            if not origin_s:
                continue
            media_s = frame.media_sample / rate
            if frame.stream == "body":
                state.body_jitter.push(media_s, frame.values, frame.received_us / 1e6, origin_s[0] + media_s)
                continue
            state.dropped += frame.dropped_before
            if frame.latency_ms is not None:
                state.latencies_ms.append(frame.latency_ms)
            state.jitter.push(media_s, frame.values, frame.received_us / 1e6, origin_s[0] + media_s)

    receiver = asyncio.create_task(receive())
    try:
        async for chunk, capture_us in source:
            if not origin_s:
                origin_s.append(capture_us / 1e6 - client.samples_sent / rate)
            if total and pending and client.samples_sent >= pending[0][0] * total:
                _, emotion, intensity = pending.pop(0)
                asyncio.get_running_loop().create_task(set_emotion(state, emotion, intensity))
            await client.send_audio(chunk, capture_us)
        await client.end()
    finally:
        receiver.cancel()
        await client.close()
        state.finished = True


def voice_line(stats: Mapping[str, float]) -> str:
    """The server's estimate of the voice's emotion from a stats message (docs/protocol.md), as the
    browser page shows it: the top of the blend, its weight and the arousal; "" when the stats have none."""
    blend = {emotion: stats[f"voice.{emotion}"] for emotion in EMOTIONS if f"voice.{emotion}" in stats}
    if not blend:
        return ""
    top = max(blend, key=lambda emotion: blend[emotion])
    return f"voice: {top} {blend[top]:.2f}, arousal {stats.get('voice.arousal', 0.0):+.2f}"


async def set_emotion(state: LiveState, emotion: str, intensity: float = 0.9) -> None:
    state.emotion = emotion
    client = state.client
    if client is not None:
        await client.set_controls(P.Controls(emotion=emotion, intensity=intensity, transition_ms=400.0))  # type: ignore[attr-defined]


def _network_thread(args: argparse.Namespace, state: LiveState, script: SCRIPT) -> threading.Thread:
    def run() -> None:
        loop = asyncio.new_event_loop()
        state.loop = loop
        try:
            loop.run_until_complete(_session(args, state, script))
        except Exception as exc:  # shown in the window and printed on exit
            state.error = f"{type(exc).__name__}: {exc}"
            state.finished = True
        finally:
            loop.close()

    thread = threading.Thread(target=run, name="emostream-view-network", daemon=True)
    thread.start()
    return thread


class AudioPlayout:
    """Plays the streamed audio through sounddevice at the jitter buffer's playout clock."""

    def __init__(self, state: LiveState) -> None:
        import sounddevice

        self.state = state
        self.stream = sounddevice.OutputStream(samplerate=state.rate, channels=1, dtype="int16",
                                               callback=self._callback, latency="low")  # fmt: skip
        self.stream.start()

    def _callback(self, out: np.ndarray, frames: int, times: object, status: object) -> None:
        del status
        lead = float(getattr(times, "outputBufferDacTime", 0.0)) - float(getattr(times, "currentTime", 0.0))
        media = self.state.jitter.media_time(time.time() + max(lead, 0.0))
        audio = self.state.audio
        out.fill(0)
        if media is None or audio is None:
            return
        start = round(media * self.state.rate)
        lo, hi = max(start, 0), min(start + frames, audio.size)
        if hi > lo:
            out[lo - start : hi - start, 0] = audio[lo:hi]

    def close(self) -> None:
        self.stream.close()


def run_window(args: argparse.Namespace, script: SCRIPT = ()) -> int:
    """Opens the window and runs until the take ends (plus a second) or the user quits."""
    import glfw
    import moderngl

    from .camera import OrbitCamera
    from .renderer import AvatarRenderer, body_view, face_view, following_head
    from .user_renderer import UserAvatarRenderer

    if not glfw.init():
        raise RuntimeError("glfw could not initialise the display")
    glfw.window_hint(glfw.CONTEXT_VERSION_MAJOR, 3)
    glfw.window_hint(glfw.CONTEXT_VERSION_MINOR, 3)
    glfw.window_hint(glfw.OPENGL_PROFILE, glfw.OPENGL_CORE_PROFILE)
    glfw.window_hint(glfw.OPENGL_FORWARD_COMPAT, True)
    glfw.window_hint(glfw.SAMPLES, 4)
    window = glfw.create_window(args.width, args.height, "emostream", None, None)
    if not window:
        glfw.terminate()
        raise RuntimeError("glfw could not open an OpenGL 3.3 window")
    glfw.make_context_current(window)
    glfw.swap_interval(1)
    ctx = moderngl.create_context()
    avatar = UserAvatarRenderer(ctx, args.avatar) if args.avatar is not None else AvatarRenderer(ctx)
    hud = _Hud(ctx)
    state = LiveState(emotion=args.emotion)
    _network_thread(args, state, script)
    player = None
    if not args.mute:
        try:
            player = AudioPlayout(state)
        except Exception as exc:  # no sound card: carry on silent
            print(f"emostream view: no audio output ({exc}); continuing without sound")
    if isinstance(avatar, UserAvatarRenderer):
        cameras: dict[str, OrbitCamera] = {"face": avatar.focus("face"), "body": avatar.focus("body")}
    else:
        cameras = {"face": face_view(), "body": body_view()}
    view = ["face"]
    drag: list[tuple[float, float] | None] = [None]
    keys = {getattr(glfw, f"KEY_{k + 1}"): emotion for k, emotion in enumerate(EMOTIONS[:9])}
    keys[glfw.KEY_0] = P.AUTO_EMOTION  # the voice's own, as on the browser page

    def on_key(win, key, scancode, action, mods):  # type: ignore[no-untyped-def]
        if action != glfw.PRESS:
            return
        if key == glfw.KEY_ESCAPE:
            glfw.set_window_should_close(win, True)
        elif key in keys:
            if state.loop is None:  # not connecting yet: the session's hello will carry it
                state.emotion = keys[key]
            else:
                asyncio.run_coroutine_threadsafe(set_emotion(state, keys[key]), state.loop)
        elif key in (glfw.KEY_F, glfw.KEY_B):
            view[0] = "face" if key == glfw.KEY_F else "body"

    def on_cursor(win, x, y):  # type: ignore[no-untyped-def]
        if glfw.get_mouse_button(win, glfw.MOUSE_BUTTON_LEFT) == glfw.PRESS:
            if drag[0] is not None:
                cameras[view[0]].orbit(-(x - drag[0][0]) * 0.01, (y - drag[0][1]) * 0.01)
            drag[0] = (x, y)
        else:
            drag[0] = None

    def on_scroll(win, dx, dy):  # type: ignore[no-untyped-def]
        cameras[view[0]].zoom(0.9**dy)

    glfw.set_key_callback(window, on_key)
    glfw.set_cursor_pos_callback(window, on_cursor)
    glfw.set_scroll_callback(window, on_scroll)
    frame_times: list[float] = []
    hud_lines: list[str] = []
    finished_at = None
    last_image, shot_size = b"", (0, 0)
    try:
        while not glfw.window_should_close(window):
            now = time.time()
            frame_times = [t for t in frame_times if now - t < 1.0] + [now]
            width, height = glfw.get_framebuffer_size(window)
            ctx.viewport = (0, 0, width, height)
            ctx.screen.use()
            ctx.clear(0.0, 0.0, 0.0, 1.0, depth=1.0)
            # Face and body play at the larger of their delays: the body's frames wait for 200 ms of audio.
            delay = max(state.jitter.delay_s, state.body_jitter.delay_s if state.body_jitter.origin_s else 0.0)
            face, body = state.jitter.sample(now, delay), state.body_jitter.sample(now, delay)
            camera = following_head(cameras["face"], avatar, body) if view[0] == "face" else cameras["body"]
            avatar.draw(face, body, camera, width / max(height, 1))
            stats = state.jitter.stats()
            hud_lines = [
                f"emotion: {state.emotion}   (keys 1-{len(keys) - 1}, 0 auto; F/B views)",
                f"capture -> frame p95: {state.latency_p95_ms():.0f} ms; playout delay {stats.delay_s * 1e3:.0f} ms",
                f"{len(frame_times)} fps; dropped {state.dropped}; late {stats.late_frames}",
                voice_line(getattr(state.client, "last_stats", {})),
                state.error or "",
            ]  # fmt: skip
            hud.draw(hud_lines)
            if args.screenshot and not state.finished:
                last_image = ctx.screen.read(components=3)
                shot_size = (width, height)
            glfw.swap_buffers(window)
            glfw.poll_events()
            if state.finished and finished_at is None:
                finished_at = now
            if finished_at is not None and now - finished_at > 1.0 + stats.delay_s and not args.stay:
                break
    finally:
        if player is not None:
            player.close()
        glfw.terminate()
    print("emostream view: " + "; ".join([f"emotion {state.emotion}", *(line for line in hud_lines[1:] if line)]))
    if args.screenshot and last_image:
        from PIL import Image

        Image.frombytes("RGB", shot_size, last_image).transpose(Image.Transpose.FLIP_TOP_BOTTOM).save(args.screenshot)
    if state.error:
        print(f"emostream view: {state.error}")
        return 2
    return 0


class _Hud:
    """Text drawn with Pillow into a texture and blended over the top-left corner."""

    def __init__(self, ctx) -> None:  # type: ignore[no-untyped-def]
        import moderngl

        from . import shaders

        self.ctx = ctx
        self.program = ctx.program(vertex_shader=shaders.OVERLAY_VERTEX, fragment_shader=shaders.OVERLAY_FRAGMENT)
        self.size = (640, 120)
        self.texture = ctx.texture(self.size, 4)
        quad = np.array([-1, 1, 0, 0, -0.1, 1, 1, 0, -1, 0.7, 0, 1, -0.1, 0.7, 1, 1], np.float32)
        self.vao = ctx.vertex_array(self.program, [(ctx.buffer(quad.tobytes()), "2f 2f", "in_position", "in_uv")])
        self.moderngl = moderngl
        self._last = 0.0

    def draw(self, lines: list[str]) -> None:
        from .video import draw_caption

        now = time.monotonic()
        if now - self._last > 0.25:  # text changes a few times a second
            image = draw_caption(np.zeros((self.size[1], self.size[0], 3), np.uint8), lines)
            alpha = np.full(image.shape[:2] + (1,), 200, np.uint8)
            self.texture.write(np.concatenate([image, alpha], axis=2).tobytes())
            self._last = now
        self.ctx.enable(self.moderngl.BLEND)
        self.ctx.disable(self.moderngl.DEPTH_TEST)
        self.texture.use(0)
        self.vao.render(self.moderngl.TRIANGLE_STRIP)
        self.ctx.disable(self.moderngl.BLEND)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("audio", nargs="?", type=Path, help="WAV/FLAC speech to stream in real time")
    parser.add_argument("--url", default="ws://127.0.0.1:8765")
    parser.add_argument("--mic", action="store_true", help="stream the microphone instead of a file")
    parser.add_argument("--mic-device", default=None, help="microphone device name or index (with --mic)")
    parser.add_argument("--rate", type=int, default=16_000, help="microphone sample rate")
    parser.add_argument("--token", default=None)
    parser.add_argument("--emotion", default="neutral", choices=(*EMOTIONS, P.AUTO_EMOTION),
                        help="the emotion to start with; auto: the voice's own (keys 1-8 and 0 change it)")  # fmt: skip
    parser.add_argument("--mute", action="store_true", help="do not play the audio")
    parser.add_argument("--stay", action="store_true", help="keep the window open after the take ends")
    parser.add_argument("--screenshot", type=Path, default=None, help="save the last live frame as a PNG")
    parser.add_argument("--avatar", type=Path, default=None, help="your own .vrm or .glb avatar (docs/avatars.md)")
    parser.add_argument("--width", type=int, default=960)
    parser.add_argument("--height", type=int, default=960)


def run_viewer(args: argparse.Namespace) -> int:
    if not args.mic and args.audio is None:
        raise SystemExit("emostream view: give an audio file or --mic")
    if not display_available():
        raise SystemExit("emostream view: no display; use `emostream render` or `emostream demo` (headless)")
    if args.avatar is not None:
        from emostream.clients.avatar.user_avatar import load_avatar

        try:
            load_avatar(args.avatar)
        except (OSError, ValueError) as exc:
            raise SystemExit(f"emostream view: {exc}") from None
    if args.mic:
        args.mute = True  # playing the microphone back would echo
    return run_window(args)
