"""Front-end benchmark: compute time per chunk of the streaming log-mel front-end, by input rate and
chunk size, on the bundled speech sample. Prints a Markdown table, writes
benchmarks/results/frontend.json and frontend.png.

    python -m benchmarks.frontend [--repeats 3]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from emostream.benchmarks.common import RESULTS, machine, percentiles_ms, write_result
from emostream.runtime.assets import bundled_speech
from emostream.runtime.audio import SUPPORTED_RATES_HZ, LogMelFrontEnd, Resampler
from emostream.runtime.audio_files import chunks, read_audio

CHUNK_MS = (10.0, 20.0, 40.0)


def speech_at(rate_hz: int) -> np.ndarray:
    samples, rate = read_audio(bundled_speech())
    if rate != rate_hz:
        samples = Resampler(rate, rate_hz).offline(samples).astype(np.float32)
    return np.clip(samples, -1, 1).astype(np.float32)


def time_stream(rate_hz: int, chunk_ms: float, samples: np.ndarray) -> list[float]:
    front_end = LogMelFrontEnd(rate_hz)
    state = front_end.init_state()
    durations = []
    for _, chunk in chunks(samples, rate_hz, chunk_ms):
        start = time.perf_counter()
        _, state = front_end.push(state, chunk)
        durations.append(time.perf_counter() - start)
    return durations


def run(repeats: int) -> dict:
    rows = []
    for rate in SUPPORTED_RATES_HZ:
        samples = speech_at(rate)
        for chunk_ms in CHUNK_MS:
            durations = [d for _ in range(repeats) for d in time_stream(rate, chunk_ms, samples)]
            audio_s = samples.size / rate * repeats
            rows.append({
                "rate_hz": rate,
                "chunk_ms": chunk_ms,
                "compute_ms": percentiles_ms(durations),
                "real_time_factor": sum(durations) / audio_s,
                "resampler_delay_ms": LogMelFrontEnd(rate).resampler_delay_s * 1e3,
            })  # fmt: skip
    return {"benchmark": "frontend", "machine": machine(), "rows": rows}


def print_table(result: dict) -> None:
    print(f"Streaming log-mel front-end on {result['machine']['cpu']} ({result['machine']['date']})\n")
    print("| input rate | chunk | compute p50 | p99 | real-time factor | resampler delay |")
    print("|---|---|---|---|---|---|")
    for r in result["rows"]:
        c = r["compute_ms"]
        print(f"| {r['rate_hz']} Hz | {r['chunk_ms']:.0f} ms | {c['p50']:.3f} ms | {c['p99']:.3f} ms | "
              f"{r['real_time_factor']:.4f} | {r['resampler_delay_ms']:.2f} ms |")  # fmt: skip


def plot(result: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4))
    width = 0.25
    for i, chunk_ms in enumerate(CHUNK_MS):
        rows = [r for r in result["rows"] if r["chunk_ms"] == chunk_ms]
        x = np.arange(len(rows)) + (i - 1) * width
        ax.bar(x, [r["compute_ms"]["p99"] for r in rows], width, label=f"{chunk_ms:.0f} ms chunks")
    ax.set_xticks(np.arange(len(SUPPORTED_RATES_HZ)), [f"{r / 1000:g} kHz" for r in SUPPORTED_RATES_HZ])
    ax.set_ylabel("compute per chunk, p99 (ms)")
    ax.set_title(f"Front-end compute per chunk ({result['machine']['cpu']})", fontsize=9)
    ax.legend()
    fig.tight_layout()
    fig.savefig(RESULTS / "frontend.png", dpi=100)
    plt.close(fig)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    result = run(args.repeats)
    print_table(result)
    path = write_result("frontend", result)
    plot(result)
    print(f"\nwrote {path} and {RESULTS / 'frontend.png'}")


if __name__ == "__main__":
    main()
