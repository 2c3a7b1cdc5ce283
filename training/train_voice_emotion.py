"""Trains the voice-emotion estimator (runtime/models/voice_emotion.py) from scratch:

    emostream train voice-emotion [--per-emotion 800] [--steps 5000]

1. Emotional takes of the corpus sentences by the training voices (training/emotional_speech.py), built
   once into training/data/emotional/ (held-out voices' takes beside them, for the benchmark).
2. Real calm speech as neutral: the Spanish Asterisk prompts (the face model's real training speech;
   Italian and English stay for evaluation), so read speech by a person is not mistaken for an emotion.
3. Log-mel and pitch (runtime/pitch.py; `--no-pitch`: log-mel alone) of each take, clean and through a
   light channel (noise, reverb, codecs, band limits; no speed or EQ changes, which would move the very
   cues the labels rest on).
4. 3 s crops, the take's emotion on every frame: cross-entropy on the logits and squared error on arousal
   and valence (the emotion's place on the circumplex), both weighted by the speech gate and skipping
   the first 0.4 s, which no causal estimate can know.
5. With a speaker reference (`--reference-s`, runtime/models/voice_emotion.py), each crop is the end of
   a session: 0 to MAX_CONTEXT other takes by the same voice, in any emotions, came before it. The
   reference starts from all but the last of them (their gated mean, what streaming them would leave),
   and the last one's final PREVIOUS_S and a pause are replayed before the crop, so the estimator learns
   to leave the previous take's emotion behind; the loss skips them. No context at all is a fresh stream.
6. With pitch, each crop's session is moved up or down by up to `--pitch-shift` octaves (`shift_pitch`),
   so that pitch counts relative to the speaker.
7. `--members` readers (2) are trained so, reader k from seed + k, and the checkpoint averages them
   (`ensemble`); reader 0 is what a one-reader recipe with the same seed writes.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from emostream.runtime.audio import FEATURE_RATE_HZ, N_MELS
from emostream.runtime.models.voice_emotion import (
    INPUTS_PER_STEP,
    STEP_S,
    VoiceEmotion,
    offline_frames,
    silent_frames,
)
from emostream.runtime.protocol import EMOTIONS
from emostream.training.augment import add_noise, channel, reverb
from emostream.training.emotional_speech import AROUSAL_VALENCE, Prosody, Take, build_takes
from emostream.training.machine import machine

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "training" / "data" / "emotional"
CHECKPOINT = ROOT / "runtime" / "assets" / "voice_emotion.pt"
CROP_S = 3.0
WARMUP_S = 0.4
REAL_NEUTRAL_SHARE = 0.15  # of each batch
REFERENCE_S = 60.0  # the speaker reference's horizon, seconds of speech
MAX_CONTEXT = 24  # takes by the same voice that may come before a crop in its session
PITCH_SHIFT_OCTAVES = 0.5  # each training session's voice moved up or down by up to this (6 semitones)
PREVIOUS_S = 2.0  # of the session's previous take, replayed before a crop
PREVIOUS_FRAMES = int(PREVIOUS_S * FEATURE_RATE_HZ)
PAUSE_FRAMES = int(0.5 * FEATURE_RATE_HZ)
MEMBERS = 2  # readers averaged by the estimator, each trained alike from its own seed


def corpus_texts(corpus: Path, held_out: bool) -> list[str]:
    manifest = json.loads((corpus / "manifest.json").read_text())
    return sorted({u["text"] for u in manifest["utterances"] if u["held_out"] == held_out})


def load_takes(split: str, corpus: Path, per_emotion: int, seed: int) -> list[Take]:
    """The split's takes, built once; `split` is "train" or "held_out"."""
    folder = DATA / split
    manifest = folder / "manifest.json"
    if manifest.exists():
        saved = json.loads(manifest.read_text())
        if saved["per_emotion"] == per_emotion and saved["seed"] == seed:
            return [Take(t["emotion"], t["voice"], t["text"], folder / t["file"], Prosody(**t["prosody"]))
                    for t in saved["takes"]]  # fmt: skip
    takes = build_takes(corpus_texts(corpus, split == "held_out"), folder, per_emotion, split == "held_out", seed)
    entries = [{"emotion": t.emotion, "voice": t.voice, "text": t.text, "file": t.path.name,
                "prosody": asdict(t.prosody)} for t in takes]  # fmt: skip
    manifest.write_text(json.dumps({"per_emotion": per_emotion, "seed": seed, "takes": entries}))
    return takes


def light_channel(rng: np.random.Generator, audio: np.ndarray, rate: int) -> tuple[np.ndarray, int]:
    """What a room and a line do to a take, without touching its pitch, tempo, tilt or level."""
    y = audio.astype(np.float64)
    if rng.random() < 0.3:
        y = reverb(rng, y, rate, rng.uniform(0.15, 0.6))
    if rng.random() < 0.5:
        y = add_noise(rng, y, rng.uniform(12, 35))
    y, rate = channel(rng, y, rate)
    return np.clip(y, -1, 1).astype(np.float32), rate


def features(audio: np.ndarray, rate: int, pitch: bool) -> np.ndarray:
    """The frames an estimator hears (log-mel, then pitch if it hears pitch), as float16."""
    return offline_frames(audio, rate, pitch).astype(np.float16)


def _take_features(job: tuple[Path, int, bool]) -> list[np.ndarray]:
    import soundfile

    path, seed, pitch = job
    audio, rate = soundfile.read(path, dtype="float32")
    rng = np.random.default_rng(seed)
    return [features(audio, rate, pitch), features(*light_channel(rng, audio, rate), pitch)]


def build_features(takes: list[Take], seed: int, pitch: bool) -> tuple[list[np.ndarray], np.ndarray]:
    """The frames of every take (clean and through a channel) and their emotion indices, cached beside
    the takes."""
    from concurrent.futures import ProcessPoolExecutor

    cache = takes[0].path.parent / f"features{'_pitch' if pitch else ''}_seed{seed}.npz"
    if cache.exists():
        saved = np.load(cache)
        if len(saved["labels"]) == 2 * len(takes):
            cuts = np.cumsum(saved["lengths"])[:-1]
            return np.split(saved["frames"], cuts), saved["labels"]
    jobs = [(t.path, seed * 7919 + k, pitch) for k, t in enumerate(takes)]
    with ProcessPoolExecutor(2) as pool:
        versions = list(tqdm(pool.map(_take_features, jobs, chunksize=16), total=len(jobs), desc="features"))
    feats, labels = [], []
    for take, pair in zip(takes, versions, strict=True):
        for f in pair:
            feats.append(f)
            labels.append(EMOTIONS.index(take.emotion))
    np.savez(cache, frames=np.concatenate(feats), lengths=np.array([len(f) for f in feats]), labels=np.array(labels))
    return feats, np.array(labels)


def real_neutral_features(pitch: bool) -> list[np.ndarray]:
    from emostream.training.real_voices import TRAINING, load_real_voices

    utterances, _ = load_real_voices(TRAINING)
    return [features(u.audio, u.rate, pitch) for u in utterances]


class Speakers:
    """Who speaks each piece (feature array) and what streaming it leaves in a speaker reference: the
    gated sum of its normalised frames and its seconds of speech. Pieces are grouped by voice and by
    version (clean, or through a channel), so a session keeps one sound."""

    def __init__(self, model: VoiceEmotion, feats: list[np.ndarray], groups: list[str]) -> None:
        sums, seconds = [], []
        with torch.no_grad():
            for f in feats:
                even = f[: f.shape[0] // INPUTS_PER_STEP * INPUTS_PER_STEP].astype(np.float32)
                x, gate = model.frames(torch.from_numpy(even)[None])
                sums.append((gate[0, :, None] * x[0]).sum(0).numpy())
                seconds.append(float(gate.sum()) * STEP_S)
        self.sums, self.seconds = np.array(sums), np.array(seconds)
        self.members: dict[str, np.ndarray] = {}
        for g in sorted(set(groups)):
            self.members[g] = np.array([i for i, h in enumerate(groups) if h == g])
        self.group = groups

    def context(self, rng: np.random.Generator, piece: int, reference_s: float) -> tuple[np.ndarray, float, int]:
        """What 0 to MAX_CONTEXT other pieces of `piece`'s group leave: the reference and its seconds after
        all but the last of them, and the last (-1: none), which the crop's stream replays before it."""
        others = self.members[self.group[piece]]
        others = others[others != piece]
        chosen = rng.choice(others, size=min(int(rng.integers(MAX_CONTEXT + 1)), others.size), replace=False)
        if chosen.size == 0:
            return np.zeros(self.sums.shape[1], np.float32), 0.0, -1
        earlier = chosen[:-1]
        seconds = float(self.seconds[earlier].sum())
        if seconds == 0.0:
            return np.zeros(self.sums.shape[1], np.float32), 0.0, int(chosen[-1])
        reference = self.sums[earlier].sum(0) / (seconds / STEP_S)
        return reference.astype(np.float32), min(seconds, reference_s), int(chosen[-1])


def prefix_frames(speakers: Speakers | None) -> int:
    """Feature frames before each crop: the previous piece's end and a pause, with a session; else none."""
    return 0 if speakers is None else PREVIOUS_FRAMES + PAUSE_FRAMES


def crop_batch(rng: np.random.Generator, feats: list[np.ndarray], labels: np.ndarray, real: list[np.ndarray],
               batch: int, speakers: Speakers | None = None, reference_s: float = 0.0,
               ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:  # fmt: skip
    """`batch` crops of CROP_S (padded with silence where a take is shorter), their labels, and the
    speaker reference (batch, width) and its seconds (batch, 1) each starts from (zero without
    `speakers`). `speakers` covers `feats` then `real`. With `speakers`, each crop is preceded by the end
    of the session's previous piece (PREVIOUS_S) and a pause, or by silence in a fresh stream: the first
    `prefix_frames(speakers)` frames, which the loss leaves out."""
    length = int(CROP_S * FEATURE_RATE_HZ) // INPUTS_PER_STEP * INPUTS_PER_STEP
    prefix = prefix_frames(speakers)
    every = feats + real
    x = np.repeat(silent_frames(prefix + length, feats[0].shape[1])[None], batch, axis=0)
    y = np.zeros(batch, np.int64)
    reference = np.zeros((batch, feats[0].shape[1]), np.float32)
    heard = np.zeros((batch, 1), np.float32)
    for b in range(batch):
        if real and rng.random() < REAL_NEUTRAL_SHARE:
            k, label = len(feats) + int(rng.integers(len(real))), EMOTIONS.index("neutral")
        else:
            k = int(rng.integers(len(feats)))
            label = int(labels[k])
        f = every[k]
        start = int(rng.integers(max(1, f.shape[0] - length + 1)))
        piece = f[start : start + length]
        x[b, prefix : prefix + piece.shape[0]] = piece
        y[b] = label
        if speakers is not None:
            reference[b], heard[b, 0], previous = speakers.context(rng, k, reference_s)
            if previous >= 0:
                tail = every[previous][-PREVIOUS_FRAMES:]
                x[b, PREVIOUS_FRAMES - tail.shape[0] : PREVIOUS_FRAMES] = tail
    return torch.from_numpy(x), torch.from_numpy(y), torch.from_numpy(reference), torch.from_numpy(heard)


def shift_pitch(rng: np.random.Generator, model: VoiceEmotion, x: torch.Tensor, reference: torch.Tensor,
                octaves: float) -> None:  # fmt: skip
    """Moves each crop's voice (its session: the crop, the previous piece replayed before it, and the
    speaker reference) up or down by up to `octaves`, in place, so that the estimator learns pitch
    relative to the speaker rather than the training voices' own levels. `x`: raw frames (batch, t,
    width); `reference`: normalised (batch, width), shifted by the same amount times its own average
    periodicity, as streaming the shifted pieces would have left it."""
    periodicity, octave = N_MELS, N_MELS + 1
    delta = torch.from_numpy(rng.uniform(-octaves, octaves, size=x.shape[0])).float()
    x[:, :, octave] += x[:, :, periodicity] * delta[:, None]
    heard_periodicity = reference[:, periodicity] * model.std[periodicity] + model.mean[periodicity]
    reference[:, octave] += delta * heard_periodicity / model.std[octave]


def train(model: VoiceEmotion, feats: list[np.ndarray], labels: np.ndarray, real: list[np.ndarray], steps: int,
          batch: int, seed: int, speakers: Speakers | None = None, pitch_shift: float = 0.0,
          ) -> dict[str, float]:  # fmt: skip
    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
    axes = torch.tensor([AROUSAL_VALENCE[e] for e in EMOTIONS])
    optimiser = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=1e-4)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimiser, max_lr=2e-3, total_steps=steps, pct_start=0.1)
    warmup = (prefix_frames(speakers) + int(WARMUP_S * FEATURE_RATE_HZ)) // INPUTS_PER_STEP
    progress = tqdm(range(steps), desc="voice emotion")
    loss_value = float("nan")
    for _ in progress:
        x, y, reference, heard = crop_batch(rng, feats, labels, real, batch, speakers, model.reference_s)
        if pitch_shift > 0 and model.pitch:
            shift_pitch(rng, model, x, reference, pitch_shift)
        inputs, gate = model.frames(x)
        if model.reference_s > 0:
            inputs, _, _ = model.with_reference(inputs, gate, reference, heard)
        logits, av, _ = model.raw(inputs)
        logits, av, gate = logits[:, warmup:], av[:, warmup:], gate[:, warmup:]
        weight = gate / gate.sum().clamp(min=1.0)
        ce = torch.nn.functional.cross_entropy(logits.transpose(1, 2), y[:, None].expand(-1, logits.shape[1]),
                                               reduction="none")  # fmt: skip
        mse = ((av - axes[y][:, None]) ** 2).sum(-1)
        loss = ((ce + 0.5 * mse) * weight).sum()
        optimiser.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimiser.step()
        schedule.step()
        loss_value = 0.98 * loss_value + 0.02 * float(loss) if loss_value == loss_value else float(loss)
        progress.set_postfix(loss=f"{loss_value:.3f}")
    return {"final_loss": loss_value}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Train the voice-emotion estimator from scratch.")
    parser.add_argument("--corpus", type=Path, default=ROOT / "training" / "data" / "corpus",
                        help="where the sentences come from (its manifest.json)")  # fmt: skip
    parser.add_argument("--per-emotion", type=int, default=800, help="training takes per emotion")
    parser.add_argument("--held-out-per-emotion", type=int, default=40)
    parser.add_argument("--steps", type=int, default=5000)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--hidden", type=int, default=96, help="width of the estimator's GRU")
    parser.add_argument("--members", type=int, default=MEMBERS,
                        help="readers to train and average, reader k from seed + k")  # fmt: skip
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-real", action="store_true", help="leave out the real neutral speech")
    parser.add_argument("--reference-s", type=float, default=REFERENCE_S,
                        help="the speaker reference's horizon in seconds of speech (0: none)")  # fmt: skip
    parser.add_argument("--pitch", action=argparse.BooleanOptionalAction, default=True,
                        help="hear the voice's pitch beside the log-mel frames (runtime/pitch.py)")  # fmt: skip
    parser.add_argument("--pitch-shift", type=float, default=PITCH_SHIFT_OCTAVES,
                        help="move each training session's voice up or down by up to this many octaves")  # fmt: skip
    parser.add_argument("--out", type=Path, default=CHECKPOINT)
    args = parser.parse_args(argv)
    started = time.time()
    if not (args.corpus / "manifest.json").exists():
        from emostream.training.corpus import build

        build(args.corpus, 2400, seed=0)
    takes = load_takes("train", args.corpus, args.per_emotion, args.seed)
    load_takes("held_out", args.corpus, args.held_out_per_emotion, args.seed + 1)  # for the benchmark
    feats, labels = build_features(takes, args.seed, args.pitch)
    real = [] if args.no_real else real_neutral_features(args.pitch)
    frames = np.concatenate([f.astype(np.float32) for f in feats[::2]])
    mean, std = torch.from_numpy(frames.mean(axis=0)), torch.from_numpy(frames.std(axis=0) + 1e-3)
    speakers, readers, losses = None, [], []
    for k in range(args.members):
        torch.manual_seed(args.seed + k)  # the initial weights: the same seed gives the same reader
        reader = VoiceEmotion(hidden=args.hidden, reference_s=args.reference_s, pitch=args.pitch)
        reader.mean.copy_(mean)
        reader.std.copy_(std)
        if args.reference_s > 0 and speakers is None:  # feats: each take clean, then through a channel
            groups = [f"{t.voice}/{version}" for t in takes for version in ("clean", "channel")]
            speakers = Speakers(reader, feats + real, groups + ["real"] * len(real))  # real speech: one speaker
        result = train(reader, feats, labels, real, args.steps, args.batch_size, args.seed + k, speakers,
                       args.pitch_shift)  # fmt: skip
        readers.append(reader)
        losses.append(result["final_loss"])
    model = ensemble(readers)
    metadata = {
        "takes": len(takes), "per_emotion": args.per_emotion, "real_neutral_pieces": len(real),
        "steps": args.steps, "batch_size": args.batch_size, "seed": args.seed, "members": args.members,
        "reference_s": args.reference_s, "max_context_takes": MAX_CONTEXT,
        "pitch_shift_octaves": args.pitch_shift, "final_losses": losses,
        "wall_minutes": (time.time() - started) / 60, "machine": machine(),
        "created": time.strftime("%Y-%m-%d %H:%M"),
    }  # fmt: skip
    save(model, metadata, args.out)
    print(f"wrote {args.out} ({metadata['wall_minutes']:.1f} min, losses {', '.join(f'{v:.3f}' for v in losses)})")


def ensemble(readers: list[VoiceEmotion]) -> VoiceEmotion:
    """One estimator that averages the readers of one-reader estimators trained alike (the same features,
    statistics and settings; runtime/models/voice_emotion.py)."""
    first = readers[0]
    model = VoiceEmotion(hidden=first.hidden, smoothing_s=first.smoothing_s, reference_s=first.reference_s,
                         pitch=first.pitch, axes_smoothing_s=first.axes_smoothing_s, members=len(readers))  # fmt: skip
    model.mean.copy_(first.mean)
    model.std.copy_(first.std)
    for slot, reader in zip(model.readers, readers, strict=True):
        slot.load_state_dict(reader.readers[0].state_dict())
    return model


def save(model: VoiceEmotion, metadata: dict, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    config = {"hidden": model.hidden, "smoothing_s": model.smoothing_s, "axes_smoothing_s": model.axes_smoothing_s,
              "reference_s": model.reference_s, "pitch": model.pitch, "members": model.members}  # fmt: skip
    torch.save({"kind": "voice_emotion", "config": config,
                "state_dict": model.state_dict(), "metadata": metadata}, path)  # fmt: skip


if __name__ == "__main__":
    main()
