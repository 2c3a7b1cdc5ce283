"""`emostream stream`: a file, the microphone or stdin streamed to a server; frames saved like `animate`.

It prints a latency summary from the frames' own stamps (capture of the newest audio used -> arrival).
"""

from __future__ import annotations

import argparse
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import numpy as np

from emostream.clients.client import EmostreamClient, ReceivedFrame
from emostream.clients.sources import file_source, microphone_source, stdin_source
from emostream.runtime import protocol as P
from emostream.runtime.assets import STYLE_HELP
from emostream.runtime.body_pose import body_arrays
from emostream.runtime.event_loop import run as run_event_loop


def latency_summary(frames: list[ReceivedFrame]) -> dict[str, float]:
    values = np.array([f.latency_ms for f in frames if f.latency_ms is not None])
    if values.size == 0:
        return {}
    return {f"p{q}_ms": float(np.percentile(values, q)) for q in (50, 95, 99)} | {
        "max_ms": float(values.max()),
        "jitter_ms": float(np.std(np.diff(values))) if values.size > 1 else 0.0,
        "frames": float(values.size),
        "dropped": float(sum(f.dropped_before for f in frames)),
    }


def save_frames(path: Path, header: P.Header, sample_rate_hz: int, frames: list[ReceivedFrame], meta: dict) -> None:
    """Same layout as `emostream animate` (face, face_channels, fps, time, meta, and the body keys when the
    session had the body), plus arrival stamps."""
    face = [f for f in frames if f.stream == "face"]
    channels = header.streams["face"].channels
    arrays: dict[str, Any] = {
        "face": np.stack([f.values for f in face]) if face else np.zeros((0, len(channels)), np.float32),
        "face_channels": np.array(channels),
        "fps": header.streams["face"].fps,
        "time": np.array([f.media_sample / sample_rate_hz for f in face]),
        "latency_ms": np.array([f.latency_ms or np.nan for f in face]),
        "meta": json.dumps(meta),
    }
    body = [f for f in frames if f.stream == "body"]
    if body:
        times = np.array([f.media_sample / sample_rate_hz for f in body])
        arrays |= body_arrays(np.stack([f.values for f in body]), header.streams["body"].fps, times)
        arrays["body_latency_ms"] = np.array([f.latency_ms or np.nan for f in body])
    np.savez(path, **arrays)


async def stream(args: argparse.Namespace) -> dict:
    source: AsyncIterator[tuple[np.ndarray, int]]
    if args.mic:
        rate = args.rate
        source = microphone_source(rate, args.chunk_ms, args.mic_device)
    elif str(args.audio) == "-":
        rate = args.rate
        source = stdin_source(rate, args.chunk_ms)
    else:
        from emostream.runtime.audio_files import read_audio

        rate = read_audio(args.audio)[1]
        source = file_source(args.audio, args.chunk_ms, realtime=args.realtime)
    controls = P.Controls(
        emotion=args.emotion, intensity=args.intensity, auto_weight=args.auto_weight, seed=args.seed,
        lookahead_ms=args.lookahead_ms, steps=args.steps, style=args.style if args.body else None,
    )  # fmt: skip
    streams = ("face", "body") if args.body else ("face",)
    client = await EmostreamClient.connect(args.url, rate, streams=streams, controls=controls, token=args.token)
    clock = await client.clock_sync()
    frames: list[ReceivedFrame] = []
    try:
        async for samples, captured in source:
            await client.send_audio(samples, captured)
            frames += client.drain()
            if args.seconds and client.samples_sent >= args.seconds * rate:
                break
        end = await client.end()
        frames += client.drain()
    finally:
        await client.close()
    summary = {
        "frames": {stream: sum(f.stream == stream for f in frames) for stream in client.header.streams},
        # Latency means something only when the audio came in real time (a file paced, or a live source).
        "latency_meaningful": args.mic or args.realtime or str(args.audio) == "-",
        "latency": latency_summary(frames),
        "clock_offset_us": clock.offset_us,
        "round_trip_us": clock.round_trip_us,
        "server_stats": dict(end.stats),
        "algorithmic_latency_ms": client.header.algorithmic_latency_ms,
    }
    if args.output:
        save_frames(
            args.output, client.header, rate, frames, {"url": args.url, "controls": controls.to_json(), **summary}
        )
    return summary


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("audio", nargs="?", type=Path, help="WAV/FLAC file, or - for raw int16 PCM on stdin")
    parser.add_argument("--url", default="ws://127.0.0.1:8765", help="the server to stream to")
    parser.add_argument("-o", "--output", type=Path, default=None, help="save frames to this .npz")
    parser.add_argument("--mic", action="store_true", help="stream the microphone (sounddevice)")
    parser.add_argument("--mic-device", default=None, help="microphone device name or index (with --mic)")
    parser.add_argument("--rate", type=int, default=16_000, choices=P.SAMPLE_RATES_HZ,
                        help="sample rate for --mic and stdin")  # fmt: skip
    parser.add_argument("--seconds", type=float, default=None, help="stop after this much audio (mic, stdin)")
    parser.add_argument("--chunk-ms", type=float, default=20.0, help="audio per message")
    parser.add_argument(
        "--realtime",
        action="store_true",
        help="pace a file in real time (otherwise as fast as possible, and latency means nothing)",
    )
    parser.add_argument("--emotion", default="neutral", choices=(*P.EMOTIONS, P.AUTO_EMOTION),
                        help='"auto": the emotion the voice carries, estimated by the server')  # fmt: skip
    parser.add_argument("--auto-weight", type=float, default=None,
                        help="share of the voice's estimated emotion mixed into --emotion, 0 to 1")  # fmt: skip
    parser.add_argument("--intensity", type=float, default=1.0, help="emotion strength, 0 to 1")
    parser.add_argument("--seed", type=int, default=0, help="noise seed")
    parser.add_argument("--lookahead-ms", type=float, default=60.0, help="future audio to wait for, 0 to 100")
    parser.add_argument("--steps", type=int, default=2, help="sampler steps per frame, 1 to 8")
    parser.add_argument("--token", default=None, help="the server's token, if it asks for one")
    parser.add_argument("--body", action=argparse.BooleanOptionalAction, default=False,
                        help="also ask for the SMPL-X body stream")  # fmt: skip
    parser.add_argument("--style", default="ada", help=f"body style preset (with --body): {STYLE_HELP}")


def main(args: argparse.Namespace) -> int:
    if not args.mic and args.audio is None:
        raise SystemExit("emostream stream: give an audio file, - for stdin, or --mic")
    summary = run_event_loop(stream(args))
    lat = summary["latency"]
    counts = ", ".join(f"{n} {stream} frames" for stream, n in summary["frames"].items())
    print(f"{counts}; algorithmic latency {summary['algorithmic_latency_ms']:.1f} ms")
    if lat and summary["latency_meaningful"]:
        print(
            f"capture -> frame received: p50 {lat['p50_ms']:.1f} ms, p95 {lat['p95_ms']:.1f} ms, "
            f"p99 {lat['p99_ms']:.1f} ms, jitter {lat['jitter_ms']:.2f} ms, dropped {lat['dropped']:.0f}"
        )
    elif lat:
        print(f"latency not measured: the file went faster than real time (--realtime paces it); "
              f"dropped {lat['dropped']:.0f}")  # fmt: skip
    if args.output:
        print(f"wrote {args.output}")
    return 0
