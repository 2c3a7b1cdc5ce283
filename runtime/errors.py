"""The project's exception tree: one root, typed children for the wire, audio, sessions and backends."""

from __future__ import annotations


class EmostreamError(Exception):
    """Root of every error emostream raises on purpose."""


class ConfigError(EmostreamError, ValueError):
    """A configuration value is missing, out of range or inconsistent."""


class AudioFormatError(EmostreamError, ValueError):
    """Audio that cannot be used: wrong dtype, rate, shape, size, or non-finite samples."""


class ProtocolError(EmostreamError):
    """A wire message that is malformed, oversize, out of order or otherwise not allowed.

    `code` is one of the error codes in docs/protocol.md; `fatal` says whether the session must close.
    """

    def __init__(self, code: str, message: str, *, fatal: bool = False) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.fatal = fatal


class SessionError(EmostreamError):
    """A session cannot be opened or continued (server full, bad token, idle too long)."""


class BackendError(EmostreamError):
    """A backend cannot build or run a model's step function."""


class ServerError(EmostreamError):
    """The server cannot go on: one of its processes died."""


class StartInterrupted(EmostreamError):
    """A stop signal came while the server was still starting (building or warming its models)."""


class SharedStateError(EmostreamError):
    """Memory shared with another server process is unusable: that process died holding a lock on it."""
