"""Phone timings by forced alignment with pocketsphinx (its English acoustic model ships on PyPI).

Works on any speech with a transcript (TTS output or a person's recording): audio -> 16 kHz -> two
decoder passes (words, then phones) -> a list of ARPAbet phones with start and end times in seconds.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from emostream.runtime.audio import Resampler

ALIGN_RATE_HZ = 16_000
FRAME_S = 0.01  # pocketsphinx's 100 frames per second


class AlignmentError(RuntimeError):
    """The aligner could not fit the transcript to the audio."""


@dataclass(frozen=True)
class Phone:
    label: str  # ARPAbet without stress ("AA", "P", ...) or "SIL"
    start_s: float
    end_s: float


def _decoder():  # type: ignore[no-untyped-def]
    """A fresh decoder per utterance: one reused after set_alignment() fails on later utterances."""
    from pocketsphinx import Decoder

    return Decoder(lm=None, loglevel="FATAL")


def to_16k_int16(samples: np.ndarray, rate_hz: int) -> np.ndarray:
    x = samples.astype(np.float64)
    if rate_hz != ALIGN_RATE_HZ:
        x = Resampler(rate_hz, ALIGN_RATE_HZ).offline(x)
    # TTS output has stretches of exact digital silence, on which pocketsphinx's features degenerate and
    # alignment fails; a seeded +-2 LSB dither (what sox adds when it writes 16 bits) avoids that.
    dither = np.random.default_rng(0).integers(-2, 3, x.size)
    return np.clip(np.round(x * 32767) + dither, -32768, 32767).astype(np.int16)


def transcript_words(text: str) -> str:
    return " ".join(re.sub(r"[^a-z' ]", " ", text.lower()).split())


def align(samples: np.ndarray, rate_hz: int, text: str, pronunciations: dict[str, list[str]] | None = None,
          ) -> list[Phone]:  # fmt: skip
    """Phones of `text` as spoken in `samples` (float mono at rate_hz), silences included, in order.
    `pronunciations`: ARPAbet phones of words the English dictionary lacks (another language's words, named
    apart from English ones, as "e_it": the dictionary's own entries cannot be replaced); with them, `text`
    is taken as it is, words split on spaces."""
    pcm = to_16k_int16(samples, rate_hz).tobytes()
    words = " ".join(text.split()) if pronunciations else transcript_words(text)
    decoder = _decoder()
    for word, phones in (pronunciations or {}).items():
        decoder.add_word(word, " ".join(phones), True)
    try:
        decoder.set_align_text(words)
    except RuntimeError as exc:  # a word in neither the dictionary nor `pronunciations`
        raise AlignmentError(f"could not align {text!r}: {exc}") from None
    try:
        for second_pass in (False, True):
            if second_pass:
                decoder.set_alignment()  # phone-level pass over the word alignment
            decoder.start_utt()
            decoder.process_raw(pcm, no_search=False, full_utt=True)
            decoder.end_utt()
    except RuntimeError as exc:
        raise AlignmentError(f"could not align {text!r}: {exc}") from None
    alignment = decoder.get_alignment()
    if alignment is None:
        raise AlignmentError(f"could not align {text!r}")
    aligned_words = [re.sub(r"\(\d+\)$", "", w.name) for w in alignment if not w.name.startswith("<")]
    if aligned_words != words.split():
        # The decoder may drop a word it cannot fit; such an alignment would teach wrong visemes.
        raise AlignmentError(f"alignment kept {len(aligned_words)} of {len(words.split())} words of {text!r}")
    phones = []
    for word in alignment:
        for phone in word:
            label = phone.name if phone.name.isalpha() and phone.name.isupper() else "SIL"
            start = phone.start * FRAME_S
            phones.append(Phone(label, start, start + phone.duration * FRAME_S))
    return phones
