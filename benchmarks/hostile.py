"""Hostile clients against a real `emostream serve`: `emostream bench hostile`.

    python -m emostream.benchmarks.hostile [--messages 10000] [--idle 300] [--disconnects 100]

While a canary session streams speech in real time and must get every frame, the benchmark throws at the
same server:

- `--messages` fuzzed and mutated messages from a few connections: hello, controls, clock and end
  messages with fields deleted, retyped, out of range, truncated or padded past the size limit; audio
  chunks with flipped header bits, wrong kinds, versions and formats, odd lengths, NaN, infinite and
  out-of-range samples, rewinds, huge gaps and oversize payloads; binary garbage, and frames over the
  WebSocket limit. A connection the server closes is opened again.
- `--idle` sockets that connect and never say hello, and as many that say hello and then nothing;
- `--disconnects` sessions that stream for a moment and vanish without a close handshake;
- hellos at rates the server does not take.

It checks that every error the server sends carries a documented code (docs/protocol.md), that every
close after a fatal error uses that error's close code, that the server never crashes or stops
answering /healthz, and that the canary loses no frame. Writes benchmarks/results/hostile.json.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import random
import time
from collections import Counter
from typing import Any

import numpy as np
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from emostream.benchmarks.common import machine, write_result
from emostream.benchmarks.latency import ServerProcess, Setup, paced_client, speech_loop
from emostream.runtime import protocol as P

RATE = 16_000


def _valid_controls(rng: random.Random) -> dict[str, Any]:
    return {"emotion": rng.choice(P.EMOTIONS), "intensity": rng.random(), "transition_ms": rng.uniform(0, 500)}


def _junk(rng: random.Random) -> Any:
    return rng.choice([None, True, -1, 2**70, 1e308, -0.0, "", "x" * rng.randint(1, 300), [], {}, [1, "a"],
                       {"a": {"b": []}}, "\u0000\ud7ff", "NaN", float("inf") if rng.random() < 0.1 else 3])  # fmt: skip


def mutated_text(rng: random.Random) -> tuple[str, bool]:
    """A control message, valid or damaged in one of many ways; and whether it is certainly invalid."""
    base: dict[str, Any] = rng.choice([
        {"type": "hello", "protocol": 1, "sample_rate_hz": RATE, "controls": _valid_controls(rng)},
        {"type": "controls", "request_id": rng.randint(0, 99), "controls": _valid_controls(rng)},
        {"type": "clock", "client_send_us": rng.randint(0, 2**50)},
    ])  # fmt: skip
    invalid = base["type"] == "hello"  # a second hello is refused
    roll = rng.random()
    if roll < 0.2 and len(base) > 1:
        del base[rng.choice([k for k in base if k != "type"])]
        invalid = True  # every field of these but request_id is required... (request_id has a default)
        invalid = (invalid and "request_id" in base) or base["type"] != "controls"
    elif roll < 0.45:
        target = base.get("controls") if "controls" in base and rng.random() < 0.6 else base
        target[rng.choice([*target, "unknown_field"])] = _junk(rng)
    elif roll < 0.55:
        base["type"] = rng.choice(["", "HELLO", "frames", "stats", "x" * 40, 7])
        invalid = True
    text = json.dumps(base, allow_nan=True)
    roll = rng.random()
    if roll < 0.1:
        text, invalid = text[: rng.randint(0, len(text) - 1)], True  # truncated
    elif roll < 0.15:
        text, invalid = text + " " * (P.MAX_TEXT_BYTES + 1), True  # over the size limit
    elif roll < 0.2:
        depth = rng.randint(100, 4000)
        text, invalid = '{"type":"controls","controls":' + "[" * depth + "]" * depth + "}", True
    elif roll < 0.25:
        text, invalid = rng.choice(["null", "[]", "42", '"hello"', "{not json", "\ufeff{}"]), True
    return text, invalid


def mutated_audio(rng: random.Random, seq: int, start: int) -> tuple[bytes, bool]:
    """An audio chunk, valid or damaged; and whether it is certainly invalid."""
    n = rng.choice([1, 160, 320, 4000])
    kind = rng.random()
    invalid = False
    if kind < 0.1:
        samples: np.ndarray = np.full(n, rng.choice([np.nan, np.inf, -np.inf, 3.0, 1e30]), np.float32)
        invalid = True  # NaN, infinite, or float data over the peak, in an s16le session besides
    elif kind < 0.2:
        samples, invalid = np.zeros(P.MAX_AUDIO_SAMPLES + rng.randint(1, 100), np.int16), True  # over the limit
    else:
        samples = (np.random.default_rng(seq).normal(0, 3000, n)).astype(np.int16)
    header_start = rng.choice([start, start, start - 100, start + 10**6])
    invalid = invalid or (start >= 100 and header_start == start - 100) or header_start == start + 10**6
    header = P.AUDIO_HEADER.pack(P.KIND_AUDIO, P.PROTOCOL_VERSION, 2 if samples.dtype == np.float32 else 1, 0,
                                 seq, max(0, header_start), 0)  # fmt: skip
    data = bytearray(header + samples.tobytes())
    roll = rng.random()
    if roll < 0.2:
        for _ in range(rng.randint(1, 4)):  # flipped header bits: valid or not, no telling
            data[rng.randrange(P.AUDIO_HEADER.size)] ^= 1 << rng.randrange(8)
        invalid = False
    elif roll < 0.3:
        data, invalid = data[: rng.randint(0, P.AUDIO_HEADER.size - 1)], True  # cut inside the header
    elif roll < 0.35:
        data, invalid = bytearray([rng.choice([0, 2, 3, 255])]) + rng.randbytes(rng.randint(1, 64)), True  # garbage
    return bytes(data), invalid


class FuzzConnection:
    """One connection that sends mutated messages, each followed by a clock ping, and reads what the
    server answers before the pong: that is its answer to the mutated message, as replies come in order."""

    def __init__(self, url: str, rng: random.Random, tally: Counter[str], problems: list[str]) -> None:
        self.url, self.rng, self.tally, self.problems = url, rng, tally, problems
        self.connection: ClientConnection | None = None
        self.seq = self.start = 0

    async def open(self) -> None:
        self.connection = await connect(self.url, max_size=None)
        self.seq = self.start = 0
        await self.connection.send(json.dumps({"type": "hello", "protocol": 1, "sample_rate_hz": RATE}))
        header = json.loads(await self.connection.recv())
        assert header["type"] == "header", header

    async def send_one(self) -> None:
        if self.connection is None:
            await self.open()
        assert self.connection is not None
        roll = self.rng.random()
        if roll < 0.45:
            message, invalid = mutated_text(self.rng)
            what: str | bytes = message
        elif roll < 0.98:
            data, invalid = mutated_audio(self.rng, self.seq, self.start)
            what = data
            self.seq += 1
        else:
            what, invalid = bytes(2 * P.MAX_BINARY_BYTES + 1), True  # over the WebSocket layer's limit
        start = self.start
        marker = self.rng.randint(1, 2**40)
        errors: list[dict[str, Any]] = []
        try:
            await self.connection.send(what)
            await self.connection.send(json.dumps({"type": "clock", "client_send_us": marker}))
            while True:
                reply = await asyncio.wait_for(self.connection.recv(), 10)
                if isinstance(reply, bytes):
                    continue  # frames made from accepted audio
                body = json.loads(reply)
                if body.get("type") == "clock" and body.get("client_send_us") == marker:
                    break
                if body.get("type") == "error":
                    errors.append(body)
                self.tally[f"reply.{body.get('type')}"] += 1
        except ConnectionClosed:
            self._closed(errors, what)
        self.tally["messages"] += 1
        self.tally["answered_with_error"] += bool(errors)
        if isinstance(what, bytes) and not errors and self.connection is not None:  # accepted: where the next goes
            chunk = P.decode_audio(what)
            self.start = chunk.start_sample + chunk.samples.size
        for error in errors:
            if error.get("code") not in P.ERROR_CODES:
                self.problems.append(f"undocumented error code {error.get('code')!r}")
            self.tally[f"error.{error.get('code')}"] += 1
        if invalid and not errors and not (isinstance(what, bytes) and len(what) > 2 * P.MAX_BINARY_BYTES):
            self.problems.append(f"no error for an invalid message: {str(what)[:80]!r} (expected start {start})")
        if len(errors) > 1:
            self.problems.append(f"{len(errors)} errors for one message: {[e.get('code') for e in errors]}")

    def _closed(self, errors: list[dict[str, Any]], what: str | bytes) -> None:
        assert self.connection is not None
        code = self.connection.close_code
        self.tally[f"close.{code}"] += 1
        fatal = [e for e in errors if e.get("fatal")]
        if isinstance(what, bytes) and len(what) > 2 * P.MAX_BINARY_BYTES:
            if code != 1009:  # the WebSocket layer's own refusal: "message too big"
                self.problems.append(f"an oversize message closed with {code}, not 1009")
        elif not fatal:
            self.problems.append(f"closed with {code} without a fatal error")
        elif code != P.ERROR_CODES[fatal[-1]["code"]][1]:
            self.problems.append(f"closed with {code} after a fatal {fatal[-1]['code']}")
        self.connection = None

    async def close(self) -> None:
        if self.connection is not None:
            await self.connection.close()


async def fuzz(url: str, n_messages: int, seed: int) -> tuple[Counter[str], list[str]]:
    tally: Counter[str] = Counter()
    problems: list[str] = []
    connections = [FuzzConnection(url, random.Random(seed + i), tally, problems) for i in range(4)]

    async def drive(connection: FuzzConnection, n: int) -> None:
        for _ in range(n):
            await connection.send_one()
        await connection.close()

    await asyncio.gather(*(drive(c, n_messages // len(connections)) for c in connections))
    return tally, problems


async def idle_sockets(url: str, n: int) -> int:
    """n connections that never say hello and n that say hello, then nothing; returns how many the server
    had closed by the end (all of them, after its hello and idle timeouts)."""
    silent = [await connect(url) for _ in range(n)]
    greeted = []
    for _ in range(n):
        connection = await connect(url)
        await connection.send(json.dumps({"type": "hello", "protocol": 1, "sample_rate_hz": RATE}))
        greeted.append(connection)
    closed = 0
    for connection in silent + greeted:
        with contextlib.suppress(TimeoutError, ConnectionClosed):
            await asyncio.wait_for(connection.wait_closed(), 10)
        closed += connection.close_code is not None
    return closed


async def vanishing_sessions(url: str, n: int) -> None:
    """Sessions that stream a moment and drop the TCP connection without a close handshake."""
    pcm, _ = speech_loop(0.3)
    for i in range(n):
        connection = await connect(url)
        await connection.send(json.dumps({"type": "hello", "protocol": 1, "sample_rate_hz": RATE}))
        for seq, start in enumerate(range(0, pcm.size, 320)):
            await connection.send(P.encode_audio(P.AudioChunk(seq, start, 0, pcm[start : start + 320])))
        if i % 2:
            await asyncio.sleep(0.05)
        connection.transport.abort()


async def bad_rates(url: str) -> list[str]:
    codes = []
    for rate in (0, 1, 11_025, 96_000, -16_000):
        async with connect(url) as connection:
            await connection.send(json.dumps({"type": "hello", "protocol": 1, "sample_rate_hz": rate}))
            with contextlib.suppress(ConnectionClosed):
                codes.append(json.loads(await connection.recv()).get("code"))
    return codes


async def run(url: str, args: argparse.Namespace) -> dict[str, Any]:
    pcm, rate = speech_loop(args.seconds)
    canary = asyncio.create_task(paced_client(url, pcm, rate, 0, 0.0, ("face", "body")))
    started = time.monotonic()
    tally, problems = await fuzz(url, args.messages, args.seed)
    fuzz_s = time.monotonic() - started
    closed = await idle_sockets(url, args.idle // 2)
    await vanishing_sessions(url, args.disconnects)
    rate_codes = await bad_rates(url)
    frames = await canary
    expected = int(np.ceil(pcm.size / rate * 60)) + int(np.ceil(pcm.size / rate * 30))
    lost = sum(f.dropped_before for f in frames)
    return {"messages": args.messages, "fuzz_seconds": round(fuzz_s, 1), "replies": dict(sorted(tally.items())),
            "problems": problems[:50], "n_problems": len(problems), "idle_sockets": args.idle,
            "idle_sockets_closed_by_server": closed, "vanishing_sessions": args.disconnects,
            "bad_rate_codes": rate_codes, "canary_frames": len(frames), "canary_frames_expected": expected,
            "canary_dropped": lost}  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--idle", type=int, default=300, help="idle sockets (half silent, half after hello)")
    parser.add_argument("--disconnects", type=int, default=100)
    parser.add_argument("--seconds", type=float, default=30.0, help="the canary session's speech")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--backend", default="onnx")
    parser.add_argument("--name", default="hostile", help="result file under benchmarks/results/")
    args = parser.parse_args(argv)
    server = ServerProcess(max_sessions=args.idle + 16, setup=Setup(backend=args.backend),
                           extra=("--idle-timeout-s", "5", "--hello-timeout-s", "5"))  # fmt: skip
    try:
        result = asyncio.run(run(server.url, args))
        alive = server.process.poll() is None
        import urllib.request

        health = urllib.request.urlopen(f"http://127.0.0.1:{server.port}/healthz", timeout=5).status
    finally:
        server.stop()
    result |= {"server_alive_after": alive, "healthz_after": health}
    result["passed"] = (alive and health == 200 and result["n_problems"] == 0
                        and result["canary_frames"] == result["canary_frames_expected"]
                        and result["idle_sockets_closed_by_server"] == result["idle_sockets"] // 2 * 2)  # fmt: skip
    write_result(args.name, {"benchmark": "hostile", "machine": machine(), **result})
    print(json.dumps(result, indent=1))
    if not result["passed"]:
        raise SystemExit("hostile clients found a problem (see above)")


if __name__ == "__main__":
    main()
