"""Lip-sync on real human voices, beside held-out TTS voices, with a uLipSync-style peer on the same judge.

    python -m emostream.benchmarks.real_voices [--steps 1,2,4] [--conditions 48k,16k,8k,g711-mulaw,...]

The real-voice set (training/real_voices.py: KTuberling's English words, Asterisk's Italian prompts, phone-
aligned by pocketsphinx) is played at 48, 16 and 8 kHz (resampled) and through real codecs
(training/codecs.py: G.711, GSM, G.722, Opus, MP3, by ffmpeg); the 60 held-out TTS utterances of `bench
face-quality` at 16 and 8 kHz. Each is animated by the shipped face model at the default lookahead (58 ms)
with 1, 2 and 4 sampler steps (and, where its closure head hears the telephone band, with 2 steps and that
head hearing the whole band instead: the same weights, for comparison), and by pylipsync (a Python port of
uLipSync, the MFCC lip sync VTubers use), and judged alike (training/metrics.py): bilabial closure hit (the
lips close within each p, b, m) and false closures (the lips close in the middle of an open vowel), lip-
reading accuracy (the viseme classifier of `bench face-quality`, trained on teacher motion of TTS training
voices, reading the mouth), and for the model the blink lengths (runs of closed eyes) and, per emotion at
full intensity (16 kHz, 2 steps), how much closure and jaw range each emotion costs against neutral.

pylipsync as a mouth: each 60 fps frame's template weights (aa, ee, ih, oh, ou, silence) give a mouth
gap, sum of weight x openness (aa 1.0, oh 0.7, ee 0.5, ih 0.35, ou 0.3: how far each viseme opens the
jaw on a VRM face), times pylipsync's volume factor, clip((log10 rms - low) / (high - low), 0, 1), and
zero where silence holds 0.3 of the weight (its own rule). Each recording is first brought to one speech
level (`calibrated`), as a user fits uLipSync's range to a microphone; the volume range (low, high) and a
gain are then fitted on TTS training voices (never on the sets judged) to the best closure hit minus false closures,
at 16 and 8 kHz together. It runs in its own environment (.venv-peers: pylipsync pins an older NumPy),
made on first use.

Writes benchmarks/results/real_voices.{json,md,png}.
"""

from __future__ import annotations

import argparse
import itertools
import math
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from emostream.benchmarks.common import emotion_names, machine, write_report
from emostream.benchmarks.face_quality import (
    Utterance,
    generate,
    lipreading_hits,
    load_set,
    train_lipreader,
    viseme_truth,
)
from emostream.runtime.audio import LogMelFrontEnd, Resampler
from emostream.runtime.controls import emotion_vector, lookahead_from_ms
from emostream.runtime.models.face import FaceGenerator, load_checkpoint, with_closure_band
from emostream.runtime.protocol import EMOTIONS
from emostream.runtime.rigs import FACE_CHANNELS, FACE_FPS
from emostream.training.align import Phone
from emostream.training.codecs import CODECS, through_codec
from emostream.training.corpus import build
from emostream.training.face_data import supported_rate
from emostream.training.metrics import blink_durations_s, closure_rates
from emostream.training.real_voices import load_real_voices

ROOT = Path(__file__).resolve().parent.parent
PEERS_VENV = ROOT / ".venv-peers"
PEER_SCRIPT = Path(__file__).parent / "peers" / "pylipsync_frames.py"
PYLIPSYNC = "pylipsync==0.2.1"
RATES = {"48k": 48000, "16k": 16000, "8k": 8000}
CONDITIONS = ("48k", "16k", "8k", "g711-mulaw", "gsm", "g722", "opus-12k", "mp3-32k")
TTS_CONDITIONS = ("16k", "8k")
OPENNESS = {"aa": 1.0, "oh": 0.7, "ee": 0.5, "ih": 0.35, "ou": 0.3, "silence": 0.0}
PEER_LEVEL_DB = -20.0  # dBFS of the loud frames after calibration
SILENCE_SHARE = 0.3  # pylipsync's silence_threshold
JAW = FACE_CHANNELS.index("jawOpen")
FULL_BAND = "model, 2 steps, closure on the whole band"  # the row without the closure's telephone-band pass


@dataclass(frozen=True)
class Clip:
    """A recording as judged: its audio after a condition, and the phones of the original."""

    language: str
    audio: np.ndarray
    rate: int
    phones: list[Phone]


def condition(audio: np.ndarray, rate: int, name: str) -> tuple[np.ndarray, int]:
    if name in RATES:
        target = RATES[name]
        if target == rate:
            return audio.astype(np.float32), rate
        return Resampler(rate, target).offline(audio.astype(np.float64)).astype(np.float32), target
    return through_codec(audio, rate, CODECS[name])


def judge(faces: list[np.ndarray], clips: list[Clip]) -> dict[str, dict[str, float]]:
    """Closure hit and false closures per language and over all, each bilabial and vowel weighted alike."""
    tallies: dict[str, list[float]] = {}
    for face, clip in zip(faces, clips, strict=True):
        hit, false, n_bilabial, n_vowel = closure_rates(face, clip.phones)
        for key in (clip.language, "all"):
            t = tallies.setdefault(key, [0.0, 0, 0.0, 0])
            if n_bilabial:
                t[0] += hit * n_bilabial
                t[1] += n_bilabial
            if n_vowel:
                t[2] += false * n_vowel
                t[3] += n_vowel
    return {key: {"closure_hit_rate": t[0] / max(t[1], 1), "false_closure_rate": t[2] / max(t[3], 1),
                  "bilabials": t[1], "open_vowels": t[3]} for key, t in tallies.items()}  # fmt: skip


def readings(lipreader: torch.nn.Module, faces: list[np.ndarray], clips: list[Clip],
             truths: list[np.ndarray]) -> dict:  # fmt: skip
    """Lip-reading accuracy per language and over all, and the blink lengths (the eyes, for the model)."""
    tallies: dict[str, list[int]] = {}
    for face, clip, truth in zip(faces, clips, truths, strict=True):
        hits, frames = lipreading_hits(lipreader, face, truth)
        for key in (clip.language, "all"):
            t = tallies.setdefault(key, [0, 0])
            t[0] += hits
            t[1] += frames
    blinks = np.concatenate([blink_durations_s(f) for f in faces])
    minutes = sum(f.shape[0] for f in faces) / FACE_FPS / 60
    return {"lipreading": {key: h / n for key, (h, n) in tallies.items()}, "blinks_per_minute": blinks.size / minutes,
            "blink_p95_ms": float(np.percentile(blinks, 95) * 1000) if blinks.size else 0.0,
            "blink_max_ms": float(blinks.max() * 1000) if blinks.size else 0.0}  # fmt: skip


def model_inputs(clips: list[Clip]) -> list[Utterance]:
    """The clips as the model hears them: at a rate the front-end takes, with their log-mel features."""
    utterances = []
    for clip in clips:
        audio, rate = supported_rate(clip.audio, clip.rate)
        utterances.append(Utterance(audio, rate, clip.phones, LogMelFrontEnd(rate).offline(audio)))
    return utterances


def model_faces(generator: FaceGenerator, utterances: list[Utterance], seed: int = 1,
                emotion: str = "neutral") -> list[np.ndarray]:  # fmt: skip
    faces: list[np.ndarray] = []
    for start in range(0, len(utterances), 64):  # batches of similar cost
        faces += generate(generator, utterances[start : start + 64], emotion_vector(emotion, 1.0), seed)
    return faces


def emotion_rows(generator: FaceGenerator, clips: list[Clip], emotions: tuple[str, ...]) -> dict[str, dict]:
    """Per emotion at full intensity: the judge's figures and the jaw's 5-95% range, both against neutral."""
    heard = model_inputs(clips)
    rows = {}
    for emotion in ("neutral", *[e for e in emotions if e != "neutral"]):
        faces = model_faces(generator, heard, emotion=emotion)
        jaw = np.concatenate([f[:, JAW] for f in faces])
        rows[emotion] = {**judge(faces, clips), "jaw_range": float(np.percentile(jaw, 95) - np.percentile(jaw, 5))}
        judged = rows[emotion]["all"]
        print(f"real 16k, {emotion:10s} {judged['closure_hit_rate']:.3f} / {judged['false_closure_rate']:.3f}, "
              f"jaw range {rows[emotion]['jaw_range']:.3f}", flush=True)  # fmt: skip
    neutral = rows["neutral"]
    for row in rows.values():
        row["closure_drop"] = neutral["all"]["closure_hit_rate"] - row["all"]["closure_hit_rate"]
        row["jaw_range_vs_neutral"] = row["jaw_range"] / neutral["jaw_range"]
    return rows


# -- the peer -------------------------------------------------------------------------------------------


def peer_environment() -> Path:
    python = PEERS_VENV / "bin" / "python"
    if not python.exists():
        print(f"making {PEERS_VENV} for the peer ({PYLIPSYNC})", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(PEERS_VENV)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "--quiet", PYLIPSYNC], check=True)
    return python


def calibrated(audio: np.ndarray) -> np.ndarray:
    """The recording at a set speech level: what a uLipSync user does by fitting the volume range to the
    microphone. The level is the 95th percentile of 20 ms frame RMS over the whole clip (which a live
    peer could not know in advance: a calibration in its favour)."""
    frames = audio[: audio.size // 320 * 320].reshape(-1, 320)
    level = np.percentile(np.sqrt((frames**2).mean(1)), 95)
    return audio * (10 ** (PEER_LEVEL_DB / 20) / max(level, 1e-6))


def peer_frames(clips: list[Clip]) -> list[tuple[np.ndarray, np.ndarray]]:
    """pylipsync's per-frame template weights (frames, 6) and window volumes (frames,) of each clip."""
    python = peer_environment()
    with tempfile.TemporaryDirectory() as tmp:
        arrays = {}
        for i, clip in enumerate(clips):
            # pylipsync reads 16 kHz and only ever downsamples: lower rates are brought up first
            audio = clip.audio.astype(np.float64)
            if clip.rate != 16000:
                audio = Resampler(clip.rate, 16000).offline(audio)
            arrays[f"a{i}"] = calibrated(audio).astype(np.float32)
        np.savez(Path(tmp) / "in.npz", **arrays)
        subprocess.run([str(python), str(PEER_SCRIPT), f"{tmp}/in.npz", f"{tmp}/out.npz"], check=True)
        out = np.load(Path(tmp) / "out.npz")
        order = [OPENNESS[str(name)] for name in out["phonemes"]]
        silence = [str(name) for name in out["phonemes"]].index("silence")
        result = []
        for i in range(len(clips)):
            targets, volumes = out[f"t{i}"], out[f"v{i}"]
            openness = targets @ np.asarray(order, np.float32)
            openness[targets[:, silence] >= SILENCE_SHARE] = 0.0
            result.append((openness, volumes))
        return result


def peer_faces(frames: list[tuple[np.ndarray, np.ndarray]], clips: list[Clip], low: float, high: float,
               gain: float) -> list[np.ndarray]:  # fmt: skip
    """A face per clip whose jawOpen is pylipsync's mouth gap (the judge's lip gap is then that value)."""
    faces = []
    for (openness, volumes), clip in zip(frames, clips, strict=True):
        n = math.ceil(clip.audio.size / clip.rate * FACE_FPS)
        loud = np.clip((np.log10(np.maximum(volumes, 1e-10)) - low) / (high - low), 0.0, 1.0)
        face = np.zeros((n, len(FACE_CHANNELS)), np.float32)
        gap = (gain * loud * openness)[:n]
        face[: gap.size, JAW] = gap
        faces.append(face)
    return faces


def fit_peer(clips: list[Clip]) -> dict[str, float]:
    """The volume range and gain with the best closure hit minus false closures on `clips`."""
    frames = peer_frames(clips)
    best: dict[str, float] = {}
    lows = np.arange(-4.0, -0.99, 0.25)
    for low, span, gain in itertools.product(lows, (0.5, 1.0, 1.5, 2.0), (0.25, 0.5, 1.0, 2.0)):
        scores = judge(peer_faces(frames, clips, low, low + span, gain), clips)["all"]
        score = scores["closure_hit_rate"] - scores["false_closure_rate"]
        if not best or score > best["score"]:
            best = {"low": float(low), "high": float(low + span), "gain": gain, "score": score}
    return best


# -- the run --------------------------------------------------------------------------------------------


def tts_clips(corpus: Path, held_out: bool, limit: int) -> list[Clip]:
    if not (corpus / "manifest.json").exists():
        build(corpus, limit, seed=7, only_held_out=held_out)
    return [Clip("tts", u.audio, u.rate, u.phones) for u in load_set(corpus, held_out, limit)]


def run(checkpoint: Path, corpus: Path, steps: tuple[int, ...], conditions: tuple[str, ...],
        emotions: tuple[str, ...] = EMOTIONS) -> dict:  # fmt: skip
    network, metadata = load_checkpoint(checkpoint)
    lookahead = lookahead_from_ms(60.0)
    generators = {f"model, {s} step{'s' if s > 1 else ''}": FaceGenerator(network, lookahead=lookahead, n_steps=s)
                  for s in steps}  # fmt: skip
    if network.config.closure_telephone_band:  # the same weights, the closure head hearing the whole band
        full_band = with_closure_band(network, telephone=False)
        generators[FULL_BAND] = FaceGenerator(full_band, lookahead=lookahead, n_steps=2)
    real, unaligned = load_real_voices()
    real_clips = [Clip(u.language, u.audio, u.rate, u.phones) for u in real]
    tts = tts_clips(corpus, True, 60)
    fit_on = tts_clips(corpus, False, 60)
    fit_clips = [Clip("tts", *condition(c.audio, c.rate, name), c.phones) for c in fit_on for name in ("16k", "8k")]
    peer = fit_peer(fit_clips)
    lipreader = train_lipreader(load_set(corpus, False, 150))
    print(f"pylipsync fitted on {len(fit_on)} TTS training utterances: {peer}", flush=True)
    rows = []
    sets = [("real", name, real_clips) for name in conditions] + [("tts", name, tts) for name in TTS_CONDITIONS]
    for set_name, name, clips in sets:
        judged = [Clip(c.language, *condition(c.audio, c.rate, name), c.phones) for c in clips]
        heard, truths = model_inputs(judged), [viseme_truth(c) for c in judged]
        systems = {system: model_faces(g, heard) for system, g in generators.items()}
        systems["pylipsync"] = peer_faces(peer_frames(judged), judged, peer["low"], peer["high"], peer["gain"])
        for system, faces in systems.items():
            row = {"set": set_name, "condition": name, "system": system, **judge(faces, judged),
                   **readings(lipreader, faces, judged, truths)}  # fmt: skip
            rows.append(row)
            cells = ", ".join(f"{k} {v['closure_hit_rate']:.3f}/{v['false_closure_rate']:.3f}" for k, v in row.items()
                              if isinstance(v, dict) and "closure_hit_rate" in v)  # fmt: skip
            print(f"{set_name:4s} {name:10s} {system:16s} {cells}, lip-reading {row['lipreading']['all']:.3f}, "
                  f"blink p95 {row['blink_p95_ms']:.0f} ms", flush=True)  # fmt: skip
    emotion_generator = FaceGenerator(network, lookahead=lookahead_from_ms(60.0), n_steps=2).eval()
    at_16k = [Clip(c.language, *condition(c.audio, c.rate, "16k"), c.phones) for c in real_clips]
    by_emotion = emotion_rows(emotion_generator, at_16k, emotions) if emotions else {}
    return {
        "benchmark": "real_voices", "machine": machine(), "checkpoint": checkpoint.name, "emotions": by_emotion,
        "model_created": metadata.get("created"), "lookahead_ms": emotion_generator.lookahead_ms,
        "real_recordings": {lang: sum(u.language == lang for u in real) for lang in ("en", "it")},
        "unaligned": unaligned, "peer_fit": peer, "rows": rows,
    }  # fmt: skip


def markdown(result: dict) -> str:
    m = result["machine"]
    counts = result["real_recordings"]
    left_out = sum(result["unaligned"].values())
    lines = [f"Lip-sync on real voices ({counts['en']} English words, {counts['it']} Italian prompts; "
             f"{left_out} recordings could not be aligned and were left out) and on 60 held-out TTS utterances; "
             f"{m['cpu']}, {m['date']}; checkpoint {result['checkpoint']}, lookahead "
             f"{result['lookahead_ms']:.1f} ms. Cells: closure hit / false closures.", ""]  # fmt: skip
    lines += ["| set | audio | system | all | English | Italian | lip-reading | blink p95 (ms) |",
              "|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for r in result["rows"]:
        def cell(key: str, r: dict = r) -> str:
            v = r.get(key)
            return f"{v['closure_hit_rate']:.3f} / {v['false_closure_rate']:.3f}" if v else ""

        blink = f"{r['blink_p95_ms']:.0f}" if r["system"] != "pylipsync" else ""
        lines.append(f"| {r['set']} | {r['condition']} | {r['system']} | {cell('all')} | {cell('en')} | {cell('it')} | "
                     f"{r['lipreading']['all']:.3f} | {blink} |")  # fmt: skip
    if result.get("emotions"):
        lines += ["", "Per emotion at full intensity (real voices, 16 kHz, model with 2 steps):", "",
                  "| emotion | all | closure drop vs neutral | jaw range (5-95%) / neutral |", "|---|---|---|---|"]
        for emotion, r in result["emotions"].items():
            lines.append(f"| {emotion} | {r['all']['closure_hit_rate']:.3f} / {r['all']['false_closure_rate']:.3f} | "
                         f"{r['closure_drop']:+.3f} | {r['jaw_range_vs_neutral']:.2f} |")  # fmt: skip
    p = result["peer_fit"]
    lines += ["", f"pylipsync's volume range fitted on TTS training voices: log10 rms {p['low']} to {p['high']}, "
              f"gain {p['gain']}."]  # fmt: skip
    return "\n".join(lines)


def plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in result["rows"] if r["set"] == "real"]
    conditions = list(dict.fromkeys(r["condition"] for r in rows))
    systems = list(dict.fromkeys(r["system"] for r in rows))
    fig, (hit_ax, false_ax) = plt.subplots(1, 2, figsize=(13, 4.2))
    x = np.arange(len(conditions))
    width = 0.8 / len(systems)
    for i, system in enumerate(systems):
        by = {r["condition"]: r["all"] for r in rows if r["system"] == system}
        hit_ax.bar(x + i * width, [by[c]["closure_hit_rate"] for c in conditions], width, label=system)
        false_ax.bar(x + i * width, [by[c]["false_closure_rate"] for c in conditions], width, label=system)
    hit_ax.axhline(0.92, color="gray", linestyle=":", label="target (0.92 hit, 0.05 false)")
    false_ax.axhline(0.05, color="gray", linestyle=":")
    for ax, title in ((hit_ax, "bilabial closure hit (higher is better)"),
                      (false_ax, "false closures in open vowels (lower is better)")):  # fmt: skip
        ax.set_xticks(x + 0.4 - width / 2, conditions, rotation=30, fontsize=8)
        ax.set_title(title)
    handles, labels = hit_ax.get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=len(labels), fontsize=8)
    fig.suptitle("real voices (English and Italian), face model against pylipsync")
    fig.tight_layout(rect=(0, 0.07, 1, 1))
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", type=Path, default=ROOT / "runtime" / "assets" / "face.pt")
    parser.add_argument("--corpus", type=Path, default=ROOT / "training" / "data" / "corpus")
    parser.add_argument("--steps", default="1,2,4", help="sampler steps of the model rows")
    parser.add_argument("--conditions", default=",".join(CONDITIONS), help=f"of {', '.join(CONDITIONS)}")
    parser.add_argument("--emotions", default=",".join(EMOTIONS), help="per-emotion rows (real, 16 kHz); '' for none")
    parser.add_argument("--name", default="real_voices")
    args = parser.parse_args(argv)
    torch.set_num_threads(2)
    steps = tuple(int(s) for s in args.steps.split(","))
    conditions = tuple(c for c in args.conditions.split(",") if c)
    unknown = [c for c in conditions if c not in CONDITIONS]
    if unknown:
        parser.error(f"unknown condition {unknown[0]!r}: choose from {', '.join(CONDITIONS)}")
    result = run(args.checkpoint, args.corpus, steps, conditions, emotion_names(parser, args.emotions))
    write_report(args.name, result, markdown(result), plot)


if __name__ == "__main__":
    main()
