"""`emostream bench voice-emotion-ceiling`: how far whole-take statistics of the voice tell the emotions of
the synthetic takes apart, with and without pitch; what a streaming estimator could at best hope to read.

Per take (training/data/emotional, built by `emostream train voice-emotion`): the mean and spread of each
log-mel band over speech, the mean frame-to-frame change, the speech share and loudness spread; and from
runtime/pitch.py's frames, the median and spread of the voiced pitch in semitones, the median change
from frame to frame, the voiced share and the mean periodicity. Each take's statistics less its voice's
mean over all of that voice's takes (the speaker normalisation that a session's reference approximates),
or raw. A linear classifier and a small MLP are trained on the training voices' takes and read the
held-out voices' (the benchmark's 320 takes); a ridge regression gives the arousal correlation.

These are whole takes, seen at once and normalised by a perfect speaker mean: a ceiling for the
features, not a figure a causal estimator of the same features must reach.
"""

from __future__ import annotations

import argparse
import json
from concurrent.futures import ProcessPoolExecutor
from typing import Any

import numpy as np
import soundfile
import torch

from emostream.benchmarks.common import RESULTS, machine, write_result
from emostream.runtime.audio import LogMelFrontEnd
from emostream.runtime.pitch import model_rate, pitch_frames
from emostream.runtime.protocol import EMOTIONS
from emostream.training.emotional_speech import AROUSAL_VALENCE
from emostream.training.train_voice_emotion import DATA

VOICED = 0.6  # periodicity from which a pitch frame counts as voiced
SPEECH_LOG_MEL = -8.5  # mean log-mel from which a frame counts as speech


def take_statistics(path: str) -> tuple[np.ndarray, np.ndarray]:
    """(log-mel statistics, pitch statistics) of one take."""
    audio, rate = soundfile.read(path, dtype="float32")
    mel = LogMelFrontEnd(rate).offline(audio)
    loudness = mel.mean(1)
    speech = loudness > SPEECH_LOG_MEL
    if speech.sum() < 10:
        speech = loudness > np.median(loudness)
    spoken = mel[speech]
    change = np.abs(np.diff(spoken, axis=0)).mean()
    mel_stats = np.concatenate([spoken.mean(0), spoken.std(0), [change, speech.mean(), loudness[speech].std()]])
    pitch = pitch_frames(model_rate(audio, rate), mel.shape[0])
    voiced = pitch[:, 0] > VOICED
    semitones = 12 * pitch[voiced, 1] / pitch[voiced, 0] if voiced.sum() > 5 else np.zeros(6)
    pitch_stats = np.array([np.median(semitones), np.percentile(semitones, 90) - np.percentile(semitones, 10),
                            semitones.std(), voiced.mean(), np.median(np.abs(np.diff(semitones))),
                            pitch[voiced, 0].mean() if voiced.any() else 0.0])  # fmt: skip
    return mel_stats, pitch_stats


def load(split: str) -> dict[str, np.ndarray]:
    takes = json.loads((DATA / split / "manifest.json").read_text())["takes"]
    with ProcessPoolExecutor(2) as pool:
        stats = list(pool.map(take_statistics, [str(DATA / split / t["file"]) for t in takes], chunksize=16))
    return {"mel": np.stack([s[0] for s in stats]), "pitch": np.stack([s[1] for s in stats]),
            "label": np.array([EMOTIONS.index(t["emotion"]) for t in takes]),
            "voice": np.array([t["voice"] for t in takes])}  # fmt: skip


def less_voice_mean(x: np.ndarray, voice: np.ndarray) -> np.ndarray:
    out = x.copy()
    for v in set(voice):
        out[voice == v] -= x[voice == v].mean(0)
    return out


def statistics(split: dict[str, np.ndarray], features: tuple[str, ...], normalised: bool) -> np.ndarray:
    joined = np.concatenate([split[f] for f in features], axis=1)
    return less_voice_mean(joined, split["voice"]) if normalised else joined


def accuracy(train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray, test_y: np.ndarray, hidden: int) -> float:
    """Held-out accuracy of a linear classifier (hidden 0) or an MLP, full-batch AdamW, fixed seed."""
    mean, std = train_x.mean(0), train_x.std(0) + 1e-6
    a, b = torch.tensor((train_x - mean) / std, dtype=torch.float32), torch.tensor(train_y)
    torch.manual_seed(0)
    model: torch.nn.Module = torch.nn.Linear(a.shape[1], len(EMOTIONS))
    if hidden:
        model = torch.nn.Sequential(torch.nn.Linear(a.shape[1], hidden), torch.nn.GELU(), torch.nn.Dropout(0.3),
                                    torch.nn.Linear(hidden, len(EMOTIONS)))  # fmt: skip
    optimiser = torch.optim.AdamW(model.parameters(), 1e-2, weight_decay=1e-3)
    for _ in range(3000):
        loss = torch.nn.functional.cross_entropy(model(a), b)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    with torch.no_grad():
        read = model.eval()(torch.tensor((test_x - mean) / std, dtype=torch.float32)).argmax(1).numpy()
    return float((read == test_y).mean())


def arousal_correlation(train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray, test_y: np.ndarray) -> float:
    arousal = np.array([AROUSAL_VALENCE[e][0] for e in EMOTIONS])
    mean, std = train_x.mean(0), train_x.std(0) + 1e-6
    a = np.c_[(train_x - mean) / std, np.ones(len(train_x))]
    t = np.c_[(test_x - mean) / std, np.ones(len(test_x))]
    weights = np.linalg.solve(a.T @ a + 10 * np.eye(a.shape[1]), a.T @ arousal[train_y])
    return float(np.corrcoef(t @ weights, arousal[test_y])[0, 1])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--name", default="voice_emotion_ceiling", help="result file name in benchmarks/results")
    args = parser.parse_args(argv)
    train, test = load("train"), load("held_out")
    rows: list[dict[str, Any]] = []
    for normalised in (False, True):
        for features in (("mel",), ("pitch",), ("mel", "pitch")):
            a, b = (statistics(split, features, normalised) for split in (train, test))
            y, z = train["label"], test["label"]
            rows.append({"features": "+".join(features), "less_voice_mean": normalised,
                         "linear": accuracy(a, y, b, z, 0), "mlp": accuracy(a, y, b, z, 64),
                         "arousal_correlation": arousal_correlation(a, y, b, z)})  # fmt: skip
    result = {"benchmark": "voice_emotion_ceiling", "machine": machine(), "train_takes": len(train["label"]),
              "held_out_takes": len(test["label"]), "rows": rows}  # fmt: skip
    lines = ["# Voice emotion: what whole-take statistics can tell apart", "",
             f"{result['machine']['cpu']}, {result['machine']['date']}; {result['train_takes']} training takes, "
             f"{result['held_out_takes']} held-out takes (3 voices); 8-way accuracy on the held-out takes", "",
             "| statistics | less the voice's mean | linear | MLP | arousal correlation (ridge) |",
             "|---|---|---|---|---|"]  # fmt: skip
    for r in rows:
        lines.append(f"| {r['features']} | {'yes' if r['less_voice_mean'] else 'no'} | {r['linear']:.3f} | "
                     f"{r['mlp']:.3f} | {r['arousal_correlation']:.3f} |")  # fmt: skip
    markdown = "\n".join(lines)
    print(markdown)
    write_result(args.name, result)
    (RESULTS / f"{args.name}.md").write_text(markdown + "\n")


if __name__ == "__main__":
    main()
