"""The real-voice evaluation set: people's recordings that Debian packages ship, phone-aligned.

- English: the 72 words of KTuberling (`ktuberling-data`), one speaker, 44.1 kHz, the word from the file
  name.
- Italian: the telephone prompts of Asterisk (`asterisk-core-sounds-it` for the transcripts,
  `asterisk-core-sounds-it-g722` for the 16 kHz audio, decoded by ffmpeg), one speaker, spelled into
  ARPAbet by training/italian_g2p.py.

Both are aligned by pocketsphinx's English acoustic model (training/align.py); what cannot be aligned is
left out and counted. This set is for evaluation only: no training or tuning reads it. The English
Asterisk prompts (asterisk-core-sounds-en and its variants) are not part of it: they are kept aside for an
independent check. Alignments are cached under training/data/real_voices/ (keyed by file size and the
transcript), so a second run reads only the audio.

    apt-get install ffmpeg ktuberling-data asterisk-core-sounds-it asterisk-core-sounds-it-g722
"""

from __future__ import annotations

import gzip
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from emostream.runtime.audio_files import read_audio
from emostream.training.align import AlignmentError, Phone, align
from emostream.training.codecs import decode_file
from emostream.training.italian_g2p import italian_phones, italian_words

ROOT = Path(__file__).resolve().parent
CACHE = ROOT / "data" / "real_voices" / "alignments.json"
KTUBERLING_EN = Path("/usr/share/ktuberling/sounds/en")
ASTERISK_IT_AUDIO = Path("/usr/share/asterisk/sounds/it")
ASTERISK_IT_TEXT = Path("/usr/share/doc/asterisk-core-sounds-it/core-sounds-it.txt.gz")
PACKAGES = ("ffmpeg", "ktuberling-data", "asterisk-core-sounds-it", "asterisk-core-sounds-it-g722")
PAD_S = 0.25  # silence before and after each recording: the clips are cut tight to the speech
# KTuberling file names that are not the word spoken
KTUBERLING_WORDS = {"palmtree": "palm tree", "sphynx": "sphinx", "fallingstar": "falling star",
                    "moonwalker": "moon walker", "broccolli": "broccoli"}  # fmt: skip
SPELLED_FOLDERS = ("letters/", "phonetic/", "digits/")
# English words in the Italian prompts, said as in English
ENGLISH_IN_ITALIAN = frozenset({"password", "login", "beep", "ok", "internet", "fax", "mail", "e-mail"})


class MissingPackages(RuntimeError):
    """The Debian packages the set is read from are not installed."""


@dataclass(frozen=True)
class RealUtterance:
    id: str  # "en/ball", "it/vm-intro"
    language: str
    text: str  # as aligned (Italian words carry "_it")
    audio: np.ndarray  # float32 mono, silence-padded
    rate: int
    phones: list[Phone]


def sources() -> Iterator[tuple[str, str, str, Path, dict[str, list[str]] | None]]:
    """(id, language, transcript, audio file, pronunciations) of every recording of the set."""
    missing = [p for p in (KTUBERLING_EN, ASTERISK_IT_AUDIO, ASTERISK_IT_TEXT) if not p.exists()]
    if missing:
        raise MissingPackages(f"{', '.join(map(str, missing))} missing: apt-get install {' '.join(PACKAGES)}")
    for path in sorted(KTUBERLING_EN.glob("*.ogg")):
        word = path.stem.split("_", 1)[-1]  # theme prefixes: egypt_, moon_, pizzeria_, tv_
        yield f"en/{path.stem}", "en", KTUBERLING_WORDS.get(word, word), path, None
    with gzip.open(ASTERISK_IT_TEXT, "rt", encoding="utf-8-sig") as lines:
        for line in lines:
            name, _, text = line.partition(":")
            text = text.strip()
            # "[toni ascendenti]" describes a sound; "?" stands for an accented letter lost in the file
            if not text or line.startswith(";") or re.search(r"[\[\]?0-9]", text):
                continue
            if name.startswith(SPELLED_FOLDERS):  # their transcripts are the symbols, not what is said
                continue
            path = ASTERISK_IT_AUDIO / f"{name.strip()}.g722"
            if path.exists():
                words = [w if w in ENGLISH_IN_ITALIAN else f"{w}_it" for w in italian_words(text)]
                spoken = {w: italian_phones(w[:-3]) for w in words if w.endswith("_it")}
                yield f"it/{name.strip()}", "it", " ".join(words), path, spoken


def load_padded(path: Path) -> tuple[np.ndarray, int]:
    audio, rate = decode_file(str(path), "g722") if path.suffix == ".g722" else read_audio(path)
    pad = np.zeros(int(PAD_S * rate), np.float32)
    return np.concatenate([pad, audio.astype(np.float32), pad]), rate


def load_real_voices(languages: tuple[str, ...] = ("en", "it")) -> tuple[list[RealUtterance], dict[str, int]]:
    """The set, and per language how many recordings could not be aligned."""
    cache = json.loads(CACHE.read_text()) if CACHE.exists() else {}
    utterances, failed = [], dict.fromkeys(languages, 0)
    todo = [s for s in sources() if s[1] in languages]
    changed = False
    for uid, language, text, path, pronunciations in tqdm(todo, desc="real voices", unit="rec", leave=False):
        audio, rate = load_padded(path)
        key = f"{path.stat().st_size}:{text}"
        entry = cache.get(uid)
        if entry is None or entry["key"] != key:
            try:
                phones = [[p.label, p.start_s, p.end_s] for p in align(audio, rate, text, pronunciations)]
            except AlignmentError:
                phones = None
            cache[uid] = entry = {"key": key, "phones": phones}
            changed = True
        if entry["phones"] is None:
            failed[language] += 1
            continue
        phones = [Phone(label, start, end) for label, start, end in entry["phones"]]
        utterances.append(RealUtterance(uid, language, text, audio, rate, phones))
    if changed:
        CACHE.parent.mkdir(parents=True, exist_ok=True)
        CACHE.write_text(json.dumps(cache))
    return utterances, failed
