"""People's recordings that Debian packages ship, phone-aligned: evaluation, training and validation sets.

Evaluation (`EVALUATION`; read by the real-voice benchmark only, never by training or tuning):
- English: the 72 words of KTuberling (`ktuberling-data`), one speaker, 44.1 kHz, the word from the file
  name.
- Italian: the telephone prompts of Asterisk (`asterisk-core-sounds-it` for the transcripts,
  `asterisk-core-sounds-it-g722` for the 16 kHz audio, decoded by ffmpeg), one speaker, spelled into
  ARPAbet by training/italian_g2p.py.

Training (`TRAINING`; read by `emostream train face` only):
- Spanish: Asterisk's Spanish prompts (`asterisk-core-sounds-es`, `-es-g722`), another speaker, spelled by
  training/spanish_g2p.py. Same recording chain as the Italian set, so the English words are the check
  that what the model learns from them is voices, not that chain.
- Russian (`CLOSURE_TRAINING`; read by the audio-only closure head's stage only, training/train_face.py
  `closure_examples`): Asterisk's Russian prompts (`asterisk-core-sounds-ru`, `-ru-g722`), a third
  speaker, spelled by training/russian_g2p.py.

Validation (`VALIDATION`; read by benchmarks/closure_offset.py only, where the lip heads' settings are
chosen: the opening head's quantile, the closure head's logit offset):
- French: Asterisk's French prompts (`asterisk-core-sounds-fr`, `-fr-g722`), a fourth speaker, spelled by
  training/french_g2p.py.

All are aligned by pocketsphinx's English acoustic model (training/align.py); what cannot be aligned is
left out and counted. The English Asterisk prompts (asterisk-core-sounds-en and its variants) are read by
nothing: they are kept aside for an independent check. Alignments are cached under
training/data/real_voices/ (keyed by file size and the transcript), so a second run reads only the audio.

    apt-get install ffmpeg ktuberling-data asterisk-core-sounds-it asterisk-core-sounds-it-g722 \
        asterisk-core-sounds-es asterisk-core-sounds-es-g722 asterisk-core-sounds-ru asterisk-core-sounds-ru-g722 \
        asterisk-core-sounds-fr asterisk-core-sounds-fr-g722
"""

from __future__ import annotations

import gzip
import json
import re
import unicodedata
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from emostream.runtime.audio_files import read_audio
from emostream.training.align import AlignmentError, Phone, align
from emostream.training.codecs import decode_file
from emostream.training.french_g2p import french_phones, french_words
from emostream.training.italian_g2p import italian_phones, italian_words
from emostream.training.russian_g2p import latin_key, russian_phones, russian_words
from emostream.training.spanish_g2p import spanish_phones, spanish_words

ROOT = Path(__file__).resolve().parent
CACHE = ROOT / "data" / "real_voices" / "alignments.json"
KTUBERLING_EN = Path("/usr/share/ktuberling/sounds/en")
EVALUATION = ("en", "it")
TRAINING = ("es",)
CLOSURE_TRAINING = ("ru",)  # heard by the audio-only closure head besides TRAINING
VALIDATION = ("fr",)  # where the closure head's operating point is chosen (benchmarks/closure_offset.py)
PACKAGES = {
    "en": ("ktuberling-data",),
    "it": ("ffmpeg", "asterisk-core-sounds-it", "asterisk-core-sounds-it-g722"),
    "es": ("ffmpeg", "asterisk-core-sounds-es", "asterisk-core-sounds-es-g722"),
    "ru": ("ffmpeg", "asterisk-core-sounds-ru", "asterisk-core-sounds-ru-g722"),
    "fr": ("ffmpeg", "asterisk-core-sounds-fr", "asterisk-core-sounds-fr-g722"),
}
PAD_S = 0.25  # silence before and after each recording: the clips are cut tight to the speech
MAX_PIECE_S = 5.0  # training pieces no longer than the TTS corpus's longest utterance
MIN_PIECE_S = 0.5
# KTuberling file names that are not the word spoken
KTUBERLING_WORDS = {"palmtree": "palm tree", "sphynx": "sphinx", "fallingstar": "falling star",
                    "moonwalker": "moon walker", "broccolli": "broccoli"}  # fmt: skip
SPELLED_FOLDERS = ("letters/", "phonetic/", "digits/")
# English words in the prompts, said as in English
ENGLISH_WORDS = frozenset({"password", "login", "beep", "ok", "internet", "fax", "mail", "e-mail"})


def ascii_word(word: str) -> str:
    """A dictionary key pocketsphinx reads: accents off (número -> numero)."""
    return "".join(c for c in unicodedata.normalize("NFD", word) if c.isascii())


@dataclass(frozen=True)
class Spelling:
    words: Callable[[str], list[str]]  # transcript -> normalised words
    phones: Callable[[str], list[str]]  # one word -> ARPAbet; ValueError where it cannot be spelled
    key: Callable[[str], str] = ascii_word  # one word -> its ASCII name in the aligner's dictionary


SPELLINGS = {
    "it": Spelling(italian_words, italian_phones),
    "es": Spelling(spanish_words, spanish_phones),
    "ru": Spelling(russian_words, russian_phones, latin_key),
    "fr": Spelling(french_words, french_phones),
}


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


def asterisk_text(language: str) -> Path:
    return Path(f"/usr/share/doc/asterisk-core-sounds-{language}/core-sounds-{language}.txt.gz")


def asterisk_audio(language: str) -> Path:
    return Path(f"/usr/share/asterisk/sounds/{language}")


def asterisk_sources(language: str) -> Iterator[tuple[str, str, str, Path, dict[str, list[str]] | None]]:
    spelling = SPELLINGS[language]
    with gzip.open(asterisk_text(language), "rt", encoding="utf-8-sig") as lines:
        for line in lines:
            name, _, text = line.partition(":")
            name, text = name.strip(), text.strip()
            # "[toni ascendenti]" describes a sound; "?" stands for an accented letter lost in the file
            if not text or line.startswith(";") or re.search(r"[\[\]?0-9]", text.replace("¿", "")):
                continue
            if name.startswith(SPELLED_FOLDERS):  # their transcripts are the symbols, not what is said
                continue
            path = asterisk_audio(language) / f"{name}.g722"
            if not path.exists():
                continue
            spoken: dict[str, list[str]] = {}
            words = []
            try:
                for word in spelling.words(text):
                    if word in ENGLISH_WORDS:
                        words.append(word)
                    else:  # "_it", "_es": not the English word spelled the same
                        key = f"{spelling.key(word)}_{language}"
                        spoken.setdefault(key, spelling.phones(word))
                        words.append(key)
            except ValueError:  # a word the spelling rules cannot read (Latin letters in a Russian prompt)
                continue
            yield f"{language}/{name}", language, " ".join(words), path, spoken


def sources(languages: tuple[str, ...]) -> Iterator[tuple[str, str, str, Path, dict[str, list[str]] | None]]:
    """(id, language, transcript, audio file, pronunciations) of every recording in `languages`."""
    needed = {"en": [KTUBERLING_EN]}
    missing = [p for lang in languages for p in needed.get(lang, [asterisk_audio(lang), asterisk_text(lang)])
               if not p.exists()]  # fmt: skip
    if missing:
        packages = sorted({p for lang in languages for p in PACKAGES[lang]})
        raise MissingPackages(f"{', '.join(map(str, missing))} missing: apt-get install {' '.join(packages)}")
    for language in languages:
        if language == "en":
            for path in sorted(KTUBERLING_EN.glob("*.ogg")):
                word = path.stem.split("_", 1)[-1]  # theme prefixes: egypt_, moon_, pizzeria_, tv_
                yield f"en/{path.stem}", "en", KTUBERLING_WORDS.get(word, word), path, None
        else:
            yield from asterisk_sources(language)


def split_at_pauses(utterance: RealUtterance, max_s: float = MAX_PIECE_S) -> list[RealUtterance]:
    """A long recording as pieces of at most `max_s` (as long as the TTS corpus's utterances), cut in the
    middle of its pauses (SIL of at least 80 ms), each with its phones re-timed; a stretch of speech with
    no pause inside `max_s` stays whole, and pieces under MIN_PIECE_S (a pause's tail) are dropped."""
    duration = utterance.audio.size / utterance.rate
    if duration <= max_s:
        return [utterance]
    cuts = [(p.start_s + p.end_s) / 2 for p in utterance.phones if p.label == "SIL" and p.end_s - p.start_s >= 0.08]
    cuts = [c for c in cuts if 0 < c < duration] + [duration]
    bounds, start = [], 0.0
    while start < duration:
        fitting = [c for c in cuts if start < c <= start + max_s]
        end = fitting[-1] if fitting else next(c for c in cuts if c > start)
        bounds.append((start, end))
        start = end
    pieces = []
    for k, (a, b) in enumerate(bounds):
        if b - a < MIN_PIECE_S:  # the tail of a pause
            continue
        phones = [Phone(p.label, max(p.start_s, a) - a, min(p.end_s, b) - a) for p in utterance.phones
                  if p.end_s > a and p.start_s < b]  # fmt: skip
        audio = utterance.audio[int(a * utterance.rate) : int(b * utterance.rate)]
        pieces.append(RealUtterance(f"{utterance.id}#{k}", utterance.language, utterance.text, audio, utterance.rate,
                                    phones))  # fmt: skip
    return pieces


def load_padded(path: Path) -> tuple[np.ndarray, int]:
    audio, rate = decode_file(str(path), "g722") if path.suffix == ".g722" else read_audio(path)
    pad = np.zeros(int(PAD_S * rate), np.float32)
    return np.concatenate([pad, audio.astype(np.float32), pad]), rate


def load_real_voices(languages: tuple[str, ...] = EVALUATION) -> tuple[list[RealUtterance], dict[str, int]]:
    """The recordings of `languages`, and per language how many could not be aligned."""
    cache = json.loads(CACHE.read_text()) if CACHE.exists() else {}
    utterances, failed = [], dict.fromkeys(languages, 0)
    todo = list(sources(languages))
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
