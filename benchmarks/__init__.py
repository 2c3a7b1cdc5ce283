"""Latency, capacity, backend and quality benchmarks that print tables and write results/."""
