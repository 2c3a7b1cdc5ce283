"""Latency and capacity benchmarks over real loopback WebSockets.

    python -m benchmarks.latency [--sessions 1,8,32] [--seconds 10]        # emostream bench latency
    python -m benchmarks.latency --capacity [--seconds 6]                  # emostream bench capacity

Sessions ask for the face and the body (60 + 30 frames per second each); --no-body measures face only.

The server runs as its own process (`emostream serve`), the clients in this one. Every client paces the
bundled speech on its own clock in 20 ms chunks, never waiting for replies, and stamps each chunk with
its capture time. Clients start spread evenly over `--start-spread-s` (1 s): out of phase, as real ones
are, and without every session ending in the same 20 ms (each end flushes 0.3 s of frames at once;
docs/server.md has what a synchronised end costs). From the frames' stamps (docs/protocol.md) it
reports, per session count: end to end (capture of the newest audio a frame used -> frame received;
the lookahead is excluded by construction, chunking is included), capture -> server send, server send
-> received, p50/p95/p99/max and jitter; the server's late (sent more than one frame period after its
audio arrived), dropped and shed frame counters. Capacity: the most sessions with at most 1% late frames.
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
from pathlib import Path

import numpy as np

from emostream.benchmarks.common import RESULTS, machine, write_result
from emostream.clients.audio_files import chunks, read_audio, to_int16
from emostream.clients.client import EmostreamClient, ReceivedFrame, now_us
from emostream.runtime import protocol as P
from emostream.runtime.demo import bundled_speech
from emostream.runtime.event_loop import DEFAULT_INFERENCE, EVENT_LOOPS, INFERENCE_MODES, default_event_loop
from emostream.runtime.event_loop import run as run_event_loop

CHUNK_MS = 20.0


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

    def __init__(self, max_sessions: int, checkpoint: Path | None, backend: str = "eager", body: bool = True,
                 event_loop: str | None = None, inference: str | None = None,
                 gesture_checkpoint: Path | None = None, device: str = "cpu") -> None:  # fmt: skip
        self.port = free_port()
        cmd = [
            sys.executable,
            "-m",
            "emostream.runtime.cli",
            "serve",
            "--port",
            str(self.port),
            "--max-sessions",
            str(max_sessions),
            "--backend",
            backend,
            "--device",
            device,
            "--body" if body else "--no-body",
        ]
        if event_loop:
            cmd += ["--event-loop", event_loop]
        if inference:
            cmd += ["--inference", inference]
        if checkpoint:
            cmd += ["--checkpoint", str(checkpoint)]
        if gesture_checkpoint and body:
            cmd += ["--gesture-checkpoint", str(gesture_checkpoint)]
        self.process = subprocess.Popen(
            cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env={**os.environ, "OMP_NUM_THREADS": "1"}
        )
        deadline = time.monotonic() + 240  # a first start on onnx or compiled exports or compiles first
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
        text = urllib.request.urlopen(f"http://127.0.0.1:{self.port}/metrics", timeout=5).read().decode()
        out = {}
        for line in text.splitlines():
            if line and not line.startswith("#") and "{" not in line:
                name, value = line.split()
                out[name] = float(value)
        return out

    def cpu_seconds(self) -> tuple[float, float]:
        """User plus system CPU time the server's own process has used, and its live child processes
        (the inference process) together (Linux /proc)."""
        children = sum(process_cpu_seconds(pid) for pid in child_pids(self.process.pid))
        return process_cpu_seconds(self.process.pid), children

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)


def speech_loop(seconds: float) -> tuple[np.ndarray, int]:
    samples, rate = read_audio(bundled_speech())
    repeats = int(np.ceil(seconds * rate / samples.size))
    return to_int16(np.tile(samples, repeats)[: int(seconds * rate)]), rate


async def paced_client(
    url: str, pcm: np.ndarray, rate: int, seed: int, start_delay_s: float, streams: tuple[str, ...]
) -> list[ReceivedFrame]:
    await asyncio.sleep(start_delay_s)  # clients start out of phase, as real ones do
    client = await EmostreamClient.connect(url, rate, streams=streams, controls=P.Controls(seed=seed))
    started_us, started = now_us(), time.monotonic()
    for start, chunk in chunks(pcm, rate, CHUNK_MS):
        await asyncio.sleep(max(0.0, started + (start + chunk.size) / rate - time.monotonic()))
        await client.send_audio(chunk, started_us + round(start * 1e6 / rate))
    await client.end(timeout_s=30)
    frames = client.drain()
    await client.close()
    return frames


def percentiles(values: np.ndarray) -> dict[str, float]:
    return {f"p{q}_ms": float(np.percentile(values, q)) for q in (50, 95, 99)} | {
        "max_ms": float(values.max()),
        "mean_ms": float(values.mean()),
    }


async def run_sessions(url: str, n: int, seconds: float, body: bool = True, spread_s: float = 1.0) -> dict:
    pcm, rate = speech_loop(seconds)
    gc.collect()
    gc.freeze()  # the clients' own collector pauses would show up as server latency
    streams = ("face", "body") if body else ("face",)
    results = await asyncio.gather(
        *(paced_client(url, pcm, rate, i, i * spread_s / max(n, 1), streams) for i in range(n))
    )
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
        "start_spread_s": spread_s,
        "streams": list(streams),
        "frames": len(frames),
        "frames_expected": expected * n,
        "end_to_end": percentiles(e2e),
        **per_stream,
        "capture_to_send": percentiles(to_send),
        "send_to_receive": percentiles(downlink),
        "jitter_ms": float(np.mean(jitter)),
        "dropped": int(sum(f.dropped_before for f in frames)),
        "degraded": int(sum(f.degraded for f in frames)),
    }


def client_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def measure(n: int, seconds: float, checkpoint: Path | None, backend: str = "eager", body: bool = True,
            spread_s: float = 1.0, event_loop: str | None = None, inference: str | None = None,
            gesture_checkpoint: Path | None = None, device: str = "cpu") -> dict:  # fmt: skip
    server = ServerProcess(max(n, 1), checkpoint, backend, body, event_loop, inference, gesture_checkpoint, device)
    try:
        server_cpu, client_cpu, started = server.cpu_seconds(), client_cpu_seconds(), time.monotonic()
        row = run_event_loop(run_sessions(server.url, n, seconds, body, spread_s), event_loop)
        wall = time.monotonic() - started
        row["event_loop"] = event_loop or default_event_loop()
        row["inference"] = inference or DEFAULT_INFERENCE
        own, children = (after - before for after, before in zip(server.cpu_seconds(), server_cpu, strict=True))
        row["server_cpu_cores"] = (own + children) / wall  # busy cores, averaged over the run
        row["inference_process_cpu_cores"] = children / wall  # 0 with the loop on a thread
        row["client_cpu_cores"] = (client_cpu_seconds() - client_cpu) / wall
        m = server.metrics()
        row["server_late_frames"] = int(m.get("emostream_late_frames_total", 0))
        row["server_frames_sent"] = int(m.get("emostream_frames_sent_total", 0))
        row["server_shed_frames"] = int(m.get("emostream_shed_frames_total", 0))
        row["late_fraction"] = row["server_late_frames"] / max(1, row["server_frames_sent"])
        # One batched model step, averaged over the server's recent ones (its /metrics histogram).
        steps = max(1.0, m.get("emostream_tick_seconds_count", 0))
        row["server_step_mean_ms"] = 1e3 * m.get("emostream_tick_seconds_sum", 0) / steps
        return row
    finally:
        server.stop()


def cpu(row: dict, key: str) -> str:
    return f"{row[key]:.2f} cores" if key in row else "-"


def table(rows: list[dict]) -> str:
    lines = [
        "| sessions | end to end p50 | p95 | p99 | max | capture->send p99 | send->receive p99 | jitter | late "
        "| dropped | face p99 | body p99 | server CPU | of it, inference process | clients CPU |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        e = r["end_to_end"]
        face, body = (f"{r[k]['p99_ms']:.1f} ms" if k in r else "-" for k in ("end_to_end_face", "end_to_end_body"))
        lines.append(
            f"| {r['sessions']} | {e['p50_ms']:.1f} ms | {e['p95_ms']:.1f} ms | {e['p99_ms']:.1f} ms | "
            f"{e['max_ms']:.1f} ms | {r['capture_to_send']['p99_ms']:.1f} ms | "
            f"{r['send_to_receive']['p99_ms']:.2f} ms | {r['jitter_ms']:.2f} ms | "
            f"{100 * r['late_fraction']:.2f}% | {r['dropped']} | "
            f"{face} | {body} | {cpu(r, 'server_cpu_cores')} | {cpu(r, 'inference_process_cpu_cores')} | "
            f"{cpu(r, 'client_cpu_cores')} |"
        )
    return "\n".join(lines)


def plot(rows: list[dict], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    n = [r["sessions"] for r in rows]
    for key in ("p50_ms", "p95_ms", "p99_ms"):
        ax.plot(n, [r["end_to_end"][key] for r in rows], marker="o", label=f"end to end {key[:3]}")
    ax.axhline(CHUNK_MS, color="gray", linestyle=":", label="chunk length (20 ms)")
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
                        help="the gesture checkpoint (default: shipped)")
    parser.add_argument("--backend", default="eager", help="the server's backend (eager, compiled, onnx)")
    parser.add_argument("--device", default="cpu", help="the server's device (cpu, cuda[:N])")
    parser.add_argument("--body", action=argparse.BooleanOptionalAction, default=True,
                        help="sessions ask for the body stream too (default: on)")  # fmt: skip
    parser.add_argument("--start-spread-s", type=float, default=1.0, help="clients start spread over this long")
    parser.add_argument(
        "--event-loop",
        choices=EVENT_LOOPS,
        default=None,
        help="server's and clients' event loop (default: uvloop where installed)",
    )
    parser.add_argument(
        "--inference",
        choices=INFERENCE_MODES,
        default=DEFAULT_INFERENCE,
        help="where the server runs its inference loop (default: %(default)s, as `emostream serve`)",
    )
    parser.add_argument("--name", default=None,
                        help="result file name under benchmarks/results/ (default: latency or capacity, with the "
                             "backend, -body and the inference mode)")  # fmt: skip
    args = parser.parse_args(argv)
    setup = (args.checkpoint, args.backend, args.body, args.start_spread_s, args.event_loop, args.inference,
             args.gesture_checkpoint, args.device)
    m = machine() | {
        "backend": args.backend,
        "device": args.device,
        "streams": "face+body" if args.body else "face",
        "event_loop": args.event_loop or default_event_loop(),
        "inference": args.inference,
    }
    if args.body:  # which gesture model the server loaded: its step's cost changes with the model's settings
        from emostream.runtime.animate import default_gesture_checkpoint
        from emostream.runtime.models.gesture import load_gesture_checkpoint

        gesture, _, metadata = load_gesture_checkpoint(args.gesture_checkpoint or default_gesture_checkpoint())
        m["gesture_model"] = {"created": metadata.get("created"), "guidance": gesture.config.guidance}
    if args.device.startswith("cuda"):
        import torch

        m["gpu"] = torch.cuda.get_device_name(args.device)
    suffix = ("" if args.backend == "eager" else f"-{args.backend}") + ("-body" if args.body else "")
    suffix += "" if args.device == "cpu" else f"-{args.device.replace(':', '')}"
    suffix += "" if args.inference == DEFAULT_INFERENCE else f"-{args.inference}"  # the thread loop: a comparison
    name = args.name or ("capacity" if args.capacity else "latency") + suffix
    if args.capacity:
        rows, best = [], 0
        for n in (8, 16, 24, 32, 40, 48, 64, 80, 96, 128, 160, 192, 256):
            row = measure(n, args.seconds, *setup)
            rows.append(row)
            print(
                f"{n} sessions: late {100 * row['late_fraction']:.2f}%, e2e p99 {row['end_to_end']['p99_ms']:.1f} ms",
                flush=True,
            )
            if row["late_fraction"] > 0.01 or row["frames"] < 0.99 * row["frames_expected"]:
                break
            best = n
        result = {"benchmark": "capacity", "machine": m, "capacity_sessions": best, "rows": rows}
        print(f"\ncapacity: {best} sessions with at most 1% late frames\n\n{table(rows)}")
        write_result(name, result)
        title = f"capacity sweep, {args.backend} ({m.get('gpu', m['cpu'])}, {m['cores']} cores)"
        plot(rows, RESULTS / f"{name}.png", title)
        return
    rows = [measure(int(n), args.seconds, *setup) for n in args.sessions.split(",")]
    print(
        f"Latency over loopback WebSockets, {args.seconds:.0f} s of paced speech per session, {m['streams']} "
        f"({m['cpu']}, {m['cores']} cores, {m['date']})\n\n{table(rows)}"
    )
    write_result(name, {"benchmark": "latency", "machine": m, "rows": rows})
    plot(rows, RESULTS / f"{name}.png", f"end-to-end latency, {args.backend} ({m['cpu']}, {m['cores']} cores)")


if __name__ == "__main__":
    main()
