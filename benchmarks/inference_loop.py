"""The inference loop alone, driven by simulated sessions: `emostream bench loop`.

    python -m emostream.benchmarks.inference_loop [--sessions 8,32,128,512] [--seconds 4] [--backend onnx]
                                                  [--tick-ms 4] [--device cpu|cuda] [--mode compact|masked]

No sockets and no I/O process: N sessions (face + body, 16 kHz, the bundled speech, 20 ms chunks, each
at its own phase) write their audio straight into the audio table on a simulated clock, and the slot table
ticks every `--tick-ms` of simulated time, as the server's loop does under load. Everything a tick does is
timed on one core: the front-end's arithmetic, the model steps (the runners' `step` calls), and the rest
(the "other": bookkeeping, gathers and scatters, noise, emotion blends, stamps). A session count is
real-time when a simulated second costs less than a second of the loop's time (`load` < 1). `--auto`
gives every session the voice's emotion (emotion "auto"), so the voice-emotion estimator runs too; its
share of the tick (all its work, its step within "step") is reported apart.

`--clock server` ticks as the server's loop does instead (runtime/inference_loop.py): the next tick
begins `--tick-ms` after the previous one began, or as soon as it ends if it took longer, so a loop that
falls behind gathers more rows per step and per-tick costs are shared by more frames. There a session
count keeps up when the mean time between ticks stays within twice `--tick-ms` (the loop then adds at
most that much to a frame's latency on average) and every frame is made; the interval is reported,
and the frames still owed when the window closed (made after it, untimed, with no more audio).
Writes benchmarks/results/inference_loop[-DEVICE][-MODE].json and .png.
"""

from __future__ import annotations

import argparse
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from emostream.benchmarks.common import RESULTS, machine, write_result
from emostream.runtime.assets import bundled_speech, default_face_checkpoint, default_gesture_checkpoint
from emostream.runtime.audio_files import read_audio
from emostream.runtime.audio_table import AudioTable
from emostream.runtime.controls import emotion_controls
from emostream.runtime.messages import SlotSettings
from emostream.runtime.models.face import load_checkpoint
from emostream.runtime.models.gesture import load_gesture_checkpoint
from emostream.runtime.models.voice_emotion import load_voice_emotion
from emostream.runtime.slot_table import SlotTable
from emostream.runtime.step import StepRunner, StreamingGenerator
from emostream.runtime.timelines import eager, server_timelines, voice_track

CHUNK_MS = 20
LOOKAHEAD = 7  # feature frames: the default 58.3 ms


def runner_factory(backend: str, device: str, max_batch: int) -> Callable[[StreamingGenerator], StepRunner]:
    if backend == "eager" and device == "cpu":
        return eager
    from emostream.engines.factory import BackendFactory

    buckets = tuple(b for b in (1, 8, 32, 128, 512) if b < max_batch) + (max_batch,)
    return BackendFactory(backend, device, buckets)


def face_and_body_frames(blocks: list) -> int:
    """Frames in a tick's output blocks; the voice's emotion estimates are not frames."""
    return sum(len(block) for block in blocks if block.stream != "voice_emotion")


def measure(n: int, seconds: float, backend: str, device: str, tick_ms: float, mode: str, rounds: int = 1,
            clock: str = "fixed", auto: bool = False, voice_emotion: Path | None = None) -> dict:  # fmt: skip
    face, _ = load_checkpoint(default_face_checkpoint())
    gesture, _, _ = load_gesture_checkpoint(default_gesture_checkpoint())
    speech, rate = read_audio(bundled_speech())
    audio = AudioTable(n, threading.Lock())
    make_runner = runner_factory(backend, device, n)
    face, gesture = face.to(device), gesture.to(device)
    timelines = server_timelines(face, gesture, n, make_runner, masks=mode == "masked")
    voice = None
    if auto:
        voice = voice_track(load_voice_emotion(voice_emotion)[0].to(device), n, make_runner, mode == "masked")
    table = SlotTable(audio, timelines, device=device, max_rounds=rounds, mode=mode, voice=voice)
    rng = np.random.default_rng(0)
    chunk = rate * CHUNK_MS // 1000
    phase = rng.integers(0, chunk, n)  # sessions' chunks arrive out of phase, as real clients' do
    offset = rng.integers(0, speech.size, n)  # and say different things
    style = gesture.style_presets[0].cpu().numpy()
    for _ in range(n):
        slot, _ = audio.claim(0)
        vector, scale = emotion_controls("auto" if auto else "neutral", 1.0, 0.0)
        table.open(slot, SlotSettings(rate, slot, vector, 2, LOOKAHEAD, style, None, scale))
    sent = np.zeros(n, np.int64)
    warm_s = 1.0  # every shape the run will see is used once before timing starts
    total = {"frontend": 0.0, "step": 0.0, "tick": 0.0, "voice": 0.0}
    ticks, frames, durations_ms, intervals_ms = 0, 0, [], []
    frames_in_all = 0  # warm-up included
    t, elapsed = 0.0, 0.0
    while t < warm_s + seconds:
        interval = tick_ms / 1000 if clock == "fixed" else max(tick_ms / 1000, elapsed)
        t += interval
        due = np.maximum(((t * rate - phase) // chunk) * chunk + phase, 0)  # samples each session has sent
        due = np.minimum(due, int((warm_s + seconds) * rate))
        for slot in np.flatnonzero(due > sent):
            start = int(sent[slot])
            idx = (offset[slot] + np.arange(start, int(due[slot]))) % speech.size
            audio.write(slot, start, speech[idx], 1, 1)
            sent[slot] = due[slot]
        before = dict(table.seconds)
        started = time.perf_counter()
        table.run_frontend()
        voice_started = time.perf_counter()
        estimates = table.step_voice()  # as the server's tick: before the timelines
        voice_s = time.perf_counter() - voice_started
        made = [*table.step_ready(), *([] if estimates is None else [estimates])]
        if device.startswith("cuda"):
            torch.cuda.synchronize(device)
        elapsed = time.perf_counter() - started
        n_made = face_and_body_frames(made)
        frames_in_all += n_made
        if t > warm_s:
            ticks += 1
            durations_ms.append(elapsed * 1e3)
            intervals_ms.append(interval * 1e3)
            total["tick"] += elapsed
            for key in ("frontend", "step"):
                total[key] += table.seconds[key] - before[key]
            total["voice"] += voice_s
            frames += n_made
    # With no more audio, the frames the loop still owed when the window closed (a server clock that
    # fell behind owes some; the fixed clock none): made and counted apart, untimed.
    table.run_frontend()
    frames_behind = 0
    for _ in range(100_000):
        owed = face_and_body_frames(table.step_ready())
        if owed == 0:
            break
        frames_behind += owed
    frames_in_all += frames_behind
    other = total["tick"] - total["frontend"] - total["step"]
    frames_expected = int(n * seconds * 90)
    interval_mean_ms = float(np.mean(intervals_ms))
    if clock == "fixed":
        keeps_up = total["tick"] / seconds < 1.0
    else:
        keeps_up = interval_mean_ms <= 2 * tick_ms and frames >= 0.99 * frames_expected
    return {
        "sessions": n,
        "clock": clock,
        "keeps_up": bool(keeps_up),
        "simulated_s": seconds,
        "ticks": ticks,
        "frames": frames,
        "frames_expected": frames_expected,
        "frames_behind_at_end": frames_behind,
        "frames_in_all": frames_in_all,  # from the streams' start, warm-up and those owed at the end included
        "frames_expected_in_all": int(n * (warm_s + seconds) * 90),
        "load": total["tick"] / seconds,  # loop seconds per simulated second: real time below 1 (fixed clock)
        "tick_mean_ms": 1e3 * total["tick"] / ticks,
        "tick_p99_ms": float(np.percentile(durations_ms, 99)),
        "interval_mean_ms": interval_mean_ms,  # time between tick starts
        "interval_p99_ms": float(np.percentile(intervals_ms, 99)),
        "frontend_ms_per_tick": 1e3 * total["frontend"] / ticks,
        "step_ms_per_tick": 1e3 * total["step"] / ticks,
        "other_ms_per_tick": 1e3 * other / ticks,
        "voice_emotion_ms_per_tick": 1e3 * total["voice"] / ticks,  # all of its work, its step included
        "other_share": other / total["tick"],
        "non_step_share": (total["tick"] - total["step"]) / total["tick"],
    }


def plot(result: dict, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = result["rows"]
    n = [r["sessions"] for r in rows]
    fig, (ax_tick, ax_load) = plt.subplots(1, 2, figsize=(11, 4.2))
    bottom = np.zeros(len(rows))
    for key, label in (("step_ms_per_tick", "model steps"), ("frontend_ms_per_tick", "front-end"),
                       ("other_ms_per_tick", "other")):  # fmt: skip
        values = np.array([r[key] for r in rows])
        ax_tick.bar([str(x) for x in n], values, bottom=bottom, label=label)
        bottom += values
    ax_tick.set_xlabel("sessions (face + body)")
    ax_tick.set_ylabel(f"ms per tick (a tick every {result['tick_ms']} ms)")
    ax_tick.legend()
    if result["clock"] == "fixed":
        ax_load.plot(n, [r["load"] for r in rows], "o-")
        ax_load.axhline(1.0, color="gray", linestyle=":", label="real time")
        ax_load.set_ylabel("loop seconds per second of audio")
    else:
        ax_load.plot(n, [r["interval_mean_ms"] for r in rows], "o-", label="mean")
        ax_load.plot(n, [r["interval_p99_ms"] for r in rows], "s--", label="p99")
        ax_load.axhline(2 * result["tick_ms"], color="gray", linestyle=":", label="keeps up below (mean)")
        ax_load.set_ylabel("ms between tick starts")
    ax_load.set_xscale("log", base=2)
    ax_load.set_xlabel("sessions (face + body)")
    ax_load.legend()
    fig.suptitle(f"inference loop alone, {result['backend']} on {result['device_name']} ({result['mode']})")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", default="8,16,32,64,128,160,256,512")
    parser.add_argument("--seconds", type=float, default=4.0, help="simulated seconds timed per session count")
    parser.add_argument("--backend", default="onnx")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--tick-ms", type=float, default=4.0,
                        help="simulated time between ticks (the server's --min-tick-ms)")  # fmt: skip
    parser.add_argument("--mode", choices=("compact", "masked"), default="compact")
    parser.add_argument("--rounds", type=int, default=1, help="step rounds per timeline per tick (the server's: 1)")
    parser.add_argument("--clock", choices=("fixed", "server"), default="fixed",
                        help="fixed: a tick every --tick-ms; server: no sooner, or when the last one ends")  # fmt: skip
    parser.add_argument("--auto", action="store_true",
                        help='every session\'s emotion follows the voice (emotion "auto": the estimator runs too)')
    parser.add_argument("--voice-emotion", type=Path, help="the estimator's checkpoint with --auto (default: shipped)")
    parser.add_argument("--name", default=None, help="result file name (default: inference_loop[-DEVICE][-MODE])")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    device_name = torch.cuda.get_device_name(args.device) if args.device.startswith("cuda") else machine()["cpu"]
    rows = []
    for n in (int(x) for x in args.sessions.split(",")):
        row = measure(n, args.seconds, args.backend, args.device, args.tick_ms, args.mode, args.rounds, args.clock,
                      args.auto, args.voice_emotion)
        rows.append(row)
        print(f"{n:4d} sessions: load {row['load']:.2f}, tick {row['tick_mean_ms']:.2f} ms = step "
              f"{row['step_ms_per_tick']:.2f} + front-end {row['frontend_ms_per_tick']:.2f} + other "
              f"{row['other_ms_per_tick']:.2f} (non-step {100 * row['non_step_share']:.0f}%; voice emotion "
              f"{row['voice_emotion_ms_per_tick']:.2f}), every "
              f"{row['interval_mean_ms']:.2f} ms (p99 {row['interval_p99_ms']:.2f}), "
              f"frames {row['frames']}/{row['frames_expected']}, {'keeps up' if row['keeps_up'] else 'behind'}",
              flush=True)  # fmt: skip
    result = {"benchmark": "inference_loop", "machine": machine(), "device_name": device_name,
              "backend": args.backend, "device": args.device, "mode": args.mode, "tick_ms": args.tick_ms,
              "clock": args.clock, "auto_emotion": args.auto,
              "real_time_sessions": max((r["sessions"] for r in rows if r["keeps_up"]), default=0),
              "rows": rows}  # fmt: skip
    suffix = "".join(part for part, used in ((f"-{args.device.replace(':', '')}", args.device != "cpu"),
                                             (f"-{args.mode}", args.mode != "compact"),
                                             ("-server-clock", args.clock == "server"),
                                             ("-auto", args.auto)) if used)  # fmt: skip
    name = args.name or f"inference_loop{suffix}"
    write_result(name, result)
    plot(result, str(RESULTS / f"{name}.png"))
    print(f"real time up to {result['real_time_sessions']} sessions; wrote benchmarks/results/{name}.json")


if __name__ == "__main__":
    main()
