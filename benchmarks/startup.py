"""How long `emostream` takes to start: the CLI alone (`emostream --help`, what every command pays before
its work), and `emostream serve` until /healthz answers, without the page, with the page's avatar built
(a first start: an empty avatar cache) and with it reused (a later start). The engine cache is the
user's, so the default backend's ONNX graphs are not exported again (the first run may export them).

    emostream bench startup [--repeats 3]

Writes benchmarks/results/startup.{json,md}; each figure is the median of the repeats.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np

from emostream.clients.local_server import free_port

CLI = [sys.executable, "-m", "emostream"]
HEALTH_TIMEOUT_S = 300.0


def cli_seconds() -> float:
    began = time.perf_counter()
    subprocess.run([*CLI, "--help"], check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - began


def serve_seconds(arguments: list[str], env: dict[str, str]) -> float:
    """Seconds from `emostream serve` to its first answer on /healthz."""
    port = free_port()
    began = time.perf_counter()
    server = subprocess.Popen([*CLI, "serve", "--port", str(port), "--max-sessions", "2", *arguments], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        while time.perf_counter() - began < HEALTH_TIMEOUT_S:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1).read()
                return time.perf_counter() - began
            except OSError:
                if server.poll() is not None:
                    raise RuntimeError(f"emostream serve exited with status {server.returncode}") from None
                time.sleep(0.05)
        raise RuntimeError(f"emostream serve did not answer within {HEALTH_TIMEOUT_S:.0f} s")
    finally:
        server.terminate()
        server.wait(timeout=30)


def main(argv: list[str] | None = None) -> None:
    from emostream.benchmarks.common import machine, write_result
    from emostream.engines.cache import default_cache_root

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "EMOSTREAM_CACHE": str(default_cache_root())}
    serve_seconds(["--no-page"], env)  # the engine cache filled, if it was not, before anything is timed
    runs: dict[str, list[float]] = {"cli": [], "serve_no_page": [], "serve_avatar_built": [], "serve_avatar_reused": []}
    for _ in range(args.repeats):
        runs["cli"].append(cli_seconds())
        runs["serve_no_page"].append(serve_seconds(["--no-page"], env))
        with tempfile.TemporaryDirectory(prefix="emostream-startup-") as cache:
            fresh = {**env, "XDG_CACHE_HOME": cache}
            runs["serve_avatar_built"].append(serve_seconds([], fresh))
            runs["serve_avatar_reused"].append(serve_seconds([], fresh))
    result = {"benchmark": "startup", "machine": machine(), "repeats": args.repeats,
              "median_s": {k: float(np.median(v)) for k, v in runs.items()}, "runs_s": runs}  # fmt: skip
    write_result("startup", result)
    rows = "\n".join(f"| {k} | {v:.2f} |" for k, v in result["median_s"].items())
    where = f"{result['machine']['cpu']}, {result['machine']['cores']} cores, {result['machine']['date']}"
    report = f"# Start-up ({where}; median of {args.repeats})\n\n| what | seconds |\n|---|---|\n{rows}\n"
    (Path(__file__).parent / "results" / "startup.md").write_text(report)
    print(report)


if __name__ == "__main__":
    main()
