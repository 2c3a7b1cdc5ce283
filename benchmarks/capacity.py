"""`emostream bench capacity`: the latency benchmark's capacity sweep (see benchmarks/latency.py)."""

from __future__ import annotations

import sys

from emostream.benchmarks.latency import main as latency_main


def main(argv: list[str] | None = None) -> None:
    latency_main(["--capacity", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    main()
