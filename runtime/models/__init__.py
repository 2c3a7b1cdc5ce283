"""Streaming generators that implement the step contract (runtime/step.py)."""
