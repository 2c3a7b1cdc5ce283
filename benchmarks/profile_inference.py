"""Where the server's inference process spends its time under load: a py-spy profile.

    pip install py-spy
    python -m emostream.benchmarks.profile_inference --out profile.folded -- --sessions 32 --seconds 14 [--device cuda]

Runs the latency benchmark (the arguments after `--`) with its server, waits until the server answers
and its sessions have started, records the inference process with py-spy for `--duration` seconds, then
prints the share of samples in which each function is on the stack (inclusive), largest first. The
folded stacks go to `--out` (flamegraph.pl or speedscope read them).
"""

from __future__ import annotations

import argparse
import collections
import re
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

START_TIMEOUT_S = 600  # a compiled backend compiles every batch bucket before the server answers


def _server_port() -> int | None:
    """The port of the `emostream serve` the benchmark started, read from its command line."""
    found = subprocess.run(["pgrep", "-af", "emostream serve"], capture_output=True, text=True).stdout
    match = re.search(r"--port (\d+)", found)
    return int(match.group(1)) if match else None


def _inference_pid() -> int:
    found = subprocess.run(["pgrep", "-f", "multiprocessing.spawn"], capture_output=True, text=True).stdout.split()
    if not found:
        raise SystemExit("no inference process found (is the server's --inference process?)")
    return int(found[0])


def wait_for_server() -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        port = _server_port()
        try:
            if port is not None:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1).read()
                return
        except OSError:
            pass
        time.sleep(0.5)
    raise SystemExit("the server did not answer")


def inclusive_shares(folded: Path) -> list[tuple[float, str]]:
    """(share of samples, function) for every function on any sampled stack, largest first."""
    counts: collections.Counter[str] = collections.Counter()
    total = 0
    here = f"({Path.cwd()}/"
    for line in folded.read_text().splitlines():
        stack, _, n = line.rpartition(" ")
        if not stack:
            continue
        total += int(n)
        for frame in set(stack.split(";")):  # paths shortened to the repository's or the package's
            counts[re.sub(r"\(\S*site-packages/", "(", frame.replace(here, "("))] += int(n)
    return [(n / max(1, total), name) for name, n in counts.most_common()]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("profile-inference.folded"))
    parser.add_argument("--duration", type=int, default=6, help="seconds recorded")
    parser.add_argument("--settle", type=float, default=4.0, help="seconds after the server answers")
    parser.add_argument("--top", type=int, default=40)
    parser.add_argument("latency_args", nargs="*", help="arguments for benchmarks.latency (after --)")
    args = parser.parse_args(argv)
    if shutil.which("py-spy") is None:
        raise SystemExit("py-spy is not installed: pip install py-spy")
    bench = subprocess.Popen([sys.executable, "-m", "emostream.benchmarks.latency", *args.latency_args])
    try:
        wait_for_server()
        time.sleep(args.settle)  # the clients start spread over a second
        subprocess.run(["py-spy", "record", "-p", str(_inference_pid()), "-d", str(args.duration), "-r", "200",
                        "-f", "raw", "-o", str(args.out), "--nonblocking"], check=True)  # fmt: skip
    finally:
        bench.wait()
    for share, name in inclusive_shares(args.out)[: args.top]:
        print(f"{100 * share:5.1f}%  {name}")


if __name__ == "__main__":
    main()
