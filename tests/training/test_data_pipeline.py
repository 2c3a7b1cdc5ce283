"""The training-data pipeline on real TTS speech: text, TTS, alignment, corpus, examples, a training step."""

import itertools
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from emostream.runtime.audio import LogMelFrontEnd
from emostream.training import augment as A
from emostream.training.align import align
from emostream.training.gesture_data import GESTURE_SENTENCES, clip_jobs
from emostream.training.text import phonetically_varied_sentences, pronunciations, sentence_phones
from emostream.training.tts import Voice

needs_espeak = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng is not installed")


def test_sentences_are_pronounceable_and_cover_many_diphones() -> None:
    sentences = phonetically_varied_sentences(50, seed=1)
    assert len(set(sentences)) == 50
    diphones = set()
    for s in sentences:
        phones = ["SIL", *sentence_phones(s), "SIL"]
        diphones |= set(itertools.pairwise(phones))
    assert len(diphones) > 300
    assert "P" in {p for s in sentences for p in sentence_phones(s)}
    assert pronunciations()["map"] == ("M", "AE", "P")


@needs_espeak
def test_forced_alignment_finds_the_words_in_order_with_plausible_times() -> None:
    text = "Bob picked up the map."
    samples, rate = Voice("espeak", "en-us").synthesize(text)
    phones = align(samples, rate, text)
    labels = [p.label for p in phones if p.label != "SIL"]
    assert labels == ["B", "AA", "B", "P", "IH", "K", "T", "AH", "P", "DH", "AH", "M", "AE", "P"]
    assert all(b.start_s >= a.end_s - 1e-9 for a, b in itertools.pairwise(phones))
    assert phones[-1].end_s <= samples.size / rate + 0.05
    m = next(p for p in phones if p.label == "M")
    assert 0.3 < m.start_s < samples.size / rate


@pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="the codec channel needs ffmpeg")
def test_augmentations_keep_audio_valid_and_report_the_time_scale() -> None:
    rng = np.random.default_rng(0)
    t = np.arange(16_000) / 16_000
    speech = (0.5 * np.sin(2 * np.pi * 220 * t) * (t > 0.2)).astype(np.float32)
    rates = set()
    for seed in range(24):
        out, rate, scale = A.augment(np.random.default_rng(seed), speech, 16_000)
        rates.add(rate)
        assert rate in (8_000, 16_000) and np.all(np.isfinite(out)) and np.max(np.abs(out)) <= 1
        assert abs(out.size / rate - scale) < 0.01  # duration stretched by exactly the reported scale
        LogMelFrontEnd(rate).offline(out)  # the front-end accepts every variant
    assert rates == {8_000, 16_000}  # phone lines and narrowband codecs among the channels
    clipped = A.clip(rng, speech.astype(np.float64))
    assert 0.004 < np.mean(np.abs(clipped) >= 1) < 0.06  # the loudest 0.5-5% of samples past full scale
    faster = A.speed(speech.astype(np.float64), 16_000, 1.1)
    assert abs(faster.size - 16_000 / 1.1) < 30
    phone, rate = A.telephone(speech.astype(np.float64) + 0.1 * rng.normal(size=t.size), 16_000)
    spectrum = np.abs(np.fft.rfft(phone))
    f = np.fft.rfftfreq(phone.size, 1 / rate)
    assert rate == 8_000 and spectrum[f > 3500].max() < 1e-6 * spectrum.max()


@pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="the codec channel needs ffmpeg")
def test_every_channel_repeats_bit_for_bit_from_its_seed() -> None:
    """The training data must repeat for the weights to: codecs included (ffmpeg encodes deterministically)."""
    t = np.arange(16_000) / 16_000
    speech = (0.4 * np.sin(2 * np.pi * 180 * t) * np.sin(2 * np.pi * 3 * t) ** 2).astype(np.float32)
    for seed in range(10):
        a, rate_a, scale_a = A.augment(np.random.default_rng(seed), speech, 16_000)
        b, rate_b, scale_b = A.augment(np.random.default_rng(seed), speech, 16_000)
        assert rate_a == rate_b and scale_a == scale_b and np.array_equal(a, b), seed
    for codec in A.CODECS:  # each codec at least once, whatever the draws above chose
        first = A.through_codec(speech, 16_000, A.CODECS[codec])[0]
        assert np.array_equal(first, A.through_codec(speech, 16_000, A.CODECS[codec])[0]), codec


def assert_same_weights(a: torch.nn.Module, b: torch.nn.Module) -> None:
    """Every tensor of two networks equal, bit for bit."""
    for (name, weight), (_, repeated) in zip(a.state_dict().items(), b.state_dict().items(), strict=True):
        assert torch.equal(weight, repeated), name


@pytest.mark.slow
@needs_espeak
def test_corpus_examples_and_a_training_step_work_end_to_end(tmp_path: Path) -> None:
    from emostream.training.corpus import build
    from emostream.training.face_data import build_dataset
    from emostream.training.train_face import train

    manifest = build(tmp_path / "corpus", n_utterances=6, seed=2, workers=1)
    assert len(manifest["utterances"]) + sum(manifest["alignment_failures"].values()) == 6
    assert len(manifest["utterances"]) >= 3
    examples = build_dataset(tmp_path / "corpus", n_audio=2, n_renders=2, workers=1, held_out=False)
    examples += build_dataset(tmp_path / "corpus", n_audio=2, n_renders=2, workers=1, held_out=True)
    for ex in examples:
        assert len(ex.features) == 2 and len(ex.faces) == 2
        assert ex.features[0].shape[1] == 80 and ex.faces[0].shape[1] == 59
        # About two feature frames per face frame, give or take the framing at the ends.
        assert abs(ex.features[0].shape[0] - 2 * ex.faces[0].shape[0]) <= 4
    net, log = train(examples, steps=30, batch_size=min(4, len(examples)), seed=0)
    losses = log["losses"]
    assert len(losses) == 30 and np.isfinite(losses).all()
    assert np.mean(losses[-3:]) < np.mean(losses[:3])  # it learns something in a few steps
    # A budget in steps: the same seed gives the same weights, however busy the machine.
    again, _ = train(examples, steps=30, batch_size=min(4, len(examples)), seed=0)
    assert_same_weights(net, again)
    # The stages after training learn their own parts only, and repeat from the seed too.
    from emostream.training.face_stages import run_stages

    budgets = {"distil_steps": 60, "audio_closure_steps": 60, "audio_opening_steps": 60, "lip_shape_steps": 60}
    staged, records = run_stages(net, examples, min(4, len(examples)), 0, **budgets)
    heads = (staged.one_step, staged.audio_closure, staged.audio_opening, staged.lip_shape)
    assert all(head is not None for head in heads) and len(records) == 4
    assert staged.config.closure_telephone_band and records["audio_closure"]["telephone_band"]
    for record in records.values():
        assert record["final_loss"] < record["first_loss"]
    before = net.state_dict()
    assert all(torch.equal(v, before[k]) for k, v in staged.state_dict().items() if k in before)
    repeated, _ = run_stages(net, examples, min(4, len(examples)), 0, **budgets)
    assert_same_weights(staged, repeated)
    # The closure head trains on the examples given for it (training/train_face.py closure_examples).
    closure_only = {**budgets, "distil_steps": 0, "audio_opening_steps": 0, "lip_shape_steps": 0}
    same, _ = run_stages(net, examples, min(4, len(examples)), 0, **closure_only, closure_examples=examples)
    other, _ = run_stages(net, examples, min(4, len(examples)), 0, **closure_only, closure_examples=examples[:2])
    assert same.audio_closure is not None and other.audio_closure is not None
    assert_same_weights(same.audio_closure, staged.audio_closure)
    assert not torch.equal(other.audio_closure[0].weight, staged.audio_closure[0].weight)


@needs_espeak
@pytest.mark.slow
def test_gesture_clips_and_both_training_stages_work_end_to_end(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from emostream.runtime.body_pose import N_POSE_FEATURES
    from emostream.training.corpus import build
    from emostream.training.gesture_data import STYLE_NAMES, build_gesture_dataset
    from emostream.training.train_gesture import Batches, flow_loss, train

    build(tmp_path / "corpus", n_utterances=6, seed=3, workers=1)
    clips = build_gesture_dataset(tmp_path / "corpus", n_renders=2, workers=1)
    clips += build_gesture_dataset(tmp_path / "corpus", n_renders=2, workers=1, held_out=True)
    assert clips
    for clip in clips:
        assert len(clip.features) == 2 and len(clip.poses) == 2 and clip.poses[0].shape[1] == N_POSE_FEATURES
        # Exactly four feature frames per body frame, on the audio version each render moves to.
        for poses, version, plan in zip(clip.poses, clip.versions, clip.plans, strict=True):
            assert clip.features[version].shape[0] == 4 * poses.shape[0]
            assert plan.shape == (poses.shape[0], 2)  # each arm's phrase plan, frame by frame
    budget = {"vae_steps": 6, "flow_steps": 4, "free_running_steps": 3}
    net, log = train(clips, STYLE_NAMES, batch_size=4, seed=0, emotion_dropout=0.15, rollout_weight=1.0, **budget)
    assert len(log["vae_losses"]) == 6 and len(log["flow_losses"]) == 4 + 3
    # The free-running losses join for the flow's last steps only, as a stage of their own, and emotion
    # FiLM, off before it, is switched on for it and trained away from its zero start.
    assert len(log["rollout_losses"]) == 3
    assert net.config.emotion_film and net.emotion_film.weight.abs().sum() > 0
    assert np.isfinite(log["vae_losses"]).all() and np.isfinite(log["flow_losses"]).all()
    used = {s for clip in clips for s in clip.styles}
    assert all(net.style_presets[s].abs().sum() > 0 for s in used)
    # The budget is in steps, so the same seed gives the same weights: a run repeats, however busy the machine.
    again, _ = train(clips, STYLE_NAMES, batch_size=4, seed=0, emotion_dropout=0.15, rollout_weight=1.0, **budget)
    assert_same_weights(net, again)
    # The recipe's last stage, as a resume runs it: an emotion critic trained on the teacher's crops, then
    # free-running steps that count its reading of the model's motion; it repeats too.
    monkeypatch.setattr("emostream.training.emotion_critic.CRITIC_STEPS", 5)
    stage = {"flow_steps": 0, "free_running_steps": 2, "critic_weight": 0.2}
    critic_stage, critic_log = train(clips, STYLE_NAMES, batch_size=4, seed=0, resume=net, **stage)
    assert len(critic_log["critic_losses"]) == 2 and np.isfinite(critic_log["critic_losses"]).all()
    assert 0 <= critic_log["critic_accuracy"] <= 1
    assert not torch.equal(critic_stage.out.weight, net.out.weight)
    assert_same_weights(critic_stage, train(clips, STYLE_NAMES, batch_size=4, seed=0, resume=net, **stage)[0])
    # Gradients reach the flow, the audio encoder and the style encoder: a fixed batch is learned.
    batch = Batches(clips, net.config, seed=1)(4)
    params = [p for n, p in net.named_parameters() if not n.startswith("vae.")]
    optimizer = torch.optim.Adam(params, lr=2e-3)
    losses = []
    for _ in range(30):
        loss = flow_loss(net, batch, torch.Generator().manual_seed(0))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.8 * losses[0]
    # Some frames train the null condition that classifier-free guidance samples against.
    assert net.guidable and net.null_emotion.grad is not None and net.null_emotion.grad.abs().sum() > 0
    # The per-emotion temperature fit runs on the same corpus and its result lies on its grid.
    from emostream.runtime.protocol import EMOTIONS
    from emostream.training.face_data import supported_rate
    from emostream.training.gesture_data import join_utterances
    from emostream.training.gesture_evaluation import Take
    from emostream.training.gesture_temperature import fit_emotion_temperatures

    # One take of two utterances of any voice (the corpus may keep fewer: then repeated), long enough
    # for a 4 s classifier window; every emotion at both temperatures streams it, so it is kept short.
    paths = (sorted((tmp_path / "corpus").glob("*.npz")) * 2)[:2]
    audio, rate, phones = join_utterances(paths, [0.3] * len(paths))
    take = Take(*supported_rate(audio, rate), phones)
    report = fit_emotion_temperatures(net.eval(), STYLE_NAMES, [take], [take], grid=(0.2, 1.0), classifier_steps=20)
    assert list(report["emotions"]) == list(EMOTIONS) and report["takes"] == 1
    assert take.audio.size >= 4 * take.rate, "shorter than one classifier window"
    for fit in report["emotions"].values():
        assert fit["teacher_speed_m_s"] > 0 and np.isfinite(fit["model_speed_m_s"]).all()
        assert all(0 <= r <= 1 for r in fit["recognised"]) and fit["temperature"] in (0.2, 1.0)


def test_emotion_posture_is_recovered_by_least_squares() -> None:
    from emostream.runtime.models.gesture import GestureConfig, GestureNetwork
    from emostream.training.gesture_data import GestureClip
    from emostream.training.train_gesture import fit_emotion_posture

    rng = np.random.default_rng(0)
    net = GestureNetwork(GestureConfig(emotion_posture=True))
    offsets = rng.normal(size=(8, net.config.n_pose)).astype(np.float32)
    clips = []
    for i in range(40):
        emotion = np.zeros(8, np.float32)
        emotion[i % 8] = rng.uniform(0.3, 1.0)
        poses = emotion @ offsets + 0.1 + 0.02 * rng.normal(size=(60, net.config.n_pose))
        clips.append(GestureClip([], [poses.astype(np.float16)], [0], [emotion], [0], "v"))
    fit_emotion_posture(net, clips)
    np.testing.assert_allclose(net.emotion_offsets.numpy(), offsets, atol=0.05)


def test_history_offsets_are_shared_by_a_steps_frames_and_small_on_the_limbs() -> None:
    from emostream.training.train_gesture import LIMB_FEATURES_START, HistoryAugmentation

    shape = (64, 100, 8, 285)
    offsets = HistoryAugmentation(offset=0.5, offset_limbs=0.15).offsets(shape, torch.Generator().manual_seed(0))
    assert offsets.shape == (64, 100, 1, 285)  # one offset per step, broadcast over its history frames
    assert abs(offsets[..., :LIMB_FEATURES_START].std().item() - 0.5) < 0.01
    assert abs(offsets[..., LIMB_FEATURES_START : LIMB_FEATURES_START + 36].std().item() - 0.15) < 0.01


def test_gesture_clips_come_from_the_first_sentences_only(tmp_path: Path) -> None:

    ids = [0, 1, 2, 5, GESTURE_SENTENCES - 1, GESTURE_SENTENCES, GESTURE_SENTENCES + 7]
    entries = [{"id": f"utt{i:05d}", "voice_id": "espeak:en", "held_out": False} for i in ids]
    (tmp_path / "manifest.json").write_text(json.dumps({"utterances": entries}))
    used = {p.stem for paths, *_ in clip_jobs(tmp_path, False, 1, None) for p in paths}
    assert used == {f"utt{i:05d}" for i in ids if i < GESTURE_SENTENCES}
