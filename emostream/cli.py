"""The `emostream` command line: one entry point, one subcommand per job."""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from emostream.runtime.assets import STYLE_HELP
from emostream.runtime.errors import EmostreamError
from emostream.runtime.event_loop import DEFAULT_INFERENCE, EVENT_LOOPS, INFERENCE_MODES
from emostream.runtime.protocol import EMOTIONS


def _demo(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from emostream.clients.demo import run_demo
    from emostream.clients.viewer.window import display_available

    out_dir = args.out or Path("emostream-out") / time.strftime("demo-%Y%m%d-%H%M%S")
    source = "the bundled speech sample" if args.audio is None else args.audio
    live = display_available() and not args.headless
    print(
        f"emostream demo: starting a server on loopback and streaming {source} to it "
        f"{'in real time' if not args.fast else 'as fast as possible'} over a WebSocket session; "
        "emotion neutral -> happy -> sad -> surprised (the server's first start on a machine exports its ONNX "
        "graphs into the engine cache: about 30 s, once)",
        flush=True,
    )
    if live:
        from emostream.clients.demo import run_live_demo

        return run_live_demo(args.audio, args.checkpoint)
    print("  no display: headless; the video is rendered with EGL once the take ends", flush=True)
    bars: list[tqdm] = []

    def progress(done: int, total: int) -> None:
        if not bars:
            bars.append(tqdm(desc="  rendering demo.mp4", total=total, unit="frame", leave=False))
        bars[0].update(done - bars[0].n)

    try:
        result = run_demo(out_dir, args.audio, realtime=not args.fast, checkpoint=args.checkpoint, progress=progress)
    finally:
        for bar in bars:
            bar.close()
    s = result.summary
    print(
        f"  {s['audio_seconds']:.1f} s of {s['input_rate_hz']:.0f} Hz audio in {s['chunk_ms']:.0f} ms chunks "
        f"-> {result.n_frames} face frames at {s['face_fps']} fps"
    )
    dropped = int(s["server_stats"].get("overloaded_chunks", 0))
    if dropped:
        print(f"  {dropped} audio chunks were dropped by the server as `overloaded` (it could not keep up with "
              "--fast); they are silence in the take")  # fmt: skip
    if s["capture_to_frame_received"]:
        c = s["capture_to_frame_received"]
        print(
            f"  capture -> frame received: p50 {c['p50_ms']:.1f} ms, p95 {c['p95_ms']:.1f} ms, "
            f"p99 {c['p99_ms']:.1f} ms, on top of the model's algorithmic latency (lookahead and "
            f"resampling) of {s['algorithmic_latency_ms']:.1f} ms"
        )
    body = ", body.png (gestures)" if (out_dir / "body.png").exists() else ""
    print(f"  wrote {out_dir}/: demo.mp4, contact.png{body}, face.png, face.npz, face.csv, latency.json")
    return 0


def _render(args: argparse.Namespace) -> int:
    import numpy as np
    from tqdm import tqdm

    from emostream.clients.viewer.video import Clip, contact_sheet, write_video
    from emostream.runtime.audio_files import read_audio
    from emostream.runtime.body_pose import frames_from_arrays
    from emostream.runtime.rigs import FACE_CHANNELS

    try:
        data = dict(np.load(args.animation))
    except (OSError, ValueError) as exc:
        raise EmostreamError(f"{args.animation}: not a readable npz ({exc})") from None
    if "face" not in data or "face_channels" not in data:
        raise EmostreamError(f"{args.animation}: no face frames (expected the `emostream animate` npz layout)")
    if args.avatar is not None:
        from emostream.clients.avatar.user_avatar import load_avatar

        try:
            load_avatar(args.avatar)
        except (OSError, ValueError) as exc:
            raise EmostreamError(str(exc)) from None
    body = frames_from_arrays(data)
    if args.view == "body" and body is None:
        raise EmostreamError(f"{args.animation} has no body frames to show: animate with the body on (the default)")
    index = [list(data["face_channels"]).index(name) for name in FACE_CHANNELS]
    clip = Clip(face=data["face"][:, index], fps=float(data["fps"]), body=body,
                body_fps=float(data.get("body_fps", 30)))  # fmt: skip
    audio = read_audio(args.audio) if args.audio else None
    with tqdm(desc=f"rendering {args.output.name}", unit="frame") as bar:

        def progress(done: int, total: int) -> None:
            bar.total = total
            bar.update(done - bar.n)

        frames = write_video(clip, args.output, audio, size=(args.size, args.size), fps=args.fps, view=args.view,
                             progress=progress, avatar=args.avatar)  # fmt: skip
    sheet = args.output.with_suffix(".png")
    contact_sheet(clip, sheet, view=args.view, avatar=args.avatar)
    print(f"wrote {args.output} ({frames} frames at {args.fps:g} fps) and {sheet}")
    return 0


def _view(args: argparse.Namespace) -> int:
    from emostream.clients.viewer.window import run_viewer

    return run_viewer(args)


def _rigs(args: argparse.Namespace) -> int:
    from emostream.runtime.rigs import RIGS, SMPLX_PARENTS, rest_offsets

    body = {name: {"fps": rig.fps, "channels": list(rig.channels)} for name, rig in RIGS.items()}
    body["body"]["parents"] = list(SMPLX_PARENTS)
    body["body"]["rest_offsets_m"] = rest_offsets().round(5).tolist()
    json.dump(body, sys.stdout, indent=None if args.compact else 1)
    print()
    return 0


def _animate(args: argparse.Namespace) -> int:
    from emostream.runtime.animate import animate
    from emostream.runtime.animation_files import check_output_format, write_animation

    check_output_format(args.output)
    animation = animate(
        args.audio, args.checkpoint, args.emotion, args.intensity, args.seed, args.lookahead_ms, args.steps,
        backend=args.backend, device=args.device, engine_cache=args.engine_cache, body=args.body,
        style=args.style, gesture_checkpoint=args.gesture_checkpoint, auto_weight=args.auto_weight,
    )  # fmt: skip
    write_animation(animation, args.output)
    m = animation.meta
    body = "" if animation.body is None else (
        f"; {animation.body.shape[0]} body frames at {animation.body_fps} fps, style {m['style']}")  # fmt: skip
    print(
        f"{args.output}: {animation.face.shape[0]} face frames at {animation.fps} fps{body} ({m['emotion']} "
        f"{m['intensity']:.2f}, lookahead {m['lookahead_ms']} ms, {m['steps']} steps, seed {m['seed']})"
    )
    return 0


def _export_beat2(args: argparse.Namespace) -> int:
    from emostream.runtime.motion_files import load_motion, write_beat2

    axis_angle, trans = load_motion(args.animation)
    write_beat2(args.output, axis_angle, trans)
    print(f"{args.output}: {axis_angle.shape[0]} frames at 30 fps in BEAT2's SMPL-X layout")
    return 0


def _export_bvh(args: argparse.Namespace) -> int:
    from emostream.runtime.bvh import write_bvh
    from emostream.runtime.motion_files import load_motion
    from emostream.runtime.rotations import axis_angle_to_matrix

    axis_angle, trans = load_motion(args.animation)
    write_bvh(args.output, axis_angle_to_matrix(axis_angle), trans, fps=30)
    print(f"{args.output}: {axis_angle.shape[0]} frames at 30 fps, {axis_angle.shape[1]} SMPL-X joints")
    return 0


def _export_avatar(args: argparse.Namespace) -> int:
    from emostream.clients.avatar.gltf_export import export_avatar

    if args.output.suffix.lower() not in (".glb", ".vrm"):
        raise EmostreamError(f"{args.output}: give a .glb (glTF 2.0 binary) or .vrm (VRM 1.0) file name")
    path = export_avatar(args.output)
    kind = "VRM 1.0" if path.suffix.lower() == ".vrm" else "glTF 2.0"
    print(f"{path}: the built-in avatar as {kind}, {path.stat().st_size / 1e6:.1f} MB (52 ARKit morph targets, "
          "a skinned SMPL-X skeleton)")  # fmt: skip
    return 0


def _train(args: argparse.Namespace) -> int:
    import importlib

    module = importlib.import_module(TRAINERS[args.model])
    module.main(args.options)
    return 0


def _serve(args: argparse.Namespace) -> int:
    import logging

    from emostream.runtime.assets import default_face_checkpoint
    from emostream.runtime.models.face import load_checkpoint
    from emostream.runtime.server import LOG_FORMAT, ServerConfig, serve_forever
    from emostream.runtime.web_files import WebFiles

    logging.basicConfig(level=logging.INFO, format=LOG_FORMAT)
    import torch

    torch.set_num_threads(args.threads)  # small batches gain little from more; the event loop needs a core
    network, _ = load_checkpoint(args.checkpoint or default_face_checkpoint())
    gesture = None
    if args.body:
        from emostream.runtime.assets import default_gesture_checkpoint
        from emostream.runtime.models.gesture import load_gesture_checkpoint

        path = args.gesture_checkpoint or default_gesture_checkpoint()
        gesture_network, style_names, _ = load_gesture_checkpoint(path)
        gesture = (gesture_network, style_names)
    web = WebFiles()
    if args.page:
        from emostream.clients.web import page_files

        web = page_files()
    config = ServerConfig(host=args.host, port=args.port, max_sessions=args.max_sessions, token=args.token,
                          certfile=args.certfile, keyfile=args.keyfile, backend=args.backend, device=args.device,
                          engine_cache=args.engine_cache, zmq_bind=args.zmq, body=args.body,
                          face=args.face, voice_emotion=args.voice_emotion, inference=args.inference,
                          workers=args.workers,
                          min_tick_ms=args.min_tick_ms, agent_port=args.agent_port,
                          idle_timeout_s=args.idle_timeout_s, hello_timeout_s=args.hello_timeout_s,
                          web=web)  # fmt: skip
    serve_forever(network, config, gesture, args.event_loop)
    return 0


def _stream(args: argparse.Namespace) -> int:
    from emostream.clients.stream import main as stream_main

    return stream_main(args)


TRAINERS = {
    "face": "emostream.training.train_face",
    "face-stages": "emostream.training.face_stages",
    "gesture": "emostream.training.train_gesture",
    "gesture-temperature": "emostream.training.gesture_temperature",
    "voice-emotion": "emostream.training.train_voice_emotion",
}
BENCHMARKS = {
    "hostile": "emostream.benchmarks.hostile",
    "loop": "emostream.benchmarks.inference_loop",
    "soak": "emostream.benchmarks.soak",
    "face-quality": "emostream.benchmarks.face_quality",
    "real-voices": "emostream.benchmarks.real_voices",
    "gesture-quality": "emostream.benchmarks.gesture_quality",
    "gesture-judge": "emostream.benchmarks.gesture_judge",
    "voice-emotion": "emostream.benchmarks.voice_emotion",
    "voice-emotion-ceiling": "emostream.benchmarks.voice_emotion_ceiling",
    "latency": "emostream.benchmarks.latency",
    "capacity": "emostream.benchmarks.capacity",
    "backends": "emostream.benchmarks.backends",
    "bridges": "emostream.benchmarks.bridges",
    "web-page": "emostream.benchmarks.headless_page",
    "closure-head": "emostream.benchmarks.closure_head",
    "closure-offset": "emostream.benchmarks.closure_offset",
    "false-closures": "emostream.benchmarks.false_closures",
    "lip-shape-heads": "emostream.benchmarks.lip_shape_heads",
    "render": "emostream.benchmarks.render",
    "startup": "emostream.benchmarks.startup",
}


def _bridge(args: argparse.Namespace) -> int:
    from emostream.clients.bridges.cli import main as bridge_main

    return bridge_main(args)


def _export(args: argparse.Namespace) -> int:
    from emostream.engines.export import run

    return run(args)


def _bench(args: argparse.Namespace) -> int:
    import importlib

    module = importlib.import_module(BENCHMARKS[args.name])
    module.main(args.options)
    return 0


def add_backend_arguments(parser: argparse.ArgumentParser, auto: bool = False) -> None:
    """`auto` (the server's default): onnx on the CPU, exported once into the engine cache; eager on CUDA."""
    about_auto = ("; auto: onnx on the CPU (its graphs exported into the engine cache at the first start, about "
                  "30 s), eager on CUDA") if auto else ""  # fmt: skip
    parser.add_argument("--backend", choices=(("auto",) if auto else ()) + ("eager", "compiled", "onnx", "tensorrt"),
                        default="auto" if auto else "eager",
                        help=f"what runs the model steps{about_auto} (docs/engines.md)")  # fmt: skip
    parser.add_argument("--device", default="cpu", help="cpu or cuda[:N]")
    parser.add_argument("--engine-cache", type=Path, default=None,
                        help="engine cache (default: $EMOSTREAM_CACHE or ~/.cache/emostream/engines)")  # fmt: skip


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Every option's help ends with its default, unless it says one itself or has none worth saying."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if "default" in text or action.default in (None, False, argparse.SUPPRESS) or action.required:
            return text
        return super()._get_help_string(action) or text


def package_version() -> str:
    """The installed package's version, with the protocol version its server speaks."""
    from importlib.metadata import PackageNotFoundError, version

    from emostream.runtime.protocol import PROTOCOL_VERSION

    try:
        installed = version("emostream")
    except PackageNotFoundError:  # run from a checkout that was never installed
        installed = "(not installed)"
    return f"{installed} (wire protocol {PROTOCOL_VERSION})"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="emostream", description="Real-time speech to emotional face and body animation."
    )
    parser.add_argument("--version", action="version", version=f"emostream {package_version()}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, help_text: str) -> argparse.ArgumentParser:
        return commands.add_parser(name, help=help_text, description=help_text, formatter_class=_HelpFormatter)

    demo = command("demo", "stream a bundled speech sample through the pipeline and report latency")
    demo.add_argument("--audio", type=Path, default=None, help="a WAV or FLAC file instead of the bundled sample")
    demo.add_argument("--out", type=Path, default=None, help="output folder (default: emostream-out/demo-TIME)")
    demo.add_argument("--fast", action="store_true", help="do not pace the audio in real time")
    demo.add_argument("--checkpoint", type=Path, default=None, help="face checkpoint (default: the shipped one)")
    demo.add_argument("--headless", action="store_true", help="render a video even when a display is available")
    demo.set_defaults(run=_demo)

    render = command("render", "animation .npz -> .mp4 (with sound) and a PNG contact sheet, headless")
    render.add_argument("animation", type=Path, help="an `emostream animate` or `emostream stream` .npz")
    render.add_argument("-o", "--output", type=Path, required=True, help="output .mp4")
    render.add_argument("--audio", type=Path, default=None, help="speech to mux in (WAV or FLAC)")
    render.add_argument("--size", type=int, default=720, help="video width and height in pixels")
    render.add_argument("--fps", type=float, default=30.0, help="video frame rate")
    render.add_argument("--view", choices=("face", "body"), default="face", help="the head, or the whole body")
    render.add_argument("--avatar", type=Path, default=None, help="your own .vrm or .glb avatar (docs/avatars.md)")
    render.set_defaults(run=_render)

    from emostream.clients.viewer.window import add_arguments as add_view_arguments

    view = command("view", "live viewer window: streams a file or the microphone to a server")
    add_view_arguments(view)
    view.set_defaults(run=_view)

    anim = command("animate", "speech file -> face animation (.npz, .json or Live Link .csv)")
    anim.add_argument("audio", type=Path, help="WAV or FLAC speech, any common rate, mono or stereo")
    anim.add_argument("-o", "--output", type=Path, required=True, help="output file: .npz, .json or .csv")
    anim.add_argument("--emotion", default="neutral", choices=(*EMOTIONS, "auto"),
                      help="the emotion; auto: the one the voice sounds like")  # fmt: skip
    anim.add_argument("--intensity", type=float, default=1.0, help="emotion strength, 0 to 1")
    anim.add_argument("--auto-weight", type=float, default=0.0,
                      help="mix in the voice's emotion: 0 the chosen one alone, 1 the voice alone")  # fmt: skip
    anim.add_argument("--seed", type=int, default=0, help="noise seed for the stochastic upper face and head")
    anim.add_argument("--lookahead-ms", type=float, default=60.0, help="future audio to wait for, 0 to 100 ms")
    anim.add_argument("--steps", type=int, default=2, help="sampler steps per frame, 1 to 8")
    anim.add_argument("--checkpoint", type=Path, default=None, help="face checkpoint (default: the shipped one)")
    anim.add_argument("--body", action=argparse.BooleanOptionalAction, default=True,
                      help="also generate SMPL-X body gestures")  # fmt: skip
    anim.add_argument("--style", default="ada",
                      help=f"gesture style: {STYLE_HELP}, or a 4-10 s motion clip .npz")  # fmt: skip
    anim.add_argument("--gesture-checkpoint", type=Path, default=None, help="gesture checkpoint")
    add_backend_arguments(anim)
    anim.set_defaults(run=_animate)

    bvh = command("export-bvh", "body motion .npz (animate, stream or BEAT2) -> BVH for Blender")
    bvh.add_argument("animation", type=Path, help="an .npz with body_axis_angle, or a BEAT2 SMPL-X npz")
    bvh.add_argument("-o", "--output", type=Path, required=True, help="output .bvh")
    bvh.set_defaults(run=_export_bvh)

    beat2 = command("export-beat2", "body motion .npz (animate or stream) -> BEAT2-style SMPL-X npz")
    beat2.add_argument("animation", type=Path, help="an .npz with body_axis_angle")
    beat2.add_argument("-o", "--output", type=Path, required=True, help="output .npz")
    beat2.set_defaults(run=_export_beat2)

    avatar = command("export-avatar", "the built-in avatar -> glTF 2.0 (.glb) or VRM 1.0 (.vrm)")
    avatar.add_argument("-o", "--output", type=Path, required=True, help="output .glb or .vrm")
    avatar.set_defaults(run=_export_avatar)

    serve_parser = command("serve", "run the WebSocket server")
    serve_parser.add_argument("--host", default="127.0.0.1", help="address to listen on (0.0.0.0: every one)")
    serve_parser.add_argument("--port", type=int, default=8765, help="WebSocket and HTTP port")
    serve_parser.add_argument("--max-sessions", type=int, default=32, help="sessions at once; more are refused")
    serve_parser.add_argument(
        "--event-loop", choices=EVENT_LOOPS, default=None, help="uvloop (the default where installed) or asyncio's own"
    )
    serve_parser.add_argument("--inference", choices=INFERENCE_MODES, default=DEFAULT_INFERENCE,
                              help="run the inference loop in a process of its own (its own GIL: the default) or "
                                   "on a thread of the server's process")  # fmt: skip
    serve_parser.add_argument("--token", default=None, help="require this token in every hello")
    serve_parser.add_argument("--certfile", type=Path, default=None, help="TLS certificate (with --keyfile)")
    serve_parser.add_argument("--keyfile", type=Path, default=None)
    serve_parser.add_argument("--checkpoint", type=Path, default=None, help="face checkpoint")
    serve_parser.add_argument("--body", action=argparse.BooleanOptionalAction, default=True,
                              help="serve the SMPL-X body stream to sessions asking for it")  # fmt: skip
    serve_parser.add_argument("--gesture-checkpoint", type=Path, default=None, help="gesture checkpoint")
    serve_parser.add_argument("--face", action=argparse.BooleanOptionalAction, default=True,
                              help="serve the face stream")  # fmt: skip
    serve_parser.add_argument("--voice-emotion", action=argparse.BooleanOptionalAction, default=True,
                              help='run the voice-emotion estimator for sessions asking for emotion "auto" or an '
                                   "auto_weight (docs/voice-emotion.md)")  # fmt: skip
    serve_parser.add_argument("--threads", type=int, default=1, help="torch threads for the inference loop")
    serve_parser.add_argument("--workers", type=int, default=1,
                              help="I/O processes sharing the port (more than one: when the WebSocket side is the "
                                   "limit; needs --inference process, the default)")  # fmt: skip
    serve_parser.add_argument("--min-tick-ms", type=float, default=4.0,
                              help="the inference loop's ticks begin at least this far apart")  # fmt: skip
    serve_parser.add_argument("--idle-timeout-s", type=float, default=30.0,
                              help="close a session with no message for this long")  # fmt: skip
    serve_parser.add_argument("--hello-timeout-s", type=float, default=10.0,
                              help="close a connection that sends no hello this long")  # fmt: skip
    serve_parser.add_argument("--no-page", dest="page", action="store_false",
                              help="do not serve the browser page at / (docs/web.md)")  # fmt: skip
    serve_parser.add_argument("--agent-port", type=int, default=None,
                              help="answer HAProxy agent checks on this port (deploy/haproxy.cfg)")  # fmt: skip
    add_backend_arguments(serve_parser, auto=True)
    serve_parser.add_argument("--zmq", default=None, metavar="ENDPOINT",
                              help="also publish frames on a ZeroMQ PUB socket, e.g. tcp://127.0.0.1:5557")  # fmt: skip
    serve_parser.set_defaults(run=_serve)

    from emostream.clients.stream import add_arguments

    stream_parser = command("stream", "stream a file, the microphone or stdin to a server")
    add_arguments(stream_parser)
    stream_parser.set_defaults(run=_stream)

    train = command("train", "train a model from scratch (data synthesis included)")
    train.add_argument("model", choices=sorted(TRAINERS), help="which model")
    train.add_argument("options", nargs=argparse.REMAINDER, help="options passed to the trainer (see --help)")
    train.set_defaults(run=_train)

    rigs = command("rigs", "print the face and body rigs (channel names, skeleton) as JSON")
    rigs.add_argument("--compact", action="store_true", help="one line of JSON")
    rigs.set_defaults(run=_rigs)

    from emostream.clients.bridges.cli import add_arguments as add_bridge_arguments

    bridge = command("bridge", "stream audio to a server and pass frames to ZeroMQ, VMC or Live Link")
    add_bridge_arguments(bridge)
    bridge.set_defaults(run=_bridge)

    from emostream.engines.export import add_arguments as add_export_arguments

    export = command("export", "build ONNX graphs or TensorRT engines into the engine cache, with parity")
    add_export_arguments(export)
    export.set_defaults(run=_export)

    bench = command("bench", "run a benchmark; results go to benchmarks/results/")
    bench.add_argument("name", choices=sorted(BENCHMARKS), help="which benchmark")
    bench.add_argument("options", nargs=argparse.REMAINDER, help="options passed to the benchmark")
    bench.set_defaults(run=_bench)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Runs a command; a user's error (a bad file, a server not there, a value refused) is one line on
    stderr and exit status 2, never a traceback."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.run(args))
    except KeyboardInterrupt:
        print(f"emostream {args.command}: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        message = user_error(exc, args)
        if message is None:
            raise
        print(f"emostream {args.command}: {message}", file=sys.stderr)
        return 2


def user_error(exc: BaseException, args: argparse.Namespace) -> str | None:
    """What to tell the user about `exc`, or None for a fault of emostream's own (a traceback helps then)."""
    from websockets.exceptions import InvalidHandshake, InvalidURI

    url = getattr(args, "url", None)
    if isinstance(exc, EmostreamError):
        return str(exc)
    if isinstance(exc, ConnectionRefusedError):
        return f"cannot reach {url or 'the server'}: connection refused (is `emostream serve` running there?)"
    if isinstance(exc, FileNotFoundError):
        return f"no such file: {exc.filename or exc}"
    if isinstance(exc, InvalidURI):
        return f"not a WebSocket URL: {exc.uri} (ws://host:port or wss://...)"
    if isinstance(exc, InvalidHandshake):
        return f"{url or 'the server'} refused the session: {exc}"
    if isinstance(exc, (OSError, TimeoutError)):
        return f"{url + ': ' if url else ''}{exc.strerror if isinstance(exc, OSError) and exc.strerror else exc}"
    return None


if __name__ == "__main__":
    sys.exit(main())
