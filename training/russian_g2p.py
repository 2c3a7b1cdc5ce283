"""Russian spelling to ARPAbet, so that pocketsphinx's English acoustic model can force-align the Russian
prompts that train the face model's audio-only closure head on real voices (training/real_voices.py).

Russian spelling is close to phonemic once stress is known, and it is not written. These rules keep what
the alignment needs, the bilabials and the open vowels in time: о is AA (unstressed, most о sound [a] or a
schwa), е ё ю я are a vowel after a consonant and Y before it elsewhere, ь and ъ are silent, voiced
obstruents are devoiced at a word's end, and г in the -ого/-его endings is V. Palatalisation is not
marked (the English model has no soft consonants).
"""

from __future__ import annotations

import re

VOWELS = {"а": "AA", "о": "AA", "у": "UW", "ы": "IH", "и": "IY", "э": "EH"}
IOTATED = {"е": "EH", "ё": "AO", "ю": "UW", "я": "AA"}  # Y before the vowel after a vowel, a sign or at the start
CONSONANTS = {
    "б": ["B"], "в": ["V"], "г": ["G"], "д": ["D"], "ж": ["ZH"], "з": ["Z"], "й": ["Y"], "к": ["K"],
    "л": ["L"], "м": ["M"], "н": ["N"], "п": ["P"], "р": ["R"], "с": ["S"], "т": ["T"], "ф": ["F"],
    "х": ["HH"], "ц": ["T", "S"], "ч": ["CH"], "ш": ["SH"], "щ": ["SH"], "ь": [], "ъ": [],
}  # fmt: skip
DEVOICED = {"B": "P", "V": "F", "G": "K", "D": "T", "ZH": "SH", "Z": "S"}
LETTERS = frozenset(VOWELS) | frozenset(IOTATED) | frozenset(CONSONANTS)
WHOLE_WORDS = {"что": ["SH", "T", "AA"], "чтобы": ["SH", "T", "AA", "B", "IH"]}  # the ч said as ш
# Latin transliteration for dictionary keys (pocketsphinx reads ASCII); the signs, "", are dropped
LATIN = {
    "а": "a", "б": "b", "в": "v", "г": "g", "д": "d", "е": "e", "ё": "yo", "ж": "zh", "з": "z", "и": "i",
    "й": "j", "к": "k", "л": "l", "м": "m", "н": "n", "о": "o", "п": "p", "р": "r", "с": "s", "т": "t",
    "у": "u", "ф": "f", "х": "kh", "ц": "ts", "ч": "ch", "ш": "sh", "щ": "shch", "ъ": "", "ы": "y", "ь": "",
    "э": "eh", "ю": "yu", "я": "ya",
}  # fmt: skip


def normalise(word: str) -> str:
    return word.lower()


def russian_phones(word: str) -> list[str]:
    """ARPAbet phones of one Russian word (lower case, Cyrillic letters only)."""
    w = normalise(word)
    if w in WHOLE_WORDS:
        return list(WHOLE_WORDS[w])
    unknown = set(w) - LETTERS
    if unknown:
        raise ValueError(f"not a Russian word: {word!r}")
    phones: list[str] = []
    for i, c in enumerate(w):
        if c in VOWELS:
            phones.append(VOWELS[c])
        elif c in IOTATED:
            if i == 0 or w[i - 1] in VOWELS or w[i - 1] in IOTATED or w[i - 1] in "ьъ":
                phones.append("Y")
            phones.append(IOTATED[c])
        elif c == "г" and i == len(w) - 2 and w.endswith(("ого", "его")) and w != "ого":
            phones.append("V")  # его, нового
        elif i > 0 and c == w[i - 1] and c in CONSONANTS:
            continue  # a doubled consonant is one longer sound
        else:
            phones += CONSONANTS[c]
    if phones and phones[-1] in DEVOICED:
        phones[-1] = DEVOICED[phones[-1]]
    return phones


def russian_words(text: str) -> list[str]:
    """The normalised words of a transcript (punctuation dropped)."""
    words = (normalise(w) for w in re.split(r"[\s\-.,;:!?\"«»“”„()…—–]+", text))
    return [w for w in words if w]


def latin_key(word: str) -> str:
    """An ASCII name for a Russian word in the aligner's dictionary (привет -> privet)."""
    return "".join(LATIN.get(c, "") for c in normalise(word))
