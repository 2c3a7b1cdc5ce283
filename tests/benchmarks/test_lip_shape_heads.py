"""`bench lip-shape-heads`: the speaker ablation's subsets (both leave out as many examples, one by speaker)
and the naming mode's forward filter over visemes."""

import numpy as np

from emostream.benchmarks.lip_shape_heads import forward_filter, speaker_subsets, viseme_transitions
from emostream.training.face_data import FaceExample


def test_speaker_subsets_leave_out_the_speakers_or_as_many_other_utterances() -> None:
    voices = ["espeak:en-us+m1:1.00:50"] * 10 + ["flite:rms:0.90:50"] * 3 + ["festival:ked_diphone:1.10:50"] * 2
    voices += ["flite:kal:1.10:50"] * 6 + ["festival:kal_diphone:0.90:50"] * 4 + ["real"] * 5
    subsets = speaker_subsets(voices, seed=0)
    without_speakers, without_utterances = subsets["without two speakers"], subsets["without as many utterances"]
    assert len(without_speakers) == len(without_utterances) == len(voices) - 5
    assert not any(voices[i].startswith(("flite:rms", "festival:ked")) for i in without_speakers)
    left_out = set(range(len(voices))) - set(without_utterances)
    assert {voices[i].split(":")[1] for i in left_out} <= {"kal", "kal_diphone"}
    assert sum(voices[i].startswith(("espeak", "real")) for i in without_utterances) == 15


def test_forward_filter_keeps_a_viseme_through_one_doubtful_frame_and_follows_a_lasting_change() -> None:
    """With sticky transitions, one frame that leans the other way does not flip the filtered viseme, two
    frames of it in a row do; with a prior equal to the posterior, the evidence is neutral."""
    transitions = np.array([[0.9, 0.1], [0.1, 0.9]])
    prior = np.array([0.5, 0.5])
    posterior = np.array([[0.9, 0.1], [0.4, 0.6], [0.9, 0.1], [0.2, 0.8], [0.2, 0.8]])
    filtered = forward_filter(posterior, transitions, prior)
    assert filtered.argmax(1).tolist() == [0, 0, 0, 0, 1]
    np.testing.assert_allclose(filtered.sum(1), 1.0)
    np.testing.assert_allclose(forward_filter(np.tile(prior, (3, 1)), np.eye(2), prior), np.tile(prior, (3, 1)))


def test_viseme_transitions_count_the_next_frame_and_the_prior() -> None:
    example = FaceExample([], [], [], np.array([0, 0, 1, 1, 1], np.int8), np.zeros(5, np.float16), [])
    transitions, prior = viseme_transitions([example], 3)
    np.testing.assert_allclose(transitions.sum(1), 1.0)
    np.testing.assert_allclose(transitions[0], np.array([2, 2, 1]) / 5)  # 0 -> 0 once, 0 -> 1 once, plus one
    np.testing.assert_allclose(transitions[1], np.array([1, 3, 1]) / 5)
    np.testing.assert_allclose(prior, np.array([3, 4, 1]) / 8)
