import numpy as np

from emostream.runtime.audio import N_MELS, SILENT_LOG_MEL
from emostream.runtime.pitch import N_PITCH
from emostream.training.train_voice_emotion import crop_batch


def test_crops_of_short_takes_are_padded_with_silence_of_no_pitch() -> None:
    width = N_MELS + N_PITCH
    takes = [np.full((30, width), 1.0, np.float16), np.full((40, width), 2.0, np.float16)]
    x, y, _, _ = crop_batch(np.random.default_rng(0), takes, np.array([3, 5]), [], batch=4)
    assert x.shape[2] == width and set(y.tolist()) <= {3, 5}
    for row in x.numpy():
        spoken = row[:, 0] > 0
        assert spoken[:30].all() and not spoken[40:].any()  # a crop starts with its take, then silence
        np.testing.assert_array_equal(row[~spoken, :N_MELS], np.float32(SILENT_LOG_MEL))
        np.testing.assert_array_equal(row[~spoken, N_MELS:], 0.0)


def test_a_pitch_shift_moves_the_speaker_reference_as_streaming_the_shifted_voice_would() -> None:
    import torch

    from emostream.runtime.models.voice_emotion import VoiceEmotion
    from emostream.training.train_voice_emotion import shift_pitch

    model = VoiceEmotion(hidden=8, reference_s=60.0, pitch=True)
    rng = np.random.default_rng(0)
    frames = torch.from_numpy(rng.normal(-4, 1, (2, 80, N_MELS + N_PITCH))).float()
    frames[..., N_MELS] = torch.rand(2, 80)  # periodicity
    frames[..., N_MELS + 1] = frames[..., N_MELS] * torch.randn(2, 80)

    def reference_of(x: torch.Tensor) -> torch.Tensor:
        normalised, gate = model.frames(x)
        return (gate[..., None] * normalised).sum(1) / gate.sum(1, keepdim=True)

    reference = reference_of(frames)
    shifted = frames.clone()
    shift_pitch(np.random.default_rng(1), model, shifted, reference, octaves=0.5)
    delta = (shifted - frames)[..., N_MELS + 1] / frames[..., N_MELS]
    assert delta.std(1).max() < 1e-5 and delta.abs().min() > 0  # one shift per crop, in octaves
    torch.testing.assert_close(reference, reference_of(shifted), atol=1e-5, rtol=1e-5)


def test_the_ensemble_keeps_each_reader_and_the_statistics() -> None:
    import torch

    from emostream.runtime.models.voice_emotion import VoiceEmotion
    from emostream.training.train_voice_emotion import ensemble

    readers = []
    for seed in (0, 1):
        torch.manual_seed(seed)
        reader = VoiceEmotion(hidden=8, reference_s=60.0, pitch=True)
        reader.mean.fill_(0.5)
        reader.std.fill_(2.0)
        readers.append(reader)
    model = ensemble(readers)
    assert model.members == 2 and model.spec.state[0].shape == (16,)
    torch.testing.assert_close(model.mean, readers[0].mean)
    torch.testing.assert_close(model.std, readers[0].std)
    for slot, reader in zip(model.readers, readers, strict=True):
        for name, value in reader.readers[0].state_dict().items():
            torch.testing.assert_close(slot.state_dict()[name], value)
