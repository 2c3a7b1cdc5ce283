"""Peers run in environments of their own (see benchmarks/real_voices.py); nothing here is imported."""
