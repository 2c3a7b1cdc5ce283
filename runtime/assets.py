"""What ships inside the package: the trained face, gesture and voice-emotion checkpoints and a speech
sample."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

# The style presets of the shipped gesture model (tests/test_cli.py checks them against its checkpoint), for
# help texts that must not load torch to say them.
SHIPPED_STYLES = ("ada", "ben", "cleo", "dev", "eli", "fay", "gus", "hana", "ivo", "jun", "kai", "lena", "milo",
                  "nora", "omar", "pia")  # fmt: skip
STYLE_HELP = f"a preset of the gesture model ({', '.join(SHIPPED_STYLES)} in the shipped one)"


def _asset(name: str) -> Path:
    return Path(str(resources.files("emostream.runtime") / "assets" / name))


def default_face_checkpoint() -> Path:
    return _asset("face.pt")


def default_gesture_checkpoint() -> Path:
    return _asset("gesture.pt")


def default_voice_emotion_checkpoint() -> Path:
    return _asset("voice_emotion.pt")


def bundled_speech() -> Path:
    """The speech sample the demo streams (espeak-ng, 16 kHz mono, 14.6 s)."""
    return _asset("speech_sample.wav")
