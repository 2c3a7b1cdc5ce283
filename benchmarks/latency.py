"""Latency and capacity benchmarks over real loopback WebSockets.

    python -m emostream.benchmarks.latency [--sessions 1,8,32] [--seconds 10]   # emostream bench latency
    python -m emostream.benchmarks.latency --capacity [--seconds 6]             # emostream bench capacity

Sessions ask for the face and the body (60 + 30 frames per second each); --no-body measures face only.

The server runs as its own process (`emostream serve`, with its inference process and `--workers` I/O
processes), the clients in this one. Every client paces the bundled speech on its own clock in
`--chunk-ms` chunks (20 ms), never waiting for replies, and stamps each chunk with its capture time.
Clients start spread evenly over `--start-spread-s` (1 s): out of phase, as real ones are, and without
every session ending in the same 20 ms. From the frames' stamps (docs/protocol.md) it reports, per
session count: end to end (capture of the newest audio a frame used -> frame received; the lookahead is
excluded by construction, chunking is included), capture -> server send, server send -> received,
p50/p95/p99/max and jitter; the server's late (sent more than one frame period after its audio arrived)
and dropped frames; CPU of the server's processes and of the clients. `--slow-reader` adds one more
session that streams audio but never reads: its frames are not counted, and the others' figures show
what it costs them. Capacity: the most sessions with at most 1% late frames.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import resource
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from emostream.benchmarks.common import RESULTS, machine, write_result
from emostream.clients.client import EmostreamClient, ReceivedFrame, now_us
from emostream.runtime import protocol as P
from emostream.runtime.assets import bundled_speech
from emostream.runtime.audio_files import chunks, read_audio, to_int16
from emostream.runtime.event_loop import EVENT_LOOPS, default_event_loop
from emostream.runtime.event_loop import run as run_event_loop

CAPACITY_STEPS = (8, 16, 24, 32, 40, 48, 64, 80, 96, 128, 160, 192, 256, 320, 384, 512)


@dataclass(frozen=True)
class Setup:
    """How the server runs and how the clients talk to it."""

    backend: str = "eager"
    device: str = "cpu"
    body: bool = True  # sessions ask for the body stream too
    chunk_ms: float = 20.0  # audio per message
    start_spread_s: float = 1.0
    workers: int = 1  # the server's I/O processes
    min_tick_ms: float = 4.0
    inference: str = "process"
    event_loop: str | None = None
    slow_reader: bool = False  # one more session that never reads its frames
    checkpoint: Path | None = None
    gesture_checkpoint: Path | None = None
    server_src: Path | None = None  # run the server from another checkout (old and new in one run)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def process_cpu_seconds(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:  # it has just exited
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def child_pids(pid: int) -> list[int]:
    children = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            if parent == pid:
                children.append(int(entry.name))
    return children


class ServerProcess:
    """`emostream serve` in a child process, ready when /healthz answers."""

    def __init__(self, max_sessions: int, setup: Setup, extra: tuple[str, ...] = ()) -> None:
        self.port = free_port()
        env = {**os.environ, "OMP_NUM_THREADS": "1"}
        module, cwd = "emostream", None
        if setup.server_src is not None:  # a checkout from before emostream/cli.py served from runtime/cli.py
            env["PYTHONPATH"] = str(setup.server_src)
            cwd = setup.server_src  # `python -m` puts the working directory first on sys.path
            module = "emostream.runtime.cli" if (setup.server_src / "runtime" / "cli.py").exists() else "emostream"
        cmd = [sys.executable, "-m", module, "serve", "--port", str(self.port),
               "--max-sessions", str(max_sessions), "--backend", setup.backend, "--device", setup.device,
               "--body" if setup.body else "--no-body", "--inference", setup.inference]  # fmt: skip
        if setup.workers != 1:
            cmd += ["--workers", str(setup.workers)]
        if setup.min_tick_ms != Setup.min_tick_ms:
            cmd += ["--min-tick-ms", str(setup.min_tick_ms)]
        if setup.event_loop:
            cmd += ["--event-loop", setup.event_loop]
        if setup.checkpoint:
            cmd += ["--checkpoint", str(setup.checkpoint)]
        if setup.gesture_checkpoint and setup.body:
            cmd += ["--gesture-checkpoint", str(setup.gesture_checkpoint)]
        cmd += extra
        self.process = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, cwd=cwd)
        deadline = time.monotonic() + 300  # a first start on onnx or compiled exports or compiles first
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{self.port}/healthz", timeout=1).read()
                return
            except OSError:
                time.sleep(0.2)
        self.stop()
        raise RuntimeError("the server did not start")

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def metrics(self) -> dict[str, float]:
        """The server's /metrics, each sample summed over its labels (streams)."""
        from prometheus_client.parser import text_string_to_metric_families

        text = urllib.request.urlopen(f"http://127.0.0.1:{self.port}/metrics", timeout=5).read().decode()
        out: dict[str, float] = {}
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if "le" not in sample.labels:
                    out[sample.name] = out.get(sample.name, 0.0) + sample.value
        return out

    def cpu_seconds(self) -> tuple[float, float]:
        """CPU time (user plus system) of the server's processes: the main one, and its children (the
        inference process, and any I/O workers) together (Linux /proc)."""
        children = sum(process_cpu_seconds(pid) for pid in child_pids(self.process.pid))
        return process_cpu_seconds(self.process.pid), children

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=20)


def speech_loop(seconds: float) -> tuple[np.ndarray, int]:
    samples, rate = read_audio(bundled_speech())
    repeats = int(np.ceil(seconds * rate / samples.size))
    return to_int16(np.tile(samples, repeats)[: int(seconds * rate)]), rate


async def paced_client(url: str, pcm: np.ndarray, rate: int, seed: int, start_delay_s: float,
                       streams: tuple[str, ...], chunk_ms: float = 20.0) -> list[ReceivedFrame]:  # fmt: skip
    await asyncio.sleep(start_delay_s)  # clients start out of phase, as real ones do
    client = await EmostreamClient.connect(url, rate, streams=streams, controls=P.Controls(seed=seed))
    started_us, started = now_us(), time.monotonic()
    for start, chunk in chunks(pcm, rate, chunk_ms):
        await asyncio.sleep(max(0.0, started + (start + chunk.size) / rate - time.monotonic()))
        await client.send_audio(chunk, started_us + round(start * 1e6 / rate))
    await client.end(timeout_s=30)
    frames = client.drain()
    await client.close()
    return frames


async def slow_reader(url: str, pcm: np.ndarray, rate: int, streams: tuple[str, ...], chunk_ms: float) -> None:
    """A session that streams its audio in real time and never reads a frame: its socket's buffers fill,
    and the server must keep it from costing the other sessions anything."""
    from websockets.asyncio.client import connect

    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", int(url.rsplit(":", 1)[1])))
    async with connect(url, sock=sock, max_queue=1) as connection:
        await connection.send(P.encode_control(P.Hello(rate, streams=streams)))
        await connection.recv()  # the header; nothing more is read
        started = time.monotonic()
        for seq, (start, chunk) in enumerate(chunks(pcm, rate, chunk_ms)):
            await asyncio.sleep(max(0.0, started + (start + chunk.size) / rate - time.monotonic()))
            await connection.send(P.encode_audio(P.AudioChunk(seq, start, now_us(), chunk)))
        connection.transport.abort()


def percentiles(values: np.ndarray) -> dict[str, float]:
    return {f"p{q}_ms": float(np.percentile(values, q)) for q in (50, 95, 99)} | {
        "max_ms": float(values.max()),
        "mean_ms": float(values.mean()),
    }


async def run_sessions(url: str, n: int, seconds: float, setup: Setup) -> dict:
    pcm, rate = speech_loop(seconds)
    gc.collect()
    gc.freeze()  # the clients' own collector pauses would show up as server latency
    streams = ("face", "body") if setup.body else ("face",)
    spread = setup.start_spread_s
    clients = [paced_client(url, pcm, rate, i, i * spread / max(n, 1), streams, setup.chunk_ms) for i in range(n)]
    extra = [slow_reader(url, pcm, rate, streams, setup.chunk_ms)] if setup.slow_reader else []
    results = (await asyncio.gather(*clients, *extra))[:n]
    frames = [f for r in results for f in r]
    e2e = np.array([(f.received_us - f.capture_time_us) / 1000 for f in frames])
    per_stream = {
        f"end_to_end_{s}": percentiles(np.array([(f.received_us - f.capture_time_us) / 1000 for f in frames
                                                 if f.stream == s]))
        for s in streams
    }  # fmt: skip
    to_send = np.array([(f.send_time_us - f.capture_time_us) / 1000 for f in frames])
    downlink = np.array([(f.received_us - f.send_time_us) / 1000 for f in frames])
    jitter = [np.std(np.diff([(f.received_us - f.capture_time_us) / 1000 for f in r])) for r in results if len(r) > 2]
    expected = sum(int(np.ceil(pcm.size / rate * fps)) for fps in (60, 30)[: len(streams)])
    return {
        "sessions": n,
        "seconds": seconds,
        "streams": list(streams),
        "frames": len(frames),
        "frames_expected": expected * n,
        "end_to_end": percentiles(e2e),
        **per_stream,
        "capture_to_send": percentiles(to_send),
        "send_to_receive": percentiles(downlink),
        "jitter_ms": float(np.mean(jitter)),
        "dropped": int(sum(f.dropped_before for f in frames)),
    }


def client_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def measure(n: int, seconds: float, setup: Setup) -> dict:
    server = ServerProcess(max(n + setup.slow_reader, 1), setup)
    try:
        server_cpu, client_cpu, started = server.cpu_seconds(), client_cpu_seconds(), time.monotonic()
        row = run_event_loop(run_sessions(server.url, n, seconds, setup), setup.event_loop)
        wall = time.monotonic() - started
        own, children = (after - before for after, before in zip(server.cpu_seconds(), server_cpu, strict=True))
        row["server_cpu_cores"] = (own + children) / wall  # busy cores, averaged over the run
        row["server_child_cpu_cores"] = children / wall  # the inference process (and I/O workers)
        row["client_cpu_cores"] = (client_cpu_seconds() - client_cpu) / wall
        m = server.metrics()
        row["server_late_frames"] = int(m.get("emostream_late_frames_total", 0))
        row["server_frames_sent"] = int(m.get("emostream_frames_sent_total", 0))
        row["server_overloaded_chunks"] = int(m.get("emostream_overloaded_chunks_total", 0))
        row["late_fraction"] = row["server_late_frames"] / max(1, row["server_frames_sent"])
        # The inference loop's ticks (its /metrics histogram) and their split.
        ticks = max(1.0, m.get("emostream_tick_seconds_count", 0))
        row["server_tick_mean_ms"] = 1e3 * m.get("emostream_tick_seconds_sum", 0) / ticks
        row["server_step_ms_per_tick"] = 1e3 * m.get("emostream_step_seconds_total", 0) / ticks
        return row
    finally:
        server.stop()


def table(rows: list[dict]) -> str:
    lines = [
        "| sessions | end to end p50 | p95 | p99 | max | capture->send p99 | send->receive p99 | jitter | late "
        "| dropped | face p99 | body p99 | server CPU | of it, children | clients CPU |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        e = r["end_to_end"]
        face, body = (f"{r[k]['p99_ms']:.1f} ms" if k in r else "-" for k in ("end_to_end_face", "end_to_end_body"))
        lines.append(
            f"| {r['sessions']} | {e['p50_ms']:.1f} ms | {e['p95_ms']:.1f} ms | {e['p99_ms']:.1f} ms | "
            f"{e['max_ms']:.1f} ms | {r['capture_to_send']['p99_ms']:.1f} ms | "
            f"{r['send_to_receive']['p99_ms']:.2f} ms | {r['jitter_ms']:.2f} ms | "
            f"{100 * r['late_fraction']:.2f}% | {r['dropped']} | {face} | {body} | {r['server_cpu_cores']:.2f} | "
            f"{r['server_child_cpu_cores']:.2f} | {r['client_cpu_cores']:.2f} |"
        )
    return "\n".join(lines)


def plot(rows: list[dict], path: Path, title: str, chunk_ms: float) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    n = [r["sessions"] for r in rows]
    for key in ("p50_ms", "p95_ms", "p99_ms"):
        ax.plot(n, [r["end_to_end"][key] for r in rows], marker="o", label=f"end to end {key[:3]}")
    ax.axhline(chunk_ms, color="gray", linestyle=":", label=f"chunk length ({chunk_ms:g} ms)")
    ax.set_xlabel("concurrent real-time sessions")
    ax.set_ylabel("ms (lookahead excluded)")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", default="1,8,32", help="comma-separated session counts")
    parser.add_argument("--seconds", type=float, default=10.0, help="audio per session")
    parser.add_argument("--capacity", action="store_true", help="find the most sessions with <= 1%% late frames")
    parser.add_argument("--checkpoint", type=Path, default=None, help="the face checkpoint (default: shipped)")
    parser.add_argument("--gesture-checkpoint", type=Path, default=None,
                        help="the gesture checkpoint (default: shipped)")  # fmt: skip
    parser.add_argument("--backend", default="auto",
                        help="the server's backend: auto (as `emostream serve`: onnx on the CPU), eager, "
                             "compiled or onnx")  # fmt: skip
    parser.add_argument("--device", default="cpu", help="the server's device (cpu, cuda[:N])")
    parser.add_argument("--body", action=argparse.BooleanOptionalAction, default=True,
                        help="sessions ask for the body stream too (default: on)")  # fmt: skip
    parser.add_argument("--chunk-ms", type=float, default=20.0, help="audio per message (default 20)")
    parser.add_argument("--start-spread-s", type=float, default=1.0, help="clients start spread over this long")
    parser.add_argument("--workers", type=int, default=1, help="the server's I/O processes (default 1)")
    parser.add_argument("--min-tick-ms", type=float, default=4.0, help="the server's --min-tick-ms (default 4)")
    parser.add_argument(
        "--inference",
        choices=("thread", "process"),
        default="process",
        help="where the server runs its inference loop (default: process, as `emostream serve`)",
    )
    parser.add_argument("--event-loop", choices=EVENT_LOOPS, default=None,
                        help="server's and clients' event loop (default: uvloop where installed)")  # fmt: skip
    parser.add_argument(
        "--server-src",
        type=Path,
        default=None,
        help="run the server from another checkout of emostream (to compare two in one run)",
    )
    parser.add_argument("--slow-reader", action="store_true",
                        help="one more session that never reads its frames (not counted)")  # fmt: skip
    parser.add_argument("--name", default=None,
                        help="result file name under benchmarks/results/ (default: latency or capacity, with the "
                             "backend, -body and the device)")  # fmt: skip
    args = parser.parse_args(argv)
    from emostream.engines.factory import resolve_backend

    args.backend = resolve_backend(args.backend, args.device)  # named as what ran
    setup = Setup(args.backend, args.device, args.body, args.chunk_ms, args.start_spread_s, args.workers,
                  args.min_tick_ms, args.inference, args.event_loop, args.slow_reader, args.checkpoint,
                  args.gesture_checkpoint, args.server_src)  # fmt: skip
    m = machine() | {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(setup).items()}
    m["event_loop"] = args.event_loop or default_event_loop()
    if args.device.startswith("cuda"):
        import torch

        m["gpu"] = torch.cuda.get_device_name(args.device)
    suffix = ("" if args.backend == "eager" else f"-{args.backend}") + ("-body" if args.body else "")
    suffix += "" if args.device == "cpu" else f"-{args.device.replace(':', '')}"
    name = args.name or ("capacity" if args.capacity else "latency") + suffix
    title = f"{args.backend} on {m.get('gpu', m['cpu'])}, {m['cores']} cores, {args.workers} I/O process(es)"
    if args.capacity:
        rows, best = [], 0
        for n in CAPACITY_STEPS:
            row = measure(n, args.seconds, setup)
            rows.append(row)
            print(f"{n} sessions: late {100 * row['late_fraction']:.2f}%, e2e p99 {row['end_to_end']['p99_ms']:.1f} ms",
                  flush=True)  # fmt: skip
            if row["late_fraction"] > 0.01 or row["frames"] < 0.99 * row["frames_expected"]:
                break
            best = n
        result = {"benchmark": "capacity", "machine": m, "capacity_sessions": best, "rows": rows}
        print(f"\ncapacity: {best} sessions with at most 1% late frames\n\n{table(rows)}")
        write_result(name, result)
        plot(rows, RESULTS / f"{name}.png", f"capacity sweep, {title}", args.chunk_ms)
        return
    rows = [measure(int(n), args.seconds, setup) for n in args.sessions.split(",")]
    print(f"Latency over loopback WebSockets, {args.seconds:.0f} s of paced speech per session, "
          f"{'face+body' if args.body else 'face'}, {args.chunk_ms:g} ms chunks ({title}, {m['date']})\n\n"
          f"{table(rows)}")  # fmt: skip
    write_result(name, {"benchmark": "latency", "machine": m, "rows": rows})
    plot(rows, RESULTS / f"{name}.png", f"end-to-end latency, {title}", args.chunk_ms)


if __name__ == "__main__":
    main()
