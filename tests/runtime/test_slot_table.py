"""The slot table: many sessions stepped together give each the frames it would get alone, and a stream
through it equals the offline path over the same audio and noise."""

import math
import threading

import numpy as np
import pytest
import torch

from emostream.runtime.audio import LogMelFrontEnd
from emostream.runtime.audio_table import AudioTable
from emostream.runtime.blinks import apply_blinks
from emostream.runtime.controls import emotion_controls, emotion_vector
from emostream.runtime.messages import SlotSettings
from emostream.runtime.models.face import FaceGenerator, lookahead_timing
from emostream.runtime.models.gesture import GestureGenerator
from emostream.runtime.models.voice_emotion import VoiceEmotion, offline_frames
from emostream.runtime.noise import FACE_NOISE, gaussian_noise
from emostream.runtime.slot_table import EmotionBlends, SlotTable
from emostream.runtime.stream import GeneratorStream
from emostream.runtime.timelines import BODY, server_timelines, voice_track
from tests.fixtures import small_face_network, small_gesture_network, speech_sample

FACE = small_face_network()
GESTURE = small_gesture_network()


def offline_face(pcm: np.ndarray, rate: int, lookahead: int, seed: int) -> np.ndarray:
    """The face frames of the training path: whole-file features, the silent prefix, forward_sequence."""
    generator = FaceGenerator(FACE, lookahead, 2).eval()
    delay, prefix = lookahead_timing(lookahead)
    features = LogMelFrontEnd(rate).offline(np.concatenate([pcm, np.zeros(rate // 2, np.float32)]))  # then silence
    n_frames = math.ceil(pcm.size / rate * 60)
    n_steps = n_frames + delay
    silent = np.full((prefix, 80), math.log(1e-6), np.float32)
    features = np.concatenate([silent, features])[: 2 * n_steps]
    noise = gaussian_noise(np.full(n_steps, seed), np.arange(n_steps), 59, FACE_NOISE)
    neutral = np.tile(emotion_vector("neutral", 1.0), (n_steps, 1))
    emotion = torch.from_numpy(neutral[None])
    inputs = {"features": torch.from_numpy(features)[None], "emotion": emotion}
    with torch.no_grad():
        face = generator.forward_sequence(inputs, torch.from_numpy(noise)[None])["face"][0, :n_frames].numpy()
    return apply_blinks(face, np.full(n_frames, seed), np.arange(n_frames), neutral[:n_frames])  # as served


@pytest.mark.parametrize("rate", [16_000, 44_100])
def test_a_stream_through_the_table_equals_the_offline_path(rate: int) -> None:
    pcm = speech_sample(rate)
    stream = GeneratorStream(FaceGenerator(FACE, 7, 2).eval(), rate, seed=3)
    sizes = [rate // 50, 1, 777]
    out, start, i = [], 0, 0
    while start < pcm.size:
        out.append(stream.push(pcm[start : start + sizes[i % 3]]))
        start, i = start + sizes[i % 3], i + 1
    frames = np.concatenate([*out, stream.finish()])
    reference = offline_face(pcm.astype(np.float32) / 32768, rate, 7, seed=3)
    assert frames.shape == reference.shape
    # The features differ by float32 rounding (1e-4 at most); the frames follow within a few 1e-4.
    np.testing.assert_allclose(frames, reference, atol=2e-3)


def alone(pcm: np.ndarray, rate: int, seed: int, lookahead: int | None, style: np.ndarray | None,
          emotion: str) -> dict[str, np.ndarray]:  # fmt: skip
    """Each stream of one session run through a table of its own."""
    out = {}
    if lookahead is not None:
        face = GeneratorStream(FaceGenerator(FACE, lookahead, 2).eval(), rate, seed, emotion_vector(emotion, 1.0))
        out["face"] = np.concatenate([face.push(pcm), face.finish()])
    if style is not None:
        body_stream = GeneratorStream(GestureGenerator(GESTURE, 2).eval(), rate, seed, emotion_vector(emotion, 1.0),
                                      fps=30, style=style)  # fmt: skip
        poses = np.concatenate([body_stream.push(pcm), body_stream.finish()])
        from emostream.runtime.body_pose import body_frames

        out["body"] = body_frames(poses)
    return out


@pytest.mark.parametrize("mode", ["compact", "masked"])
def test_sessions_sharing_the_table_get_the_frames_each_gets_alone(mode: str) -> None:
    rng = np.random.default_rng(0)
    sessions = [  # rate, seed, face lookahead, body style, emotion, when it starts (in chunks)
        (16_000, 1, 7, GESTURE.style_presets[0].numpy(), "happy", 0),
        (44_100, 2, 0, None, "sad", 3),
        (8_000, 3, None, GESTURE.style_presets[1].numpy(), "neutral", 5),
        (48_000, 4, 12, GESTURE.style_presets[2].numpy(), "angry", 1),
        (16_000, 5, 7, None, "fear", 8),
    ]
    audio = AudioTable(8, threading.Lock())
    table = SlotTable(audio, server_timelines(FACE, GESTURE, 8, masks=mode == "masked"), mode=mode)
    slots = [audio.claim(0)[0] for _ in sessions]
    cursor = [0] * len(sessions)
    made: list[dict[str, list[np.ndarray]]] = [{"face": [], "body": []} for _ in sessions]
    opened = [False] * len(sessions)
    pcms = [speech_sample(rate).astype(np.float32) / 32768 for rate, *_ in sessions]
    for tick in range(400):
        for i, (rate, seed, lookahead, style, emotion, begins) in enumerate(sessions):
            if tick == begins:
                table.open(slots[i], SlotSettings(rate, seed, emotion_vector(emotion, 1.0), 2, lookahead, style))
                opened[i] = True
            if not opened[i] or cursor[i] > pcms[i].size:
                continue
            if cursor[i] == pcms[i].size:  # the end: silence flushes the last frames
                audio.append_silence(slots[i], rate // 2)
                cursor[i] += 1
                continue
            n = int(rng.integers(1, rate // 20))
            chunk = pcms[i][cursor[i] : cursor[i] + n]
            assert audio.write(slots[i], cursor[i], chunk, 0, 0)
            cursor[i] += chunk.size
        table.run_frontend()
        for frames in table.step_ready():
            for slot, index, values in zip(frames.slots, frames.indices, frames.values, strict=True):
                i = slots.index(int(slot))
                assert index == len(made[i][frames.stream])  # in order, none skipped
                made[i][frames.stream].append(values)
    for i, (rate, seed, lookahead, style, emotion, _) in enumerate(sessions):
        expected = alone(pcms[i], rate, seed, lookahead, style, emotion)
        for stream, reference in expected.items():
            got = np.array(made[i][stream])[: reference.shape[0]]
            assert got.shape == reference.shape, (i, stream)
            np.testing.assert_allclose(got, reference, atol=1e-4, err_msg=f"session {i} {stream}")
        assert set(expected) == {s for s in ("face", "body") if made[i][s]}


def test_a_loop_that_falls_behind_makes_the_same_frames_with_the_steps_asked() -> None:
    """No shedding: a second of audio arriving at once (the loop far behind) is worked off a frame per
    tick, every frame with the session's two sampler steps, equal to the frames of a loop that kept up."""
    audio = AudioTable(2, threading.Lock())
    table = SlotTable(audio, server_timelines(FACE, None, 2), max_rounds=1)
    pcm = speech_sample(16_000).astype(np.float32) / 32768
    slot, _ = audio.claim(0)
    table.open(slot, SlotSettings(16_000, 3, emotion_vector("neutral", 1.0), 2, 7, None))
    audio.write(slot, 0, pcm, 0, 0)
    audio.append_silence(slot, 8_000)
    made, ticks = [], 0
    while table.run_frontend() or table.has_backlog():
        made += [values for frames in table.step_ready() for values in frames.values]
        ticks += 1
    reference = alone(pcm, 16_000, 3, 7, None, "neutral")["face"]
    assert ticks >= reference.shape[0]  # one frame per tick: the burst did not make a big step
    np.testing.assert_allclose(np.array(made)[: reference.shape[0]], reference, atol=1e-4)


def test_a_reopened_slot_starts_afresh_and_a_closed_one_stops() -> None:
    audio = AudioTable(2, threading.Lock())
    table = SlotTable(audio, server_timelines(FACE, None, 2))
    pcm = speech_sample(16_000).astype(np.float32) / 32768
    settings = SlotSettings(16_000, 9, emotion_vector("neutral", 1.0), 2, 7, None)
    runs = []
    for _ in range(2):
        slot, _ = audio.claim(0)
        table.open(slot, settings)
        audio.write(slot, 0, pcm, 0, 0)
        frames = []
        while table.run_frontend() or table.has_backlog():
            frames += [f.values for f in table.step_ready()]
        runs.append(np.concatenate(frames))
        table.close(slot)
        audio.release(slot)
        audio.write(slot, pcm.size, pcm[:1600], 0, 0)  # late audio for a closed slot makes nothing
        assert table.run_frontend() == 0 and not table.step_ready()
    np.testing.assert_array_equal(runs[0], runs[1])


def test_an_ended_session_frees_its_place_before_the_loop_gives_its_slot_back() -> None:
    audio = AudioTable(3, threading.Lock(), session_limit=2)
    first, _ = audio.claim(0)
    audio.claim(1)
    assert audio.free_slots() == 0 and audio.claim(0) is None  # the limit, though a slot is free
    audio.mark_closing(first)
    assert audio.free_slots() == 1
    third, _ = audio.claim(0)  # the spare slot, while the loop still holds the first
    assert third != first and audio.free_slots() == 0 and audio.claim(0) is None
    audio.mark_closing(third)
    assert audio.free_slots() == 0 and audio.claim(0) is None  # every slot is still in use
    audio.release(first)
    assert audio.claim(0) is not None and audio.free_slots() == 0


def test_frames_are_stamped_with_the_capture_time_of_the_newest_sample_they_used() -> None:
    audio = AudioTable(1, threading.Lock())
    table = SlotTable(audio, server_timelines(FACE, None, 1))
    slot, _ = audio.claim(0)
    table.open(slot, SlotSettings(16_000, 0, emotion_vector("neutral", 1.0), 2, 7, None))
    pcm = speech_sample(16_000).astype(np.float32) / 32768
    capture0 = 1_000_000_000
    stamped = []
    for start in range(0, 16_000, 320):  # 20 ms chunks, captured at 1e9 us + their media time
        audio.write(slot, start, pcm[start : start + 320], capture0 + start * 1_000_000 // 16_000, 7 + start)
        table.run_frontend()
        for frames in table.step_ready():
            stamped += list(zip(frames.indices, frames.capture_us, strict=True))
    # Frame k used model-rate audio up to its media time plus the lookahead (58.3 ms), and the resampler
    # waited 16 input samples (1 ms) past the input sample that ends it.
    assert len(stamped) > 50
    for k, capture in stamped:
        newest_model_sample = (k * 400 + 7 * 200) - 1
        newest_input_sample = newest_model_sample * 2 // 3 + 16
        assert capture == capture0 + round(newest_input_sample * 1e6 / 16_000)


def test_an_emotion_blend_reaches_its_target_in_the_transition_time() -> None:
    blends = EmotionBlends(3, fps=60)
    happy, sad = np.append(emotion_vector("happy", 1.0), 0.0), np.append(emotion_vector("sad", 0.4), 0.6)
    for slot in range(3):
        blends.reset(slot, happy[:-1])
    blends.set(1, sad[:-1], 0.6, transition_ms=100)  # 6 frames; the voice's share blends in with it
    rows = np.arange(3)
    steps = [blends.advance(rows) for _ in range(8)]
    np.testing.assert_allclose(steps[0][1], happy * 5 / 6 + sad / 6, atol=1e-6)
    np.testing.assert_allclose(steps[5][1], sad)
    np.testing.assert_allclose(steps[7][1], sad)
    assert all(np.array_equal(s[0], happy) and np.array_equal(s[2], happy) for s in steps)


def test_body_frames_come_out_in_the_wire_layout_from_the_step() -> None:
    audio = AudioTable(1, threading.Lock())
    table = SlotTable(audio, server_timelines(None, GESTURE, 1))
    slot, _ = audio.claim(0)
    table.open(slot, SlotSettings(24_000, 0, emotion_vector("neutral", 1.0), 2, None, GESTURE.style_presets[0].numpy()))
    audio.write(slot, 0, np.zeros(24_000, np.float32), 0, 0)
    made = []
    while table.run_frontend() or table.has_backlog():
        made += table.step_ready()
    assert {frames.stream for frames in made} == {"body"}
    values = np.concatenate([frames.values for frames in made])
    assert values.shape == (30 - 5, 223)  # 1 s at 30 fps, but for the 5 frames that wait for more audio
    quats = values[:, : 55 * 4].reshape(-1, 55, 4)
    np.testing.assert_allclose(np.linalg.norm(quats, axis=-1), 1.0, atol=1e-5)
    assert BODY in table.timelines


class PitchRecorder(VoiceEmotion):
    """An estimator that keeps the pitch frames each of its steps hears."""

    def __init__(self, **config) -> None:
        super().__init__(**config)
        self.heard: list[torch.Tensor] = []

    def step(self, inputs, state, noise, reset, active):  # type: ignore[no-untyped-def]
        self.heard.append(inputs["pitch"].clone())
        return super().step(inputs, state, noise, reset, active)


def leaning_voice(pitch: bool = False, kind: type[VoiceEmotion] = VoiceEmotion) -> VoiceEmotion:
    """A small voice-emotion estimator whose head leans away from neutral, so that its estimate shows."""
    torch.manual_seed(1)
    model = kind(hidden=16, pitch=pitch, smoothing_s=0.5).eval()  # a quick average: the test speech lasts 1 s
    with torch.no_grad():
        model.readers[0].head.bias[:] = torch.linspace(-2, 2, 10)
    return model


def auto_take(chunk: int, mode: str, emotion: str, auto_weight: float, pitch: bool = False,
              voice: VoiceEmotion | None = None) -> tuple[np.ndarray, list[tuple]]:  # fmt: skip
    """One 16 kHz face session through a table with the estimator (`leaning_voice` unless given): its face
    frames and the estimate rows (step, values) the table reported."""
    audio = AudioTable(2, threading.Lock())
    masks = mode == "masked"
    track = voice_track(voice or leaning_voice(pitch), 2, masks=masks)
    table = SlotTable(audio, server_timelines(FACE, None, 2, masks=masks), mode=mode, voice=track)
    slot, _ = audio.claim(0)
    vector, auto = emotion_controls(emotion, 1.0, auto_weight)
    table.open(slot, SlotSettings(16_000, 3, vector, 2, 7, None, None, auto))
    pcm = speech_sample(16_000).astype(np.float32) / 32768
    faces, estimates = [], []
    for start in [*range(0, pcm.size, chunk), -1]:
        if start < 0:
            audio.append_silence(slot, 8000)
        else:
            assert audio.write(slot, start, pcm[start : start + chunk], 0, 0)
        while table.run_frontend() or table.has_backlog():
            for frames in table.step_ready():
                if frames.stream == "face":
                    faces += list(frames.values)
                else:
                    estimates += list(zip(frames.indices.tolist(), frames.values, strict=True))
    return np.array(faces), estimates


@pytest.mark.parametrize("pitch", [False, True], ids=["log-mel", "log-mel-and-pitch"])
def test_the_voice_emotion_estimate_steers_the_face_whatever_the_chunking(pitch: bool) -> None:
    faces, estimates = auto_take(160, "compact", "auto", 0.0, pitch)
    again, _ = auto_take(1111, "masked", "auto", 0.0, pitch)
    np.testing.assert_allclose(faces, again, atol=1e-5)  # each frame takes the estimate of its own audio
    backlog, backlog_estimates = auto_take(16_000, "compact", "auto", 0.0, pitch)  # a second at once
    np.testing.assert_allclose(faces, backlog, atol=1e-5)
    # The rows the table reports are the estimator's own, step by step, over the same frames offline.
    pcm = np.concatenate([speech_sample(16_000) / 32768, np.zeros(8000)]).astype(np.float32)
    model = leaning_voice(pitch)
    frames = torch.from_numpy(offline_frames(pcm, 16_000, pitch))[None].float()
    with torch.no_grad():
        reference = model.forward_sequence(model.split(frames), None)
    blend = reference["emotion"][0].numpy()
    assert len(estimates) > 10
    for step, values in estimates + backlog_estimates:
        np.testing.assert_allclose(values[:8], blend[step], atol=1e-4)
    assert blend[-1].argmax() != 0  # the voice leans away from neutral, and the face follows it
    if pitch:
        return  # the rest is the same with or without pitch
    neutral, _ = auto_take(160, "compact", "neutral", 0.0)
    assert np.abs(faces - neutral[: len(faces)]).max() > 0.05
    # A chosen emotion with no share of the voice is the fixed-emotion path.
    happy, none = auto_take(160, "compact", "happy", 0.0)
    assert none == []
    alone_happy = alone(speech_sample(16_000).astype(np.float32) / 32768, 16_000, 3, 7, None, "happy")["face"]
    np.testing.assert_allclose(happy[: len(alone_happy)], alone_happy, atol=2e-3)


def test_the_estimator_hears_the_pitch_of_its_own_audio() -> None:
    # Its steps read their windows from the model-rate ring: a backlog of several ticks (a second of
    # audio at once) must not overwrite the windows of a step that has yet to run.
    from emostream.runtime.pitch import model_rate, pitch_frames

    heard = []
    for chunk in (160, 16_000):
        voice = leaning_voice(True, PitchRecorder)
        auto_take(chunk, "compact", "auto", 0.0, voice=voice)
        heard.append(torch.cat(voice.heard, dim=1)[0].numpy())
    steady, backlog = heard
    pcm = np.concatenate([speech_sample(16_000) / 32768, np.zeros(8000)]).astype(np.float32)
    offline = pitch_frames(model_rate(pcm, 16_000), steady.shape[0])
    assert steady.shape[0] > 200
    # The server's batched resampler rounds differently from the offline one, and YIN's choice of dip
    # magnifies that in a few near-silent windows (0.02 at most here); an overwritten window is off by
    # up to 1.
    np.testing.assert_allclose(steady, offline, atol=0.05)
    np.testing.assert_allclose(backlog, steady, atol=0.05)
