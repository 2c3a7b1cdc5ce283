"""The speaker ablation of `bench lip-shape-heads`: both subsets leave out as many examples, one by speaker."""

from emostream.benchmarks.lip_shape_heads import speaker_subsets


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
