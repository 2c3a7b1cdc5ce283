"""Trains the face generator from scratch: corpus -> examples -> flow matching -> runtime/assets/face.pt.

    emostream train face [--steps 9800] [--one-step-steps 3000] [--audio-closure-steps 3000] [--utterances 2400]

Trains on 2 CPU cores in about an hour (corpus, examples, training), with progress bars, a loss curve in
benchmarks/results/face_training.png and the recipe in the checkpoint. The budget is in optimizer steps,
so the same seed gives the same weights however busy the machine is. The data: the TTS corpus (built with
2,400 sentences if the folder has none) and the real Spanish prompts of training/real_voices.py (Debian
packages; `--tts-only` leaves them out). Stages on the frozen network follow (training/face_stages.py):
the one-step sampler's distillation, the audio-only closure head (which hears the Russian prompts as
well: `closure_examples`), the lip-opening head and the lip-shape head.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from emostream.runtime.audio import N_MELS
from emostream.runtime.controls import MAX_LOOKAHEAD
from emostream.runtime.models.face import FaceConfig, FaceNetwork, lookahead_timing, save_checkpoint
from emostream.runtime.rigs import FACE_CHANNELS
from emostream.runtime.slot_table import SILENT_FEATURE as SILENT_FEATURES
from emostream.training.face_data import FaceExample, build_capture_dataset, build_dataset, build_real_dataset
from emostream.training.machine import machine
from emostream.training.optimise import run_stage
from emostream.training.real_voices import CLOSURE_TRAINING, TRAINING, load_real_voices, split_at_pauses
from emostream.training.teacher_face import MOUTH_CHANNELS

ROOT = Path(__file__).resolve().parent.parent
CHECKPOINT = ROOT / "runtime" / "assets" / "face.pt"
RESULTS = ROOT / "benchmarks" / "results"
MOUTH_WEIGHT = 3.0  # lip-sync matters most: mouth channels weigh more in the loss
VTLP_PROBABILITY = 0.5  # share of training sequences whose spectrum is warped (vocal tract length)
# A budget in steps, not minutes, so that a run repeats (about 50 minutes on the 2-core development machine).
STEPS = 9800
CLOSURE_WEIGHT = 0.5  # the bilabial closure head's cross-entropy, next to the flow matching loss


def stretch(face: np.ndarray, scale: float) -> np.ndarray:
    """Face curves (T, C) resampled in time so they last `scale` times as long."""
    if scale == 1.0:
        return face
    n = round(face.shape[0] * scale)
    source = np.clip(np.arange(n) / scale, 0, face.shape[0] - 1)
    lo = np.floor(source).astype(int)
    hi = np.minimum(lo + 1, face.shape[0] - 1)
    w = (source - lo)[:, None]
    return face[lo] * (1 - w) + face[hi] * w


def stretch_labels(labels: np.ndarray, scale: float) -> np.ndarray:
    """Per-frame labels (T,) resampled in time as `stretch` does, each frame taking the nearest one's label."""
    n = round(labels.shape[0] * scale)
    return labels[np.clip(np.rint(np.arange(n) / scale).astype(int), 0, labels.shape[0] - 1)]


def warp_mel(features: np.ndarray, factor: float) -> np.ndarray:
    """Vocal tract length perturbation on log-mel frames (T, n_mels): the spectrum stretched along the mel
    axis by `factor` (> 1 moves formants up, as a shorter vocal tract does). Edges are held."""
    n = features.shape[1]
    source = np.clip(np.arange(n) / factor, 0, n - 1)
    lo = np.floor(source).astype(int)
    hi = np.minimum(lo + 1, n - 1)
    w = source - lo
    return features[:, lo] * (1 - w) + features[:, hi] * w


def make_batch(examples: list[FaceExample], rng: np.random.Generator, lookahead: int) -> dict[str, Tensor]:
    """Features with the lookahead's silent prefix, target faces, emotion and a frame mask."""
    delay, prefix = lookahead_timing(lookahead)
    feats, faces, emos, lengths, closures, visemes = [], [], [], [], [], []
    for ex in examples:
        v = int(rng.integers(len(ex.features)))
        r = int(rng.integers(len(ex.faces)))
        voiced = ex.features[v].astype(np.float32)
        if rng.random() < VTLP_PROBABILITY:  # unseen voices differ most in formant positions
            voiced = warp_mel(voiced, rng.uniform(0.88, 1.12))
        f = np.concatenate([np.full((prefix, N_MELS), SILENT_FEATURES), voiced])
        positions = f.shape[0] // 2
        face = stretch(ex.faces[r].astype(np.float32), ex.time_scales[v])
        closure = stretch(ex.closure.astype(np.float32)[:, None], ex.time_scales[v])[:, 0]
        n = min(positions - delay, face.shape[0])
        feats.append(f[: 2 * positions].reshape(positions, 2, N_MELS))
        faces.append(face[:n])
        closures.append(closure[:n])
        visemes.append(stretch_labels(ex.visemes.astype(np.int64), ex.time_scales[v])[:n])
        emos.append(ex.emotions[r])
        lengths.append(n)
    M = max(f.shape[0] for f in feats)
    K = max(lengths)
    B = len(examples)
    features = np.full((B, M, 2, N_MELS), SILENT_FEATURES, np.float32)
    target = np.zeros((B, K, len(FACE_CHANNELS)), np.float32)
    mask = np.zeros((B, K), np.float32)
    closure_target = np.zeros((B, K), np.float32)
    viseme_target = np.zeros((B, K), np.int64)
    for b in range(B):
        features[b, : feats[b].shape[0]] = feats[b]
        target[b, : lengths[b]] = faces[b]
        mask[b, : lengths[b]] = 1
        closure_target[b, : closures[b].shape[0]] = closures[b]
        viseme_target[b, : visemes[b].shape[0]] = visemes[b]
    return {
        "features": torch.from_numpy(features),
        "target": torch.from_numpy(target),
        "mask": torch.from_numpy(mask),
        "closure": torch.from_numpy(closure_target),
        "visemes": torch.from_numpy(viseme_target),
        "emotion": torch.from_numpy(np.stack(emos)),
        "lookahead": torch.tensor(lookahead),
    }


def random_batch(examples: list[FaceExample], rng: np.random.Generator, batch_size: int) -> dict[str, Tensor]:
    """`batch_size` distinct examples at one random lookahead (the batch's "lookahead")."""
    chosen = rng.choice(len(examples), size=min(batch_size, len(examples)), replace=False)
    return make_batch([examples[i] for i in chosen], rng, int(rng.integers(MAX_LOOKAHEAD + 1)))


def frame_windows(encoded: Tensor, n_frames: int, delay: int, window: int) -> Tensor:
    """(B, M, C) encodings -> (B, K, window, C): frame k sees encodings k .. k + delay, zeros beyond."""
    B, _, C = encoded.shape
    padded = torch.cat([encoded, encoded.new_zeros(B, window + n_frames, C)], dim=1)
    slots = [padded[:, j : j + n_frames] if j <= delay else encoded.new_zeros(B, n_frames, C) for j in range(window)]
    return torch.stack(slots, dim=2)


def history_windows(x: Tensor, n_history: int) -> Tensor:
    """(B, K, C) normalised targets -> (B, K, n_history, C): the frames before each, oldest first."""
    B, K, C = x.shape
    padded = torch.cat([x.new_zeros(B, n_history, C), x], dim=1)
    return torch.stack([padded[:, j : j + K] for j in range(n_history)], dim=2)


def frame_conditions(net: FaceNetwork, batch: dict[str, Tensor], gen: torch.Generator) -> tuple[Tensor, Tensor]:
    """Every frame of a batch as the network sees it: (B * K, hidden) conditions and (B * K, C) normalised
    targets. The history is the target's past with noise on it, and sometimes none at all."""
    lookahead = int(batch["lookahead"])
    delay, _ = lookahead_timing(lookahead)
    c = net.config
    target = batch["target"]
    B, K, C = target.shape
    x1 = (target - net.face_mean) / net.face_std
    encoded = net.encode_sequence(batch["features"])
    windows = frame_windows(encoded, K, delay, net.window).reshape(B * K, net.window, -1)
    history = history_windows(x1, c.history_frames)
    history = history + 0.1 * torch.randn(history.shape, generator=gen)  # robustness to its own errors
    keep = (torch.rand(B, K, 1, 1, generator=gen) > 0.1).float()  # sometimes no history at all
    history = (history * keep).reshape(B * K, c.history_frames, C)
    emotion = batch["emotion"][:, None].expand(B, K, -1).reshape(B * K, -1)
    cond = net.condition(windows, emotion, batch["lookahead"].expand(B * K), history)
    return cond, x1.reshape(B * K, C)


def flow_matching_loss(net: FaceNetwork, batch: dict[str, Tensor], weights: Tensor, gen: torch.Generator) -> Tensor:
    """Conditional flow matching: regress the velocity x1 - x0 at a random point of the straight path."""
    cond, x1 = frame_conditions(net, batch, gen)
    mask = batch["mask"]
    B, K = mask.shape
    x0 = torch.randn(x1.shape, generator=gen)
    t = torch.rand(B * K, generator=gen)
    xt = (1 - t[:, None]) * x0 + t[:, None] * x1
    error = (net.velocity(xt, net.time_term(t), cond) - (x1 - x0)) ** 2 * weights
    m = mask.reshape(B * K, 1)
    flow = (error * m).sum() / (m.sum() * weights.sum())
    logits = net.closure(cond)
    closure = (
        torch.nn.functional.binary_cross_entropy_with_logits(
            logits, batch["closure"].reshape(B * K, 1), weight=m, reduction="sum"
        )
        / m.sum()
    )
    return flow + CLOSURE_WEIGHT * closure


def fit_normalisation(net: FaceNetwork, examples: list[FaceExample]) -> None:
    feats = np.concatenate([ex.features[0].astype(np.float32) for ex in examples[:400]])
    faces = np.concatenate([f.astype(np.float32) for ex in examples[:400] for f in ex.faces])
    net.feature_mean.copy_(torch.from_numpy(feats.mean(0)))
    net.feature_std.copy_(torch.from_numpy(feats.std(0) + 1e-3))
    net.face_mean.copy_(torch.from_numpy(faces.mean(0)))
    net.face_std.copy_(torch.from_numpy(faces.std(0) + 0.02))


def train(examples: list[FaceExample], steps: int, batch_size: int, seed: int) -> tuple[FaceNetwork, dict]:
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    gen = torch.Generator().manual_seed(seed)
    net = FaceNetwork(FaceConfig())
    fit_normalisation(net, examples)
    weights = torch.ones(len(FACE_CHANNELS))
    weights[[FACE_CHANNELS.index(n) for n in MOUTH_CHANNELS]] = MOUTH_WEIGHT

    def loss() -> Tensor:
        return flow_matching_loss(net, random_batch(examples, rng, batch_size), weights, gen)

    losses = run_stage("train face", list(net.parameters()), loss, steps, 2e-3)
    return net.eval(), {"steps": steps, "losses": losses, "batch_size": batch_size}


def plot_losses(losses: list[float], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 3.5))
    ax.plot(losses, alpha=0.3, linewidth=0.6, label="batch")
    window = max(1, len(losses) // 50)
    smooth = np.convolve(losses, np.ones(window) / window, mode="valid")
    ax.plot(np.arange(smooth.size) + window - 1, smooth, label=f"mean of {window}")
    ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel("flow matching loss")
    ax.set_title("face generator training")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def training_examples(args: argparse.Namespace) -> tuple[list[FaceExample], dict]:
    """The examples the recipe trains on (the corpus is built if the folder has none) and a description of
    them for the checkpoint."""
    if args.captures is not None:
        examples = build_capture_dataset(args.captures)
        data = {"captures": str(args.captures), "takes": len(examples)}
    else:
        if not (args.corpus / "manifest.json").exists():
            from emostream.training.corpus import build

            build(args.corpus, args.utterances, seed=args.seed)
        examples = build_dataset(args.corpus, limit=args.limit)
        recordings, unaligned = ([], {}) if args.tts_only else load_real_voices(TRAINING)
        real = [piece for r in recordings[: args.limit] for piece in split_at_pauses(r)]  # batches pad to the longest
        examples += build_real_dataset(real)
        manifest = json.loads((args.corpus / "manifest.json").read_text())
        data = {
            "utterances": len(examples),
            "voices_train": sorted({e["voice_id"] for e in manifest["utterances"] if not e["held_out"]}),
            "voices_held_out": sorted({e["voice_id"] for e in manifest["utterances"] if e["held_out"]}),
            "minutes_of_speech": manifest["seconds_train"] / 60,
            "real_recordings": len(recordings[: args.limit]),
            "real_pieces": len(real),
            "real_recordings_unaligned": unaligned,
            "minutes_of_real_speech": sum(u.audio.size / u.rate for u in real) / 60,
            "audio_versions": "clean + 2 augmented (speed, EQ, reverb, noise, level, clipping; telephone, "
            "codec or lower rate)",
            "vtlp": f"mel-axis warp 0.88-1.12 on {VTLP_PROBABILITY:.0%} of sequences",
            "renders_per_utterance": 4,
        }
    return examples, data


def closure_examples(args: argparse.Namespace, examples: list[FaceExample], data: dict,
                     ) -> tuple[list[FaceExample], dict]:  # fmt: skip
    """What the audio-only closure head trains on: the recipe's examples and the real recordings of the
    languages only that head hears (CLOSURE_TRAINING), their seeds following the recipe's real ones; and a
    description of the latter (the recipe's alone where that stage does not run: `--audio-closure-steps 0`).
    The head decides the lips on real voices and gains from another real speaker (docs/real-voices.md); the
    flow and the other heads train on the recipe's examples."""
    if args.audio_closure_steps <= 0 or args.captures is not None or args.tts_only or not CLOSURE_TRAINING:
        return examples, {}
    recordings, unaligned = load_real_voices(CLOSURE_TRAINING)
    pieces = [piece for r in recordings[: args.limit] for piece in split_at_pauses(r)]
    added = build_real_dataset(pieces, first=data["real_pieces"])
    return examples + added, {
        "languages": list(CLOSURE_TRAINING),
        "real_recordings": len(recordings[: args.limit]),
        "real_pieces": len(pieces),
        "real_recordings_unaligned": unaligned,
        "minutes_of_real_speech": sum(u.audio.size / u.rate for u in pieces) / 60,
    }


def add_data_arguments(parser: argparse.ArgumentParser) -> None:
    """The options that choose the training examples, shared with the one-step distillation."""
    parser.add_argument("--corpus", type=Path, default=ROOT / "training" / "data" / "corpus")
    parser.add_argument("--utterances", type=int, default=2400, help="corpus size, if it must be built")
    parser.add_argument("--batch-size", type=int, default=24)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--limit", type=int, default=None, help="use at most this many utterances")
    parser.add_argument(
        "--captures",
        type=Path,
        default=None,
        help="train on real captures (audio + Live Link CSV or FLAME npz pairs) instead",
    )
    parser.add_argument(
        "--tts-only",
        action="store_true",
        help=f"leave out the real recordings ({', '.join(TRAINING + CLOSURE_TRAINING)}; Debian packages)",
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Train the face generator from scratch.")
    add_data_arguments(parser)
    parser.add_argument("--steps", type=int, default=STEPS, help="optimizer steps")
    from emostream.training.face_stages import add_stage_arguments

    add_stage_arguments(parser)
    parser.add_argument("--out", type=Path, default=CHECKPOINT)
    args = parser.parse_args(argv)
    if args.steps < 1:
        parser.error("--steps must be at least 1")
    torch.set_num_threads(2)
    began = time.time()
    examples, data = training_examples(args)
    # Before any training: its examples are built in forked workers, which torch's used thread pool would
    # deadlock (as in face_stages.main).
    closure, closure_data = closure_examples(args, examples, data)
    net, log = train(examples, args.steps, args.batch_size, args.seed)
    metadata = {
        "data": data,
        "training": {"steps": log["steps"], "batch_size": log["batch_size"],
                     "final_loss": float(np.mean(log["losses"][-100:])), "seed": args.seed,
                     "wall_minutes_total": (time.time() - began) / 60, "machine": machine()},
        "created": time.strftime("%Y-%m-%d %H:%M"),
    }  # fmt: skip
    from emostream.training.face_stages import run_stages

    net, records = run_stages(net, examples, args.batch_size, args.seed, args.one_step_steps,
                              args.audio_closure_steps, args.audio_opening_steps, args.lip_shape_steps,
                              closure)  # fmt: skip
    if closure_data:
        records["audio_closure"]["data_added"] = closure_data
    metadata |= records
    metadata["training"]["wall_minutes_total"] = (time.time() - began) / 60
    args.out.parent.mkdir(parents=True, exist_ok=True)
    save_checkpoint(args.out, net, metadata)
    RESULTS.mkdir(parents=True, exist_ok=True)
    plot_losses(log["losses"], RESULTS / "face_training.png")
    (RESULTS / "face_training.json").write_text(json.dumps({**metadata, "losses": log["losses"][::10]}, indent=1))
    print(f"wrote {args.out} ({args.out.stat().st_size / 1e6:.1f} MB) after {log['steps']} steps; "
          f"loss {metadata['training']['final_loss']:.4f}")  # fmt: skip


if __name__ == "__main__":
    main()
