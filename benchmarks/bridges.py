"""Latency each bridge adds: frame received from the server -> datagram or message sent (`emostream bench
bridges`).

    python -m emostream.benchmarks.bridges [--seconds 8]

For each bridge (zmq, vmc bundled, vmc unbundled, livelink): an in-process server with the shipped face
model on loopback, the bundled speech paced in real time in 20 ms chunks, the bridge's sink, and a real
receiver draining on a thread (a ZeroMQ SUB, or a UDP socket). The bridge stamps each frame when the
WebSocket client receives it and again when the sink returns; p50/p99/max of the difference. Writes
benchmarks/results/bridges.json.
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import threading

import numpy as np
import zmq

from emostream.benchmarks.common import machine, write_result
from emostream.clients.bridges.runner import BridgeStats, Sink, run_bridge
from emostream.clients.bridges.sinks import LiveLinkSink, VmcSink, ZmqSink
from emostream.clients.sources import file_source
from emostream.runtime.assets import bundled_speech, default_face_checkpoint
from emostream.runtime.models.face import load_checkpoint
from emostream.runtime.server import EmostreamServer, ServerConfig


def drain_udp(sock: socket.socket, stop: threading.Event) -> None:
    sock.settimeout(0.2)
    while not stop.is_set():
        try:
            sock.recv(65536)
        except TimeoutError:
            continue


def drain_zmq(endpoint: str, stop: threading.Event) -> None:
    sub = zmq.Context.instance().socket(zmq.SUB)
    sub.setsockopt(zmq.SUBSCRIBE, b"emostream/")
    sub.setsockopt(zmq.RCVTIMEO, 200)
    sub.connect(endpoint)
    while not stop.is_set():
        try:
            sub.recv()
        except zmq.Again:
            continue
    sub.close()


async def measure(kind: str, seconds: float) -> dict:
    network, _ = load_checkpoint(default_face_checkpoint())
    server = EmostreamServer(network, ServerConfig(port=0, max_sessions=2))
    port = await server.start()
    stop = threading.Event()
    receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    receiver.bind(("127.0.0.1", 0))
    udp_port = receiver.getsockname()[1]
    sink: Sink
    if kind == "zmq":
        sink = ZmqSink("tcp://127.0.0.1:*")
        drainer = threading.Thread(target=drain_zmq, args=(sink.publisher.endpoint, stop), daemon=True)
    else:
        sink = (LiveLinkSink("127.0.0.1", udp_port, "bench") if kind == "livelink"
                else VmcSink("127.0.0.1", udp_port, bundled=kind == "vmc"))  # fmt: skip
        drainer = threading.Thread(target=drain_udp, args=(receiver, stop), daemon=True)
    drainer.start()
    await asyncio.sleep(0.3)
    stats = BridgeStats()
    source = file_source(bundled_speech(), realtime=True)
    limited = _limit(source, seconds)
    try:
        await run_bridge(f"ws://127.0.0.1:{port}", limited, 16_000, sink, stats=stats)
    finally:
        stop.set()
        drainer.join(timeout=2)
        sink.close()
        receiver.close()
        await server.stop()
    a = np.array(stats.bridge_latency_us) / 1000
    return {"bridge": kind, "frames": stats.frames, "p50_ms": float(np.percentile(a, 50)),
            "p99_ms": float(np.percentile(a, 99)), "max_ms": float(a.max())}  # fmt: skip


async def _limit(source, seconds: float):  # type: ignore[no-untyped-def]
    sent = 0.0
    async for chunk, captured in source:
        yield chunk, captured
        sent += chunk.size / 16_000
        if sent >= seconds:
            return


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=8.0, help="speech streamed per bridge")
    args = parser.parse_args(argv)
    rows = [asyncio.run(measure(kind, args.seconds)) for kind in ("zmq", "vmc", "vmc-unbundled", "livelink")]
    m = machine()
    print(f"Latency added by each bridge, frame received -> sent ({m['cpu']}, {m['cores']} cores, {m['date']})\n")
    print("| bridge | frames | p50 | p99 | max |\n|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['bridge']} | {r['frames']} | {r['p50_ms']:.3f} ms | {r['p99_ms']:.3f} ms | {r['max_ms']:.3f} ms |")
    write_result("bridges", {"benchmark": "bridges", "machine": m, "rows": rows})


if __name__ == "__main__":
    main()
