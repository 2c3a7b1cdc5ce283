"""`bench face-quality`'s measures of the lips' steadiness and the eyes' openness on hand-made faces."""

import numpy as np

from emostream.benchmarks.face_quality import LIP_SHAPE_CHANNELS, expression_metrics, lip_shape_reversals
from emostream.runtime.rigs import FACE_CHANNELS, FACE_FPS


def test_a_shape_popped_in_and_out_counts_as_a_reversal_and_a_lasting_change_does_not() -> None:
    face = np.zeros((FACE_FPS, len(FACE_CHANNELS)), np.float32)  # one second
    pucker = LIP_SHAPE_CHANNELS[1]
    face[10:13, pucker] = 0.5  # in for three frames and out again: a twitch
    face[30:, LIP_SHAPE_CHANNELS[0]] = 0.5  # in to stay
    face[45:, LIP_SHAPE_CHANNELS[2]] = np.linspace(0.0, 0.6, FACE_FPS - 45)  # a ramp of small changes
    assert lip_shape_reversals([face]) == 1.0
    face[40:46, pucker] = 0.5  # in for six frames: longer than a twitch
    assert lip_shape_reversals([face]) == 1.0


def test_lids_lowered_counts_the_frames_whose_eyes_are_a_quarter_shut_or_more() -> None:
    face = np.zeros((100, len(FACE_CHANNELS)), np.float32)
    lids = [FACE_CHANNELS.index("eyeBlinkLeft"), FACE_CHANNELS.index("eyeBlinkRight")]
    face[:10, lids] = 0.9  # a blink
    face[10:30, lids] = 0.15  # a sad face's resting lids
    assert expression_metrics([face])["lids_lowered_share"] == 0.1
