import math

import pytest
import torch

from emostream.runtime.audio import FEATURE_RATE_HZ, LOG_FLOOR, N_MELS
from emostream.runtime.models.voice_emotion import (
    AXES_SMOOTHING_S,
    INPUTS_PER_STEP,
    N_EMOTIONS,
    NEUTRAL,
    SMOOTHING_S,
    VoiceEmotion,
)
from emostream.runtime.step import StreamingGenerator
from tests.harness.step_contract import StepContractSuite


class TestVoiceEmotionStep(StepContractSuite):
    onnx_parity_covered_by = "TestVoiceEmotionOfTwoReadersStep"  # a reference, pitch and two readers

    def make_model(self) -> StreamingGenerator:
        return VoiceEmotion(hidden=16)


class TestVoiceEmotionWithASpeakerReferenceStep(StepContractSuite):
    onnx_parity_covered_by = "TestVoiceEmotionOfTwoReadersStep"  # a reference, pitch and two readers

    def make_model(self) -> StreamingGenerator:
        return VoiceEmotion(hidden=16, reference_s=2.0)


class TestVoiceEmotionHearingPitchStep(StepContractSuite):
    onnx_parity_covered_by = "TestVoiceEmotionOfTwoReadersStep"  # a reference, pitch and two readers

    def make_model(self) -> StreamingGenerator:
        return VoiceEmotion(hidden=16, reference_s=2.0, pitch=True)


class TestVoiceEmotionOfTwoReadersStep(StepContractSuite):
    def make_model(self) -> StreamingGenerator:
        return VoiceEmotion(hidden=16, reference_s=2.0, pitch=True, members=2)


def test_two_readers_average_their_readings() -> None:
    torch.manual_seed(0)
    one = VoiceEmotion(hidden=16, reference_s=2.0).eval()
    two = VoiceEmotion(hidden=16, reference_s=2.0, members=2).eval()
    with torch.no_grad():
        one.readers[0].head.bias[:] = torch.linspace(-2, 2, 10)
        for reader in two.readers:
            reader.load_state_dict(one.readers[0].state_dict())
        two.readers[1].head.bias[N_EMOTIONS:] += 0.4  # the second reads the axes higher
    speech = torch.randn(1, 240, N_MELS) - 3.0
    with torch.no_grad():
        blend_one, axes_one = _steps(one, speech)
        blend_two, axes_two = _steps(two, speech)
        _, axes_second = _steps(_one_reader(two, 1), speech)
    torch.testing.assert_close(blend_two, blend_one)  # equal emotion logits: the same blend
    torch.testing.assert_close(axes_two, (axes_one + axes_second) / 2)


def _one_reader(model: VoiceEmotion, k: int) -> VoiceEmotion:
    """An estimator of reader k of `model` alone."""
    alone = VoiceEmotion(hidden=model.hidden, reference_s=model.reference_s, pitch=model.pitch).eval()
    alone.readers[0].load_state_dict(model.readers[k].state_dict())
    return alone


def test_a_checkpoint_of_one_reader_from_before_the_readers_still_loads(tmp_path) -> None:
    from emostream.runtime.models.voice_emotion import load_voice_emotion

    torch.manual_seed(0)
    model = VoiceEmotion(hidden=16, reference_s=2.0)
    old_keys = {k.removeprefix("readers.0."): v for k, v in model.state_dict().items()}
    config = {"hidden": 16, "reference_s": 2.0}
    torch.save({"config": config, "state_dict": old_keys, "metadata": {}}, tmp_path / "old.pt")
    loaded, _ = load_voice_emotion(tmp_path / "old.pt")
    for name, value in model.state_dict().items():
        torch.testing.assert_close(loaded.state_dict()[name], value)


def test_the_speaker_reference_averages_speech_and_ignores_silence() -> None:
    model = VoiceEmotion(hidden=16, reference_s=2.0).eval()
    loud, quiet = torch.full((1, 1, N_MELS), -2.0), torch.full((1, 1, N_MELS), -6.0)
    silence = torch.full((1, 40, N_MELS), math.log(LOG_FLOOR))
    features = torch.cat([silence, loud.expand(1, 60, -1), silence, quiet.expand(1, 60, -1)], dim=1)
    x, gate = model.frames(features)
    with torch.no_grad():
        inputs, reference, heard = model.with_reference(x, gate, torch.zeros(1, N_MELS), torch.zeros(1, 1))
    # 0.5 s of each level: an equal mean of the two, over one second of speech, the silences left out
    assert torch.allclose(reference, torch.full((1, N_MELS), -4.0), atol=1e-4)
    assert torch.allclose(heard, torch.tensor([[1.0]]), atol=1e-4)
    assert torch.allclose(inputs[0, :20, N_MELS:], torch.zeros(20, N_MELS + 1))  # silence: no reference yet
    assert torch.allclose(inputs[0, 49, N_MELS:-1], torch.zeros(N_MELS), atol=1e-4)  # only loud speech so far
    assert torch.allclose(inputs[0, -1, N_MELS:-1], torch.full((N_MELS,), -2.0), atol=1e-4)  # quieter than usual


def _steps(model: VoiceEmotion, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    out = model.estimates(model.split(features))
    return out["emotion"][0], out["arousal_valence"][0]


def test_a_stream_starts_neutral_and_a_pause_holds_the_estimate() -> None:
    torch.manual_seed(0)
    model = VoiceEmotion(hidden=16).eval()
    with torch.no_grad():
        model.readers[0].head.bias[:] = torch.linspace(-2, 2, 10)  # a clear non-neutral reading of any speech
    silence = torch.full((1, 60, N_MELS), math.log(LOG_FLOOR))
    speech = torch.randn(1, 240, N_MELS) - 3.0
    with torch.no_grad():
        blend, _ = _steps(model, torch.cat([silence, speech, silence], dim=1))
    assert torch.allclose(blend[:30], torch.nn.functional.one_hot(torch.tensor(NEUTRAL), 8).float())
    assert blend[149].argmax() != NEUTRAL  # 2 s of speech moved it
    assert torch.allclose(blend[150:], blend[149].expand(30, -1), atol=1e-6)  # silence holds it
    assert torch.allclose(blend.sum(dim=1), torch.ones(len(blend)), atol=1e-5)


def test_the_averages_take_their_time_constants_to_follow_a_change() -> None:
    model = VoiceEmotion(hidden=16)
    for rate, time_constant in ((model.rates[0], SMOOTHING_S), (model.rates[-1], AXES_SMOOTHING_S)):
        steps = round(time_constant * FEATURE_RATE_HZ / INPUTS_PER_STEP)
        assert abs((1 - float(rate)) ** steps - math.exp(-1)) < 0.01
    assert SMOOTHING_S > AXES_SMOOTHING_S  # the blend's top changes more slowly than arousal follows the voice


def test_auto_means_the_voice_alone_and_a_weight_mixes_it_with_the_chosen_emotion() -> None:
    import numpy as np

    from emostream.runtime.controls import chosen_and_weight, emotion_controls, emotion_vector

    assert chosen_and_weight("auto", 0.0) == ("neutral", 1.0)
    assert chosen_and_weight("happy", 1.7) == ("happy", 1.0)
    angry = emotion_vector("angry", 1.0)
    vector, share = emotion_controls("happy", 0.8, 0.5)
    np.testing.assert_allclose(vector + share * angry, 0.4 * emotion_vector("happy", 1.0) + 0.4 * angry)


@pytest.mark.parametrize("pitch", [False, True], ids=["log-mel", "log-mel-and-pitch"])
def test_the_chunked_stream_gives_the_offline_estimate(pitch: bool) -> None:
    import numpy as np

    from emostream.runtime.auto_emotion import VoiceEmotionStream
    from emostream.runtime.models.voice_emotion import offline_frames

    torch.manual_seed(1)
    model = VoiceEmotion(hidden=16, reference_s=2.0, pitch=pitch).eval()
    with torch.no_grad():
        model.readers[0].head.bias[:] = torch.linspace(-2, 2, 10)
    rng = np.random.default_rng(0)
    audio = (rng.normal(size=24_000) * 0.3).astype(np.float32)
    stream = VoiceEmotionStream(model, 16_000)
    for start in range(0, audio.size, 320):  # 20 ms chunks
        stream.push(audio[start : start + 320])
    per_step = model.spec.inputs_per_step  # the stream's estimate is that of its newest whole step
    steps = stream.frontend_state.n_frames // per_step
    frames = offline_frames(audio, 16_000, pitch)[: steps * per_step]
    with torch.no_grad():
        blend, axes = _steps(model, torch.from_numpy(frames)[None])
    np.testing.assert_allclose(stream.blend, blend[-1].numpy(), atol=1e-5)
    np.testing.assert_allclose(stream.arousal_valence, axes[-1].numpy(), atol=1e-5)
    assert stream.blend.argmax() != NEUTRAL


def test_the_mix_holds_the_intensity_to_the_range_the_chosen_emotion_has() -> None:
    import numpy as np

    from emostream.runtime.controls import emotion_controls, emotion_vector

    happy = emotion_vector("happy", 1.0)
    vector, share = emotion_controls("happy", 1.7, 0.5)
    np.testing.assert_allclose(vector + share * happy, emotion_vector("happy", 1.7))
