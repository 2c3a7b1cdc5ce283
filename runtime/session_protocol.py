"""The server side of one session as a Sans-I/O state machine: message order and audio continuity.

Fed raw text or bytes, it returns typed events or raises ProtocolError; the asyncio glue only moves bytes.
Rules (docs/protocol.md, "Session flow"): hello first and once; audio in the format the hello declared,
with increasing seq and no overlap (a forward gap is filled with silence); nothing after end.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

import numpy as np

from emostream.runtime import protocol as P
from emostream.runtime.errors import ProtocolError


class Phase(Enum):
    AWAIT_HELLO = "await_hello"
    STREAMING = "streaming"
    ENDED = "ended"


@dataclass(frozen=True)
class AudioAccepted:
    """An audio chunk that continues the stream; `gap_samples` of silence precede it."""

    chunk: P.AudioChunk
    gap_samples: int


class ServerSessionProtocol:
    """Validates one client's message sequence. One instance per connection."""

    def __init__(self, max_gap_samples: int = 48_000) -> None:
        self.phase = Phase.AWAIT_HELLO
        self.hello: P.Hello | None = None
        self.max_gap_samples = max_gap_samples  # a larger jump in start_sample is refused
        self._last_seq = -1
        self._next_sample = 0

    @property
    def next_sample(self) -> int:
        """Media time, in samples at the session rate, that the next audio chunk should start at."""
        return self._next_sample

    def receive_text(self, text: str | bytes) -> P.ClientControl:
        message = P.decode_client_control(text)
        if self.phase is Phase.ENDED:
            raise ProtocolError("out_of_order", f"{message.type!r} after end")
        if isinstance(message, P.Hello):
            if self.phase is not Phase.AWAIT_HELLO:
                raise ProtocolError("out_of_order", "hello may be sent only once")
            if message.sample_rate_hz not in P.SAMPLE_RATES_HZ:
                raise ProtocolError(
                    "bad_audio", f"sample rate {message.sample_rate_hz} Hz; use one of {P.SAMPLE_RATES_HZ}",
                    fatal=True,
                )  # fmt: skip
            self.hello, self.phase = message, Phase.STREAMING
            return message
        if self.phase is Phase.AWAIT_HELLO:
            raise ProtocolError("out_of_order", f"{message.type!r} before hello", fatal=True)
        if isinstance(message, P.EndRequest):
            self.phase = Phase.ENDED
        return message

    def receive_binary(self, data: bytes) -> AudioAccepted:
        if self.phase is Phase.AWAIT_HELLO:
            raise ProtocolError("out_of_order", "audio before hello", fatal=True)
        chunk = P.decode_audio(data)
        if self.phase is Phase.ENDED:
            raise ProtocolError("out_of_order", "audio after end")
        assert self.hello is not None
        expected = np.dtype(np.int16 if self.hello.sample_format == "s16le" else np.float32)
        if chunk.samples.dtype != expected:
            raise ProtocolError("bad_audio", f"audio is {chunk.samples.dtype}, hello said {self.hello.sample_format}")
        if chunk.seq <= self._last_seq:
            raise ProtocolError("out_of_order", f"seq {chunk.seq} after {self._last_seq}; seq must increase")
        gap = chunk.start_sample - self._next_sample
        if gap < 0:
            raise ProtocolError(
                "out_of_order", f"chunk starts at sample {chunk.start_sample}, before {self._next_sample}"
            )
        if gap > self.max_gap_samples:
            raise ProtocolError("out_of_order", f"gap of {gap} samples exceeds {self.max_gap_samples}")
        self._last_seq = chunk.seq
        self._next_sample = chunk.start_sample + chunk.samples.size
        return AudioAccepted(chunk, gap)
