"""`emostream bench capacity`: the latency benchmark's capacity sweep (see benchmarks/latency.py)."""

from __future__ import annotations

from benchmarks.latency import main as latency_main


def main(argv: list[str] | None = None) -> None:
    latency_main(["--capacity", *(argv or [])])


if __name__ == "__main__":
    main()
