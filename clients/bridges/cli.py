"""`emostream bridge zmq|vmc|livelink`: stream a file, the microphone or stdin to a server and pass every
frame on to an external engine."""

from __future__ import annotations

import argparse
import asyncio
import logging
from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np

from emostream.clients.bridges.runner import BridgeStats, Sink, run_bridge
from emostream.clients.bridges.sinks import LiveLinkSink, VmcSink, ZmqSink
from emostream.clients.sources import file_source, microphone_source, stdin_source
from emostream.runtime import protocol as P


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("kind", choices=("zmq", "vmc", "livelink"), help="which engine protocol")
    parser.add_argument("audio", nargs="?", type=Path, help="WAV/FLAC file (paced in real time), - for stdin PCM")
    parser.add_argument("--url", default="ws://127.0.0.1:8765", help="the emostream server")
    parser.add_argument("--mic", action="store_true", help="stream the microphone (sounddevice)")
    parser.add_argument("--mic-device", default=None, help="microphone device name or index (with --mic)")
    parser.add_argument("--rate", type=int, default=16_000, help="sample rate for --mic and stdin")
    parser.add_argument("--bind", default="tcp://127.0.0.1:5557", help="zmq: the PUB endpoint")
    parser.add_argument("--to", default=None, help="vmc: host:port (default 127.0.0.1:39539 for a performer, "
                        ":39540 for an assistant); livelink: host:port (default 127.0.0.1:11111)")  # fmt: skip
    parser.add_argument("--role", choices=("performer", "assistant"), default="performer",
                        help="vmc: performer (bones and face, to a Marionette) or assistant (face only)")  # fmt: skip
    parser.add_argument("--unbundled", action="store_true", help="vmc: one datagram per OSC message")
    parser.add_argument("--subject", default="emostream", help="livelink: the subject name")
    parser.add_argument("--emotion", default="neutral")
    parser.add_argument("--token", default=None)


def make_sink(args: argparse.Namespace) -> Sink:
    if args.kind == "zmq":
        return ZmqSink(args.bind)
    default_port = (39539 if args.role == "performer" else 39540) if args.kind == "vmc" else 11111
    host, _, port = (args.to or f"127.0.0.1:{default_port}").rpartition(":")
    if args.kind == "vmc":
        return VmcSink(host, int(port), bundled=not args.unbundled, role=args.role)
    return LiveLinkSink(host, int(port), args.subject)


def make_source(args: argparse.Namespace) -> tuple[AsyncIterator[tuple[np.ndarray, int]], int]:
    if args.mic:
        return microphone_source(args.rate, device=args.mic_device), args.rate
    if args.audio is None or str(args.audio) == "-":
        return stdin_source(args.rate), args.rate
    from emostream.runtime.audio_files import read_audio

    return file_source(args.audio, realtime=True), read_audio(args.audio)[1]


def main(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    sink = make_sink(args)
    source, rate = make_source(args)
    stats = BridgeStats()
    try:
        streams = ("face",) if args.kind == "livelink" else ("face", "body")  # Live Link Face has no body
        asyncio.run(run_bridge(args.url, source, rate, sink, P.Controls(emotion=args.emotion), args.token, stats,
                               streams))  # fmt: skip
    except KeyboardInterrupt:
        pass
    finally:
        sink.close()
    print(f"emostream bridge {args.kind}: {stats.summary()}")
    return 0
