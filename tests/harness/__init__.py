"""Reusable checks that any streaming generator plugs into."""
