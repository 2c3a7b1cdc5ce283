"""How long `emostream` takes to start: the CLI alone (`emostream --help`, what every command pays before
its work), and `emostream serve` until /healthz answers, without the page, with the page's avatar built
(a first start: an empty avatar cache) and with it reused (a later start). The engine cache is the
user's, so the default backend's ONNX graphs are not exported again (the first run may export them).

    emostream bench startup [--repeats 3]

Writes benchmarks/results/startup.{json,md}; each figure is the median of the repeats.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time

import numpy as np

from emostream.clients.local_server import LocalServer

CLI = [sys.executable, "-m", "emostream"]


def cli_seconds() -> float:
    began = time.perf_counter()
    subprocess.run([*CLI, "--help"], check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - began


def serve_seconds(arguments: list[str], env: dict[str, str]) -> float:
    """Seconds from `emostream serve` to its first answer on /healthz."""
    began = time.perf_counter()
    with LocalServer(["--max-sessions", "2", *arguments], env=env):
        return time.perf_counter() - began


def main(argv: list[str] | None = None) -> None:
    from emostream.benchmarks.common import RESULTS, machine, write_result
    from emostream.engines.cache import default_cache_root

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    env = {"EMOSTREAM_CACHE": str(default_cache_root())}
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
    (RESULTS / "startup.md").write_text(report)
    print(report)


if __name__ == "__main__":
    main()
