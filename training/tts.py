"""Speech from the TTS engines Debian ships: espeak-ng (accents x voice variants), flite and festival.

Each `Voice` is one engine, voice and prosody setting; `VOICES` lists the corpus voices and marks the ones
held out entirely for evaluation (never seen in training).
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile

ENGINES = {"espeak": "espeak-ng", "flite": "flite", "festival": "text2wave"}
DEBIAN_PACKAGES = ("espeak-ng", "flite", "festival", "festvox-kallpc16k", "festvox-kdlpc16k", "festvox-us-slt-hts")


@dataclass(frozen=True)
class Voice:
    engine: str  # "espeak", "flite" or "festival"
    name: str  # the engine's voice name (espeak: "accent+variant")
    speed: float = 1.0  # speaking rate relative to the voice's default
    pitch: int = 50  # espeak only: 0-99
    held_out: bool = False  # kept out of training, used for evaluation only

    @property
    def id(self) -> str:
        return f"{self.engine}:{self.name}:{self.speed:.2f}:{self.pitch}"

    def available(self) -> bool:
        return shutil.which(ENGINES[self.engine]) is not None

    def synthesize(self, text: str) -> tuple[np.ndarray, int]:
        """Speaks `text`; returns float32 mono samples and their rate. Raises RuntimeError on failure."""
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "speech.wav"
            if self.engine == "espeak":
                wpm = int(165 * self.speed)
                cmd = ["espeak-ng", "-v", self.name, "-s", str(wpm), "-p", str(self.pitch), "-w", str(out), text]
                subprocess.run(cmd, check=True, capture_output=True, timeout=60)
            elif self.engine == "flite":
                stretch = f"duration_stretch={1.0 / self.speed:.3f}"
                cmd = ["flite", "-voice", self.name, "--setf", stretch, "-t", text, "-o", str(out)]
                subprocess.run(cmd, check=True, capture_output=True, timeout=60)
            else:
                script = [
                    "text2wave", "-o", str(out), "-eval", f"(voice_{self.name})",
                    "-eval", f"(Parameter.set 'Duration_Stretch {1.0 / self.speed:.3f})",
                ]  # fmt: skip
                subprocess.run(script, input=text.encode(), check=True, capture_output=True, timeout=120)
            samples, rate = soundfile.read(out, dtype="float32", always_2d=True)
        if samples.shape[0] < rate // 10:
            raise RuntimeError(f"{self.id} produced no speech for {text!r}")
        return samples.mean(axis=1), int(rate)


_ESPEAK_ACCENTS = ("en-us", "en-gb", "en-gb-x-rp", "en-gb-x-gbclan", "en-gb-x-gbcwmd", "en-us-nyc", "en-029")
_ESPEAK_VARIANTS = ("m1", "m2", "m3", "m4", "m5", "m6", "m7", "f1", "f2", "f3", "f4", "f5", "klatt", "klatt4", "Andy")


def corpus_voices() -> list[Voice]:
    """The training voices and the held-out voices, with prosody spread deterministically."""
    voices: list[Voice] = []
    for i, variant in enumerate(_ESPEAK_VARIANTS):
        for j, accent in enumerate(_ESPEAK_ACCENTS):
            if (i + j) % 3:  # a spread of accent x variant pairs, not all 105
                continue
            speed = (0.85, 1.0, 1.15)[(i + 2 * j) % 3]
            voices.append(Voice("espeak", f"{accent}+{variant}", speed, pitch=30 + (7 * i + 11 * j) % 45))
    for name in ("kal", "kal16", "rms", "slt"):
        voices += [Voice("flite", name, 0.9), Voice("flite", name, 1.1)]
    for name in ("kal_diphone", "ked_diphone"):
        voices += [Voice("festival", name, 0.9), Voice("festival", name, 1.1)]
    voices += [  # held out: an unseen engine/speaker (HTS slt), an unseen flite voice, unseen espeak pairs
        Voice("festival", "cmu_us_slt_arctic_hts", 1.0, held_out=True),
        Voice("flite", "awb", 1.0, held_out=True),
        Voice("espeak", "en-gb-scotland+f3", 1.0, pitch=60, held_out=True),
        Voice("espeak", "en-us+f4", 0.95, pitch=45, held_out=True),
    ]
    return voices
