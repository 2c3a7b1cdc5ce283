"""`emostream demo`: the README's main command.

Starts `emostream serve` (the shipped face and gesture models) in a process of its own, as a user would,
streams the bundled speech sample (or a file) to it through a real WebSocket session, paced in 20 ms
chunks on a real-time clock, and switches the emotion live with control messages. Then, headless (no
display needed), it renders what came back:

- demo.mp4: the built-in head lip-syncing, the speech muxed in, a HUD with emotion and per-frame latency;
- contact.png: a contact sheet; body.png: the same moments in the body view (gestures);
- face.png: speech, spectrogram, mouth and emotion curves;
- face.npz and face.csv (the `emostream animate` layouts with the body keys, plus arrival stamps);
- latency.json: capture of the newest audio a frame used -> frame received, p50/p95/p99, with the
  algorithmic latency (lookahead plus chunking) stated beside it.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from emostream.clients.client import EmostreamClient, ReceivedFrame
from emostream.clients.local_server import LocalServer
from emostream.clients.sources import file_source
from emostream.clients.stream import latency_summary
from emostream.runtime import protocol as P
from emostream.runtime.animation_files import Animation, write_animation
from emostream.runtime.assets import bundled_speech
from emostream.runtime.audio import HOP_LENGTH, MODEL_SAMPLE_RATE_HZ, LogMelFrontEnd
from emostream.runtime.audio_files import read_audio, to_int16
from emostream.runtime.errors import ConfigError
from emostream.runtime.rigs import FACE_CHANNELS, FACE_FPS

CHUNK_MS = 20.0  # what a microphone callback typically delivers
# (fraction of the take, emotion, intensity): the emotion control changes live during the demo.
EMOTION_SCRIPT = ((0.0, "neutral", 1.0), (0.25, "happy", 0.9), (0.5, "sad", 0.9), (0.75, "surprised", 0.9))
TRANSITION_MS = 400.0


@dataclass
class Take:
    """What one streamed session brought back."""

    frames: list[ReceivedFrame]
    header: P.Header
    end: P.EndOfSession
    rate: int
    captions: list[tuple[float, str]] = field(default_factory=list)  # media time -> emotion shown from then

    @property
    def face(self) -> np.ndarray:
        return np.stack([f.values for f in self.frames if f.stream == "face"])

    @property
    def body(self) -> np.ndarray | None:
        frames = [f.values for f in self.frames if f.stream == "body"]
        return np.stack(frames) if frames else None


@dataclass(frozen=True)
class DemoResult:
    out_dir: Path
    n_frames: int
    summary: dict[str, Any]


def server_arguments(checkpoint: Path | None) -> list[str]:
    # The demo streams one session and opens no browser page, whose avatar would add seconds to the start.
    return ["--max-sessions", "4", "--no-page"] + (["--checkpoint", str(checkpoint)] if checkpoint else [])


FAST_AHEAD_S = 0.5


def _made_s(frames: list[ReceivedFrame], rate: int) -> float:
    """Media time (s) of the newest face frame received, 0 before the first."""
    newest = next((f for f in reversed(frames) if f.stream == "face"), None)
    return newest.media_sample / rate if newest else 0.0


async def stream_take(url: str, audio_path: Path, n_samples: int, rate: int, realtime: bool) -> Take:
    """One session against the server at `url`; `n_samples` at `rate` is the file's length, which places
    the emotion script."""
    client = await EmostreamClient.connect(  # the body too, where the server has a gesture model
        url, rate, streams=("face", "body"), controls=P.Controls(emotion="neutral", transition_ms=TRANSITION_MS)
    )
    await client.clock_sync()
    frames: list[ReceivedFrame] = []
    captions: list[tuple[float, str]] = []
    controls: list[asyncio.Task[P.Ack]] = []
    script = list(EMOTION_SCRIPT)
    async for chunk, captured in file_source(audio_path, CHUNK_MS, realtime=realtime):
        if script and client.samples_sent >= script[0][0] * n_samples:
            _, emotion, intensity = script.pop(0)
            captions.append((client.samples_sent / rate, f"{emotion} {intensity:.1f}"))
            # Sent beside the audio, never waited on, as a live user's key press would be.
            update = P.Controls(emotion=emotion, intensity=intensity, transition_ms=TRANSITION_MS)
            controls.append(asyncio.create_task(client.set_controls(update)))
        await client.send_audio(chunk, captured)
        frames += client.drain()
        # Unpaced (--fast), the audio may run ahead of the frames by at most FAST_AHEAD_S: as fast as the
        # server goes, never so far ahead that it drops chunks as overloaded.
        paced_by_frames = not realtime and "face" in client.header.streams
        while paced_by_frames and client.samples_sent / rate - _made_s(frames, rate) > FAST_AHEAD_S:
            await asyncio.sleep(0.002)
            frames += client.drain()
    await asyncio.gather(*controls)
    end = await client.end()
    frames += client.drain()
    await client.close()
    return Take(frames, client.header, end, rate, captions)


def run_demo(
    out_dir: Path,
    audio_path: Path | None = None,
    realtime: bool = True,
    checkpoint: Path | None = None,
    video_size: int = 640,
    progress: Callable[[int, int], None] | None = None,
) -> DemoResult:
    from emostream.clients.stream import save_frames
    from emostream.clients.viewer.video import Clip, contact_sheet, write_video

    audio_path = audio_path or bundled_speech()
    samples, rate = read_audio(audio_path)  # fails early, with a clear error, on a bad file
    with LocalServer(server_arguments(checkpoint)) as server:
        take = asyncio.run(stream_take(server.url, audio_path, samples.size, rate, realtime))
    face_frames = [f for f in take.frames if f.stream == "face"]
    if not face_frames:
        raise ConfigError("the server sent no face frames")
    face = take.face
    out_dir.mkdir(parents=True, exist_ok=True)
    latency = latency_summary(face_frames)
    algorithmic = take.header.algorithmic_latency_ms
    meta = {"model": "face.pt", "emotion_script": EMOTION_SCRIPT, "chunk_ms": CHUNK_MS, "captions": take.captions}
    write_animation(Animation(face, FACE_FPS, meta), out_dir / "face.csv")
    save_frames(out_dir / "face.npz", take.header, rate, take.frames, meta)
    summary: dict[str, Any] = {
        "audio_seconds": samples.size / rate,
        "input_rate_hz": float(rate),
        "chunk_ms": CHUNK_MS,
        "face_fps": FACE_FPS,
        "realtime": realtime,
        "algorithmic_latency_ms": algorithmic,
        "capture_to_frame_received": latency if realtime else {},
        "frames": len(face_frames),
        "server_stats": dict(take.end.stats),
        "measured_on": "loopback WebSocket to `emostream serve` in its own processes, on this machine",
    }
    (out_dir / "latency.json").write_text(json.dumps(summary, indent=2))
    plot_demo(LogMelFrontEnd(rate).offline(to_int16(samples)), samples, rate, face, out_dir)

    clip = Clip(face=face, fps=FACE_FPS, captions=take.captions, body=take.body)
    latencies = [f.latency_ms for f in face_frames]

    def hud(t: float) -> list[str]:
        k = min(round(t * FACE_FPS), len(latencies) - 1)
        frame_latency = latencies[k]
        shown = f"{frame_latency:.0f} ms" if realtime and frame_latency is not None else "n/a (--fast)"
        return [
            f"emotion: {clip.caption_at(t)}",
            f"capture -> frame: {shown} (+ {algorithmic:.0f} ms algorithmic)",
            f"t = {t:5.2f} s",
        ]

    write_video(clip, out_dir / "demo.mp4", audio=(samples, rate), size=(video_size, video_size), hud=hud,
                progress=progress)  # fmt: skip
    contact_sheet(clip, out_dir / "contact.png")
    if take.body is not None:
        contact_sheet(clip, out_dir / "body.png", view="body")
    return DemoResult(out_dir, int(face.shape[0]), summary)


def plot_demo(features: np.ndarray, samples: np.ndarray, rate: int, face: np.ndarray, out_dir: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ch = {n: i for i, n in enumerate(FACE_CHANNELS)}
    seconds = samples.size / rate
    fig, (wave_ax, mel_ax, mouth_ax, upper_ax) = plt.subplots(
        4, 1, figsize=(12, 8), sharex=True, height_ratios=[1, 1.5, 1.5, 1.5]
    )
    wave_ax.plot(np.arange(samples.size) / rate, samples, linewidth=0.4)
    wave_ax.set_ylabel("speech")
    mel_seconds = features.shape[0] * HOP_LENGTH / MODEL_SAMPLE_RATE_HZ
    mel_ax.imshow(features.T, origin="lower", aspect="auto", extent=(0, mel_seconds, 0, features.shape[1]))
    mel_ax.set_ylabel("log-mel band")
    t = np.arange(face.shape[0]) / FACE_FPS
    for name in ("jawOpen", "mouthClose", "mouthFunnel", "mouthPucker"):
        mouth_ax.plot(t, face[:, ch[name]], linewidth=0.9, label=name)
    mouth_ax.set_ylabel("mouth")
    mouth_ax.legend(fontsize=7, loc="upper right", ncol=4)
    for name in ("eyeBlinkLeft", "browInnerUp", "mouthSmileLeft", "mouthFrownLeft", "eyeWideLeft"):
        upper_ax.plot(t, face[:, ch[name]], linewidth=0.9, label=name)
    for fraction, emotion, _ in EMOTION_SCRIPT:
        upper_ax.axvline(fraction * seconds, color="gray", linestyle=":")
        upper_ax.text(fraction * seconds + 0.05, 0.95, emotion, fontsize=8, va="top")
    upper_ax.set_ylim(0, 1)
    upper_ax.set_ylabel("emotion, blinks")
    upper_ax.set_xlabel("media time (s)")
    upper_ax.legend(fontsize=7, loc="upper right", ncol=5)
    fig.suptitle("emostream demo: streamed speech -> face (60 fps), emotion changed live")
    fig.tight_layout()
    fig.savefig(out_dir / "face.png", dpi=90)
    plt.close(fig)


def run_live_demo(audio_path: Path | None, checkpoint: Path | None) -> int:
    """With a display: the viewer window streams to a server started for it."""
    import argparse

    from emostream.clients.viewer.window import add_arguments, run_window

    parser = argparse.ArgumentParser()
    add_arguments(parser)  # `emostream view`'s defaults
    with LocalServer(server_arguments(checkpoint)) as server:
        args = parser.parse_args([str(audio_path or bundled_speech()), "--url", server.url])
        return run_window(args, EMOTION_SCRIPT)
