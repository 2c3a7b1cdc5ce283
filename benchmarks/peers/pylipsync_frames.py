"""Runs inside the peers' environment (.venv-peers, pylipsync 0.2.1 and its pinned NumPy): pylipsync's
MFCC template match for every 60 fps frame of each recording, before its volume weighting.

    .venv-peers/bin/python benchmarks/peers/pylipsync_frames.py IN.npz OUT.npz

IN holds arrays a0, a1, ... (float32 mono, 16 kHz). OUT holds, per recording, t<i> (frames, phonemes):
the template similarities normalised to sum 1 (pylipsync's `_normalize_targets`), v<i> (frames,): the
RMS volume of each frame's window, and `phonemes`, the template names. The volume mapping and silence
rule are applied by the caller (benchmarks/real_voices.py), so that their range can be fitted once.
"""

import sys

import numpy as np
from pylipsync import PhonemeAnalyzer

RATE = 16000
FPS = 60
WINDOW_MS = 64.0  # pylipsync's default


def frames(analyzer: PhonemeAnalyzer, audio: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    # extract_phoneme_segments's windowing: centred windows, reflect-padded ends
    window = int(WINDOW_MS / 1000 * RATE)
    hop = RATE // FPS
    half = (window - hop) // 2
    padded = np.pad(audio, (half, half), mode="reflect")
    targets, volumes = [], []
    for start in range(0, audio.size, hop):
        mfcc, volume = analyzer._extract_features(padded[start : start + window], RATE)
        phonemes = analyzer._normalize_targets(analyzer._compute_phoneme_targets(mfcc))
        targets.append([p.target for p in phonemes])
        volumes.append(volume)
    return np.asarray(targets, np.float32), np.asarray(volumes, np.float32)


def main() -> None:
    source, out = sys.argv[1], sys.argv[2]
    analyzer = PhonemeAnalyzer()
    data = np.load(source)
    names = [p.name for p in analyzer._compute_phoneme_targets(np.zeros(12))]
    result = {"phonemes": np.array(names)}
    for i in range(len(data.files)):
        result[f"t{i}"], result[f"v{i}"] = frames(analyzer, data[f"a{i}"].astype(np.float32))
    np.savez(out, **result)


if __name__ == "__main__":
    main()
