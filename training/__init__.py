"""Data synthesis, training and evaluation; the runtime never imports it."""
