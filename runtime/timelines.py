"""The timelines a server's slot table runs: one per face lookahead in use, and one for the body; and the
voice-emotion estimator's track."""

from __future__ import annotations

from collections.abc import Callable

from emostream.runtime.controls import FEATURE_MS
from emostream.runtime.models.face import FaceGenerator, FaceNetwork
from emostream.runtime.models.gesture import GestureGenerator, GestureNetwork
from emostream.runtime.models.voice_emotion import VoiceEmotion
from emostream.runtime.noise import BODY_NOISE, FACE_NOISE
from emostream.runtime.rigs import BODY_FPS, FACE_FPS
from emostream.runtime.slot_table import Timeline, VoiceEmotionTrack
from emostream.runtime.step import StepRunner, StreamingGenerator

BODY = "body"  # the body timeline's key; a face timeline's key is its lookahead in feature frames
DEFAULT_STEPS = 2  # sampler steps per frame unless a session asks for others


def eager(generator: StreamingGenerator) -> StepRunner:
    return generator


def server_timelines(
    face: FaceNetwork | None,
    gesture: GestureNetwork | None,
    n_slots: int,
    make_runner: Callable[[StreamingGenerator], StepRunner] = eager,
    masks: bool = False,
) -> Callable[[str | int], Timeline]:
    """A factory of the timelines for a slot table: `BODY`, or a face lookahead (feature frames).
    `masks`: generators with the reset and activity masks, which the slot table's masked mode needs (its
    compact mode, the default, does without: runtime/step.py)."""

    def make(key: str | int) -> Timeline:
        if key == BODY:
            if gesture is None:
                raise ValueError("no gesture model: no body timeline")
            lookahead_s = GestureGenerator(gesture).lookahead_ms / 1000
            return Timeline("body", "body", lambda steps: GestureGenerator(gesture, steps, masks=masks), make_runner,
                            n_slots, BODY_FPS, BODY_NOISE, lookahead_s, DEFAULT_STEPS)  # fmt: skip
        if face is None or not isinstance(key, int):
            raise ValueError(f"no face timeline {key!r}")
        return Timeline("face", "face", lambda steps: FaceGenerator(face, key, steps, masks=masks), make_runner,
                        n_slots, FACE_FPS, FACE_NOISE, key * FEATURE_MS / 1000, DEFAULT_STEPS)  # fmt: skip

    return make


def voice_track(
    voice: VoiceEmotion, n_slots: int, make_runner: Callable[[StreamingGenerator], StepRunner] = eager,
    masks: bool = False,
) -> VoiceEmotionTrack:  # fmt: skip
    """The estimator over a slot table's slots, with or without the step masks (as `server_timelines`)."""
    voice.masks = masks
    return VoiceEmotionTrack(voice, make_runner, n_slots)
