"""Builds the speech corpus: sentences x TTS voices -> audio + forced-aligned phone timings.

    python -m training.corpus --out training/data/corpus --utterances 900

Writes one `<id>.npz` per utterance (int16 audio at the engine's rate, phone labels and times) and a
`manifest.json` with the voice of each utterance, whether that voice is held out, and the alignment
failures per voice. Runs in parallel processes with a progress bar.
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from emostream.runtime.audio_files import to_int16
from emostream.training.align import AlignmentError, Phone, align
from emostream.training.text import phonetically_varied_sentences
from emostream.training.tts import Voice, corpus_voices


@dataclass(frozen=True)
class Utterance:
    id: str
    text: str
    voice: Voice
    rate_hz: int
    phones: list[Phone]
    audio: np.ndarray  # int16 mono at rate_hz

    def save(self, folder: Path) -> None:
        np.savez_compressed(
            folder / f"{self.id}.npz",
            audio=self.audio,
            rate_hz=self.rate_hz,
            labels=np.array([p.label for p in self.phones]),
            starts=np.array([p.start_s for p in self.phones]),
            ends=np.array([p.end_s for p in self.phones]),
            text=self.text,
        )


def load_utterance(path: Path) -> tuple[np.ndarray, int, list[Phone]]:
    """(float32 audio, rate, phones) of a saved utterance."""
    with np.load(path) as data:
        times = zip(data["labels"], data["starts"], data["ends"], strict=True)
        phones = [Phone(str(label), float(start), float(end)) for label, start, end in times]
        return data["audio"].astype(np.float32) / 32768.0, int(data["rate_hz"]), phones


def make_utterance(job: tuple[str, str, Voice]) -> Utterance | str:
    """Synthesises and aligns one utterance; returns the failure reason instead when alignment fails."""
    uid, text, voice = job
    try:
        samples, rate = voice.synthesize(text)
        phones = align(samples, rate, text)
    except (AlignmentError, RuntimeError, subprocess.SubprocessError) as exc:
        return f"{voice.id}: {exc}"
    audio = to_int16(samples)
    return Utterance(uid, text, voice, rate, phones, audio)


def build(out: Path, n_utterances: int, seed: int = 0, workers: int = 2, only_held_out: bool = False) -> dict:
    """Synthesises and aligns `n_utterances` sentences. One in six goes to a held-out voice (all of them
    with `only_held_out`, for an evaluation set), the rest to training voices."""
    out.mkdir(parents=True, exist_ok=True)
    voices = [v for v in corpus_voices() if v.available()]
    sentences = phonetically_varied_sentences(n_utterances, seed=seed)
    rng = random.Random(seed)
    held_out = [v for v in voices if v.held_out]
    training = [v for v in voices if not v.held_out]
    jobs = []
    for i, text in enumerate(sentences):
        to_held_out = only_held_out or i % 6 == 5
        voice = held_out[(i // 6 if not only_held_out else i) % len(held_out)] if to_held_out else rng.choice(training)
        jobs.append((f"utt{i:05d}", text, voice))
    entries, failures = [], Counter()
    with ProcessPoolExecutor(max_workers=workers) as pool:
        results = pool.map(make_utterance, jobs, chunksize=4)
        for job, result in tqdm(zip(jobs, results, strict=True), total=len(jobs), desc="synthesise + align"):
            if isinstance(result, str):
                failures[job[2].id] += 1
                continue
            result.save(out)
            entries.append({
                "id": result.id, "text": result.text, "voice": asdict(result.voice), "voice_id": result.voice.id,
                "held_out": result.voice.held_out, "seconds": result.audio.size / result.rate_hz,
            })  # fmt: skip
    manifest = {
        "utterances": entries,
        "alignment_failures": dict(failures),
        "seconds_train": sum(e["seconds"] for e in entries if not e["held_out"]),
        "seconds_held_out": sum(e["seconds"] for e in entries if e["held_out"]),
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1))
    return manifest


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Synthesise and align the training corpus.")
    parser.add_argument("--out", type=Path, default=Path("training/data/corpus"))
    parser.add_argument("--utterances", type=int, default=900)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args(argv)
    m = build(args.out, args.utterances, args.seed, args.workers)
    n_fail = sum(m["alignment_failures"].values())
    print(f"{len(m['utterances'])} utterances ({m['seconds_train'] / 60:.1f} min training, "
          f"{m['seconds_held_out'] / 60:.1f} min held out); {n_fail} dropped by the aligner")  # fmt: skip


if __name__ == "__main__":
    main()
