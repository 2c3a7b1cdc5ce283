"""A long run at steady load: `emostream bench soak`.

    python -m emostream.benchmarks.soak [--minutes 30] [--sessions 32] [--backend onnx]

`--sessions` paced clients (face + body, the bundled speech in 20 ms chunks, as in the latency
benchmark) talk to one `emostream serve` for `--minutes`; each client's session lasts `--session-s`
and is followed at once by a new one, so sessions open and close all along (a refused reconnect is
counted). Every `--sample-s` the
resident memory of the server's processes is read (/proc), with the late and dropped frame counters.
Memory growth is the last sample against the one after `--warm-minutes` (allocators and caches
settle in the first minutes). Writes benchmarks/results/soak.json and a plot.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import time
from pathlib import Path

import numpy as np

from emostream.benchmarks.common import RESULTS, machine, write_result
from emostream.benchmarks.latency import ServerProcess, Setup, child_pids, paced_client, speech_loop
from emostream.runtime.errors import SessionError


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def server_rss_mb(server: ServerProcess) -> float:
    pids = [server.process.pid, *child_pids(server.process.pid)]
    total = 0.0
    for pid in pids:
        with contextlib.suppress(OSError):  # a process that has just ended
            total += rss_mb(pid)
    return total


async def clients(url: str, n: int, session_s: float, until: float) -> dict[str, int]:
    pcm, rate = speech_loop(session_s)
    counts = {"sessions": 0, "frames": 0, "dropped": 0, "refused": 0}

    async def one(i: int) -> None:
        await asyncio.sleep(i * 1.0 / n)
        while time.monotonic() + session_s < until:
            try:
                frames = await paced_client(url, pcm, rate, i, 0.0, ("face", "body"))
            except SessionError as refused:  # counted: a reconnect must be admitted at once
                print(f"session refused: {refused}", flush=True)
                counts["refused"] += 1
                await asyncio.sleep(0.5)
                continue
            counts["sessions"] += 1
            counts["frames"] += len(frames)
            counts["dropped"] += sum(f.dropped_before for f in frames)

    await asyncio.gather(*(one(i) for i in range(n)))
    return counts


async def run(server: ServerProcess, args: argparse.Namespace) -> dict:
    until = time.monotonic() + 60 * args.minutes
    samples: list[dict] = []
    started = time.monotonic()

    async def sampler() -> None:
        while time.monotonic() < until:
            metrics = await asyncio.to_thread(server.metrics)
            samples.append({"minute": round((time.monotonic() - started) / 60, 2),
                            "rss_mb": round(server_rss_mb(server), 1),
                            "late": int(metrics.get("emostream_late_frames_total", 0)),
                            "sent": int(metrics.get("emostream_frames_sent_total", 0)),
                            "dropped": int(metrics.get("emostream_frames_dropped_total", 0))})  # fmt: skip
            print(samples[-1], flush=True)
            await asyncio.sleep(args.sample_s)

    sampling = asyncio.create_task(sampler())
    counts = await clients(server.url, args.sessions, args.session_s, until)
    await sampling
    return {"samples": samples, **counts}


def plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    samples = result["samples"]
    minutes = [s["minute"] for s in samples]
    fig, (ax_mem, ax_late) = plt.subplots(1, 2, figsize=(11, 4))
    ax_mem.plot(minutes, [s["rss_mb"] for s in samples], "o-")
    ax_mem.axvline(result["warm_minutes"], color="gray", linestyle=":", label="end of warm-up")
    ax_mem.set_xlabel("minutes")
    ax_mem.set_ylabel("server processes' resident memory (MB)")
    ax_mem.legend()
    late = np.diff([0] + [s["late"] for s in samples]) / np.maximum(1, np.diff([0] + [s["sent"] for s in samples]))
    ax_late.plot(minutes, 100 * late, "o-")
    ax_late.set_xlabel("minutes")
    ax_late.set_ylabel("late frames in the interval (%)")
    fig.suptitle(f"soak: {result['sessions_at_once']} sessions, {result['backend']} ({result['machine']['cpu']})")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--sessions", type=int, default=32)
    parser.add_argument("--session-s", type=float, default=60.0, help="each session's length")
    parser.add_argument("--sample-s", type=float, default=30.0)
    parser.add_argument("--warm-minutes", type=float, default=5.0)
    parser.add_argument("--backend", default="onnx")
    parser.add_argument("--name", default="soak")
    args = parser.parse_args(argv)
    server = ServerProcess(args.sessions, Setup(backend=args.backend))
    try:
        result = asyncio.run(run(server, args))
    finally:
        server.stop()
    samples = result["samples"]
    warm = next((s for s in samples if s["minute"] >= args.warm_minutes), samples[0])
    last = samples[-1]
    result |= {"machine": machine(), "backend": args.backend, "sessions_at_once": args.sessions,
               "minutes": args.minutes, "warm_minutes": args.warm_minutes,
               "rss_after_warm_up_mb": warm["rss_mb"], "rss_at_end_mb": last["rss_mb"],
               "memory_growth": (last["rss_mb"] - warm["rss_mb"]) / warm["rss_mb"],
               "late_fraction": last["late"] / max(1, last["sent"])}  # fmt: skip
    write_result(args.name, {"benchmark": "soak", **result})
    plot(result, RESULTS / f"{args.name}.png")
    print(f"memory {warm['rss_mb']:.0f} MB after warm-up -> {last['rss_mb']:.0f} MB at the end "
          f"({100 * result['memory_growth']:+.1f}%); late {100 * result['late_fraction']:.2f}%; "
          f"{result['sessions']} sessions, {result['refused']} refused")  # fmt: skip


if __name__ == "__main__":
    main()
