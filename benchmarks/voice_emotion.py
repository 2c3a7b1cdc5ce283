"""`emostream bench voice-emotion`: what the voice-emotion estimator hears, on voices it never trained on.

- Held-out synthetic voices (flite awb, two espeak-ng voices; training/data/emotional/held_out, built by
  `emostream train voice-emotion`): accuracy of the top of the smoothed blend (at the end of each take,
  and over its frames from 1 s on), a confusion matrix, and the correlation of the mean estimated arousal
  with the emotion's arousal across takes. Twice: each take as a fresh stream, and in sessions, as a
  presenter's stream hears one speaker for minutes: each voice's takes, in every emotion, in a random
  order (seed 0), 0.5 s apart, as one stream, each take judged at its end as before.
- Real read speech (the Italian Asterisk prompts, calm and never trained on), played back to back as one
  stream: the share of speech time with neutral on top, switches of the top per minute, and how fast the
  reported arousal moves while the voice goes on (mean absolute change per second of speech).
- The same recordings made louder (+6 dB) and higher (+3 semitones, by playing them 1.19 times faster, so
  also faster, as aroused speech is): how often and by how much the estimated arousal rises.
- Compute: one step (one face frame) at batch 1 on one core, eager and through ONNX Runtime; with
  `--against CHECKPOINT`, that checkpoint's too, timed alternately with this one's.

What the synthetic figures can show: that the estimator reads the prosodic cues the takes were built with
(rate, F0 level and range, loudness, spectral tilt, tremor) across voices and engines. What they cannot:
how it reads real emotional speech, which no package here ships; acted TTS prosody is a caricature of it.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import soundfile
import torch

from emostream.benchmarks.common import machine, step_cost, write_report
from emostream.runtime.models.voice_emotion import (
    INPUTS_PER_STEP,
    STEP_S,
    VoiceEmotion,
    load_voice_emotion,
    offline_frames,
    silent_frames,
)
from emostream.runtime.pitch import PITCH_WINDOW, pitch_of_windows
from emostream.runtime.protocol import EMOTIONS
from emostream.training.augment import speed
from emostream.training.emotional_speech import AROUSAL_VALENCE
from emostream.training.train_voice_emotion import CHECKPOINT, DATA, PAUSE_FRAMES

ROOT = Path(__file__).resolve().parents[1]
SETTLE_S = 1.0  # frames before this are the estimate's warm-up, left out of frame accuracy
LOUDER_DB, HIGHER_ST = 6.0, 3.0


def even_features(model: VoiceEmotion, audio: np.ndarray, rate: int) -> np.ndarray:
    """The frames the model hears of `audio` (log-mel, and pitch if it hears pitch), an even number of
    them (whole steps)."""
    feats = offline_frames(audio.astype(np.float32), rate, model.pitch)
    return feats[: feats.shape[0] // INPUTS_PER_STEP * INPUTS_PER_STEP]


def estimate_features(model: VoiceEmotion, feats: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Smoothed blend (n, 8), arousal-valence (n, 2) and speech gate (n,) per face frame, streamed offline:
    the estimates as the server applies them (each step's newest, runtime/models/voice_emotion.py)."""
    x = torch.from_numpy(feats)[None]
    with torch.no_grad():
        out = model.as_applied(model.estimates(model.split(x)))
        _, gate = model.frames(x)
    return out["emotion"][0].numpy(), out["arousal_valence"][0].numpy(), gate[0].numpy()


def estimate(model: VoiceEmotion, audio: np.ndarray, rate: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return estimate_features(model, even_features(model, audio, rate))


def take_features(model: VoiceEmotion, take: dict[str, Any]) -> np.ndarray:
    audio, rate = soundfile.read(DATA / "held_out" / take["file"], dtype="float32")
    return even_features(model, audio, rate)


def in_sessions(model: VoiceEmotion, takes: list[dict[str, Any]], feats: list[np.ndarray],
                ) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:  # fmt: skip
    """Each take's (blend, axes, gate) steps as heard within its voice's session (see the docstring);
    `feats`: each take's `take_features`."""
    rng = np.random.default_rng(0)
    pause = silent_frames(PAUSE_FRAMES, model.width)  # the trainer's pause between takes
    out: list[Any] = [None] * len(takes)
    for voice in sorted({t["voice"] for t in takes}):
        order = rng.permutation([i for i, t in enumerate(takes) if t["voice"] == voice])
        pieces = [feats[i] for i in order]
        stream = np.concatenate([p for piece in pieces for p in (piece, pause)])
        blend, axes, gate = estimate_features(model, stream)
        start = 0
        for i, piece in zip(order, pieces, strict=True):
            steps = slice(start // INPUTS_PER_STEP, (start + piece.shape[0]) // INPUTS_PER_STEP)
            out[i] = (blend[steps], axes[steps], gate[steps])
            start += piece.shape[0] + pause.shape[0]
    return out


def held_out_takes(model: VoiceEmotion) -> tuple[list[dict[str, Any]], list[np.ndarray]]:
    """The held-out takes and their frames, read once for both ways of judging them."""
    takes = json.loads((DATA / "held_out" / "manifest.json").read_text())["takes"]
    return takes, [take_features(model, t) for t in takes]


def synthetic(model: VoiceEmotion, takes: list[dict[str, Any]], feats: list[np.ndarray], sessions: bool = False,
              ) -> dict[str, Any]:  # fmt: skip
    confusion = np.zeros((len(EMOTIONS), len(EMOTIONS)), np.int64)
    frame_hits = frame_total = 0
    arousal_est, arousal_true = [], []
    heard = in_sessions(model, takes, feats) if sessions else [estimate_features(model, f) for f in feats]
    for take, (blend, axes, gate) in zip(takes, heard, strict=True):
        truth = EMOTIONS.index(take["emotion"])
        confusion[truth, int(np.argmax(blend[-1]))] += 1
        settled = (np.arange(len(blend)) * STEP_S >= SETTLE_S) & (gate > 0.5)
        frame_hits += int((np.argmax(blend[settled], axis=1) == truth).sum())
        frame_total += int(settled.sum())
        arousal_est.append(float(axes[settled, 0].mean()) if settled.any() else 0.0)
        arousal_true.append(AROUSAL_VALENCE[take["emotion"]][0])
    return {
        "takes": len(takes),
        "voices": sorted({t["voice"] for t in takes}),
        "take_accuracy": float(np.trace(confusion) / confusion.sum()),
        "frame_accuracy_after_1s": frame_hits / max(frame_total, 1),
        "arousal_correlation": float(np.corrcoef(arousal_est, arousal_true)[0, 1]),
        "confusion": confusion.tolist(),
        "per_emotion_recall": {e: float(confusion[i, i] / max(confusion[i].sum(), 1)) for i, e in enumerate(EMOTIONS)},
    }


def real_speech(model: VoiceEmotion) -> dict[str, Any]:
    from emostream.training.real_voices import load_real_voices

    utterances, _ = load_real_voices(("it",))
    rate = 16_000
    pieces = [u.audio if u.rate == rate else _to_rate(u.audio, u.rate, rate) for u in utterances]
    stream = np.concatenate([np.concatenate([p, np.zeros(rate // 2)]) for p in pieces])
    blend, axes, gate = estimate(model, stream, rate)
    top = np.argmax(blend, axis=1)
    speech = gate > 0.5
    within = speech[1:] & speech[:-1]  # how fast the reported arousal moves while the calm voice goes on
    arousal_wobble = float(np.abs(np.diff(axes[:, 0]))[within].mean() / STEP_S)
    minutes = len(top) * STEP_S / 60
    switches = int((top[1:] != top[:-1]).sum())
    shares = {e: float((top[speech] == i).mean()) for i, e in enumerate(EMOTIONS)}
    rises = []
    for u in utterances:
        _, base_axes, base_gate = estimate(model, u.audio, u.rate)
        louder = np.clip(u.audio * 10 ** (LOUDER_DB / 20), -1, 1)
        higher = speed(louder, u.rate, 2 ** (HIGHER_ST / 12))
        _, up_axes, up_gate = estimate(model, higher.astype(np.float32), u.rate)
        if base_gate.max() > 0.5 and up_gate.max() > 0.5:
            rises.append(float(up_axes[up_gate > 0.5, 0].mean() - base_axes[base_gate > 0.5, 0].mean()))
    return {
        "recordings": len(utterances),
        "minutes": minutes,
        "neutral_top_share_of_speech": shares["neutral"],
        "top_shares_of_speech": shares,
        "switches_per_minute": switches / minutes,
        "arousal_change_per_second_of_speech": arousal_wobble,
        "louder_higher": {
            "recordings": len(rises),
            "share_arousal_rises": float(np.mean(np.array(rises) > 0)),
            "mean_arousal_change": float(np.mean(rises)),
        },
        "timeline_blend": np.round(blend[:: max(1, len(top) // 2000)], 3).tolist(),
    }


def _to_rate(audio: np.ndarray, rate_in: int, rate_out: int) -> np.ndarray:
    from emostream.runtime.audio import Resampler

    return Resampler(rate_in, rate_out).offline(audio.astype(np.float64)).astype(np.float32)


def lipsync(model: VoiceEmotion, corpus: Path, n_utterances: int) -> dict[str, Any]:
    """Closure hit and false closures of the shipped face on held-out TTS voices, neutral against auto."""
    from emostream.benchmarks.face_quality import generate, lip_metrics, load_set
    from emostream.runtime.animate import DEFAULT_LOOKAHEAD_MS
    from emostream.runtime.assets import default_face_checkpoint
    from emostream.runtime.controls import emotion_vector, lookahead_from_ms
    from emostream.runtime.models.face import FaceGenerator, load_checkpoint
    from emostream.training.teacher_face import teach

    network, _ = load_checkpoint(default_face_checkpoint())
    generator = FaceGenerator(network, lookahead=lookahead_from_ms(DEFAULT_LOOKAHEAD_MS), n_steps=2).eval()
    held = load_set(corpus, held_out=True, limit=n_utterances)
    teacher = [teach(u.phones, u.audio, u.rate, "neutral", 1.0, seed=1).face for u in held]
    neutral = emotion_vector("neutral", 1.0)
    fixed = lip_metrics(generate(generator, held, neutral, seed=1), teacher, held)
    auto = lip_metrics(generate(generator, held, neutral, seed=1, estimator=model), teacher, held)
    return {"utterances": len(held), "neutral": fixed, "auto": auto}


def compute(model: VoiceEmotion) -> dict[str, float]:
    from emostream.engines.factory import make_backend

    # step_cost times a step (one output frame); a step serves estimates_per_step face frames
    eager = step_cost(model, batches=(1,))["ms_per_frame_batch1_1core"] / model.estimates_per_step
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    backend = make_backend("onnx", model)
    state = backend.init_state(1)
    inputs = {spec.name: torch.randn(1, *spec.shape) for spec in model.spec.inputs}
    no, yes = torch.zeros(1, dtype=torch.bool), torch.ones(1, dtype=torch.bool)

    def step() -> None:
        nonlocal state
        _, state = backend.step(inputs, state, torch.zeros(1, 1), no, yes)

    frames = model.estimates_per_step  # face frames a step serves
    cost = {"estimates_per_step": frames, "eager_ms_per_frame_batch1_1core": eager,
            "onnx_ms_per_step_batch1_1core": fastest_ms(step)}  # fmt: skip
    cost["onnx_ms_per_frame_batch1_1core"] = cost["onnx_ms_per_step_batch1_1core"] / frames
    if model.pitch:  # the pitch of a step's feature frames, as the server computes it when the step runs
        windows = torch.randn(model.spec.inputs_per_step, PITCH_WINDOW) * 0.1
        cost["pitch_ms_per_step_batch1_1core"] = fastest_ms(lambda: pitch_of_windows(windows))
        cost["pitch_ms_per_frame_batch1_1core"] = cost["pitch_ms_per_step_batch1_1core"] / frames
    torch.set_num_threads(threads)
    return cost


def compute_against(model: VoiceEmotion, other: VoiceEmotion, rounds: int = 3) -> tuple[dict, dict]:
    """`compute` of both, alternating `rounds` times (this machine's speed drifts), the fastest of each."""
    ours, theirs = [], []
    for _ in range(rounds):
        ours.append(compute(model))
        theirs.append(compute(other))
    return ({k: min(c[k] for c in ours) for k in ours[0]}, {k: min(c[k] for c in theirs) for k in theirs[0]})


def fastest_ms(run: Callable[[], Any], calls: int = 400) -> float:
    """Milliseconds a call of `run`, the fastest of three timed runs after 50 warm-up calls."""
    for _ in range(50):
        run()
    runs = []
    for _ in range(3):
        started = time.perf_counter()
        for _ in range(calls):
            run()
        runs.append((time.perf_counter() - started) / calls * 1e3)
    return min(runs)


def pitch_rows(c: dict[str, float]) -> list[str]:
    if "pitch_ms_per_frame_batch1_1core" not in c:
        return []
    pitch = c["pitch_ms_per_frame_batch1_1core"]
    both = c["onnx_ms_per_frame_batch1_1core"] + pitch
    return [f"| pitch of the step's audio (torch; {c['pitch_ms_per_step_batch1_1core']:.3f} a step) | {pitch:.3f} | |",
            f"| ONNX Runtime and pitch | {both:.3f} | <= 0.1 |"]  # fmt: skip


def against_rows(result: dict[str, Any]) -> list[str]:
    if "compute_against" not in result:
        return []
    c, o = result["compute"], result["compute_against"]
    total = c["onnx_ms_per_frame_batch1_1core"] + c.get("pitch_ms_per_frame_batch1_1core", 0.0)
    theirs = o["onnx_ms_per_frame_batch1_1core"] + o.get("pitch_ms_per_frame_batch1_1core", 0.0)
    name = result["against"]
    return [f"| {name}, timed alternately with it: ONNX Runtime | {o['onnx_ms_per_frame_batch1_1core']:.3f} | |",
            f"| {name}: ONNX Runtime and pitch | {theirs:.3f} (this one {total / theirs:.2f}x) | |"]  # fmt: skip


def report(result: dict[str, Any]) -> str:
    s, ss, r, c = result["synthetic"], result["synthetic_sessions"], result["real"], result["compute"]
    rises, lip = r["louder_higher"], result["lipsync"]
    lines = [
        "# Voice emotion", "",
        f"{result['machine']['cpu']}, {result['machine']['date']}; checkpoint {result['checkpoint']}", "",
        "| held-out synthetic voices | value | target |", "|---|---|---|",
        f"| 8-way accuracy, end of take ({s['takes']} takes) | {s['take_accuracy']:.3f} | >= 0.6 |",
        f"| 8-way accuracy, speech frames after 1 s | {s['frame_accuracy_after_1s']:.3f} | |",
        f"| arousal correlation across takes | {s['arousal_correlation']:.3f} | >= 0.8 |",
        f"| in sessions (each voice's takes as one stream): 8-way accuracy, end of take | "
        f"{ss['take_accuracy']:.3f} | >= 0.6 |",
        f"| in sessions: accuracy of speech frames after 1 s | {ss['frame_accuracy_after_1s']:.3f} | |",
        f"| in sessions: arousal correlation across takes | {ss['arousal_correlation']:.3f} | >= 0.8 |", "",
        "| recall | " + " | ".join(EMOTIONS) + " |", "|---" * (len(EMOTIONS) + 1) + "|",
        "| fresh take | " + " | ".join(f"{s['per_emotion_recall'][e]:.2f}" for e in EMOTIONS) + " |",
        "| in sessions | " + " | ".join(f"{ss['per_emotion_recall'][e]:.2f}" for e in EMOTIONS) + " |", "",
        f"| real calm read speech (Italian, {r['recordings']} recordings, {r['minutes']:.1f} min) | value | target |",
        "|---|---|---|",
        f"| neutral on top, share of speech | {r['neutral_top_share_of_speech']:.3f} | >= 0.8 |",
        f"| switches of the top per minute | {r['switches_per_minute']:.2f} | <= 2 |",
        f"| arousal's movement while speech goes on (mean absolute change per second) | "
        f"{r['arousal_change_per_second_of_speech']:.3f} | |",
        f"| louder (+{LOUDER_DB:.0f} dB) and higher (+{HIGHER_ST:.0f} st): arousal rises | "
        f"{rises['share_arousal_rises']:.3f} of recordings, mean {rises['mean_arousal_change']:+.3f} | |",
        "", f"| compute per face frame at batch 1, one core (a step serves {c['estimates_per_step']}) | ms | target |",
        "|---|---|---|",
        f"| eager | {c['eager_ms_per_frame_batch1_1core']:.3f} | |",
        f"| ONNX Runtime ({c['onnx_ms_per_step_batch1_1core']:.3f} a step) | {c['onnx_ms_per_frame_batch1_1core']:.3f} "
        "| <= 0.1 |",
        *pitch_rows(c), *against_rows(result),
        "", f"| lip-sync, {lip['utterances']} held-out TTS utterances, 58 ms, 2 steps | closure hit | false closures |",
        "|---|---|---|",
        f"| neutral | {lip['neutral']['closure_hit_rate']:.3f} | {lip['neutral']['false_closure_rate']:.3f} |",
        f"| auto (emotion from the voice) | {lip['auto']['closure_hit_rate']:.3f} | "
        f"{lip['auto']['false_closure_rate']:.3f} |",
    ]  # fmt: skip
    return "\n".join(lines)


def plot(result: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(1, 2, figsize=(13, 5), gridspec_kw={"width_ratios": [1, 1.6]})
    confusion = np.array(result["synthetic"]["confusion"], np.float64)
    confusion /= np.maximum(confusion.sum(axis=1, keepdims=True), 1)
    a.imshow(confusion, cmap="Blues", vmin=0, vmax=1)
    a.set_xticks(range(len(EMOTIONS)), EMOTIONS, rotation=45, ha="right")
    a.set_yticks(range(len(EMOTIONS)), EMOTIONS)
    a.set_xlabel("estimated (end of take)")
    a.set_ylabel("spoken")
    a.set_title(f"held-out synthetic voices: accuracy {result['synthetic']['take_accuracy']:.2f}")
    for i in range(len(EMOTIONS)):
        for j in range(len(EMOTIONS)):
            if confusion[i, j] >= 0.05:
                a.text(j, i, f"{confusion[i, j]:.2f}", ha="center", va="center", fontsize=7)
    blend = np.array(result["real"]["timeline_blend"])
    minutes = np.linspace(0, result["real"]["minutes"], len(blend))
    for k, emotion in enumerate(EMOTIONS):
        b.plot(minutes, blend[:, k], lw=1.2 if k == 0 else 0.8, label=emotion)
    b.set_ylim(0, 1)
    b.set_ylabel("weight in the estimated blend")
    b.legend(ncol=4, fontsize=8, loc="center right")
    b.set_xlabel("minutes of Italian read speech")
    b.set_title(f"real calm read speech: neutral on top {result['real']['neutral_top_share_of_speech']:.2f} "
                f"of speech, {result['real']['switches_per_minute']:.1f} switches/min")  # fmt: skip
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", type=Path, default=CHECKPOINT)
    parser.add_argument("--name", default="voice_emotion", help="result file name in benchmarks/results")
    parser.add_argument(
        "--corpus",
        type=Path,
        default=ROOT / "training" / "data" / "corpus",
        help="held-out TTS utterances for the lip-sync check (as `bench face-quality`)",
    )
    parser.add_argument("--utterances", type=int, default=60)
    parser.add_argument("--against", type=Path, help="another checkpoint whose compute is timed alternately with "
                        "this one's, for a ratio that this machine's drifting speed does not blur")  # fmt: skip
    args = parser.parse_args(argv)
    model, metadata = load_voice_emotion(args.checkpoint)
    takes, feats = held_out_takes(model)
    result = {"benchmark": "voice_emotion", "machine": machine(), "checkpoint": args.checkpoint.name,
              "checkpoint_created": metadata.get("created"), "synthetic": synthetic(model, takes, feats),
              "synthetic_sessions": synthetic(model, takes, feats, sessions=True),
              "real": real_speech(model), "lipsync": lipsync(model, args.corpus, args.utterances)}  # fmt: skip
    if args.against:
        result["compute"], result["compute_against"] = compute_against(model, load_voice_emotion(args.against)[0])
        result["against"] = args.against.name
    else:
        result["compute"] = compute(model)
    write_report(args.name, result, report(result), plot)


if __name__ == "__main__":
    main()
