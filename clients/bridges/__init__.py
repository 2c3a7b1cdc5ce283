"""Bridges to external engines: ZeroMQ, VMC (OSC), Unreal Live Link Face (docs/bridges.md)."""
