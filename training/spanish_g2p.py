"""Spanish spelling to ARPAbet, so that pocketsphinx's English acoustic model can force-align the Spanish
prompts that train the face model on real voices (training/real_voices.py).

Spanish spelling is close to phonemic; these rules follow Latin American usage (c before e/i and z are S,
ll and y are Y), make unstressed i and u before a vowel glides (Y, W), silence h and the u of que/qui and
gue/gui, and give b and v one phone, B, as Spanish does (between vowels it is a near-closure, which the
face may show as one). The alignment only has to place the bilabials and the open vowels in time.
"""

from __future__ import annotations

import re
import unicodedata

VOWELS = {"a": "AA", "e": "EH", "i": "IY", "o": "OW", "u": "UW"}
STRESSED = {"á": "a", "é": "e", "í": "i", "ó": "o", "ú": "u", "ü": "u"}  # accent marks that change rules
FRONT = frozenset("ei")
SIMPLE = {  # letters that always sound the same (h: silent)
    "b": ["B"], "v": ["B"], "d": ["D"], "f": ["F"], "k": ["K"], "l": ["L"], "m": ["M"], "n": ["N"],
    "p": ["P"], "s": ["S"], "t": ["T"], "w": ["W"], "z": ["S"], "j": ["HH"], "r": ["R"], "c": ["K"],
    "g": ["G"], "x": ["K", "S"], "h": [],
}  # fmt: skip
LETTERS = frozenset("abcdefghijklmnopqrstuvwxyzñáéíóúü")


def normalise(word: str) -> str:
    """Lower case, letters only; the marks that matter here (á é í ó ú ü ñ) kept, others dropped."""
    letters: list[str] = []
    for c in unicodedata.normalize("NFC", word.lower()):
        letters += [c] if c in LETTERS else [d for d in unicodedata.normalize("NFD", c) if d in LETTERS]
    return "".join(letters)


def spanish_phones(word: str) -> list[str]:
    """ARPAbet phones of one Spanish word (normalised first)."""
    w = normalise(word)
    phones: list[str] = []
    i = 0
    while i < len(w):
        c, rest = w[i], w[i + 1 :]
        nxt = rest[:1]
        if c in STRESSED:  # a written accent or diaeresis: always a full vowel (día, país)
            phones.append(VOWELS[STRESSED[c]])
            i += 1
        elif c in VOWELS:
            before_vowel = nxt in VOWELS or nxt in STRESSED  # tiene, cuatro
            after_vowel = i > 0 and w[i - 1] in VOWELS and nxt not in VOWELS  # a falling diphthong: seis
            if c in "iu" and (before_vowel or after_vowel):  # a glide
                phones.append("Y" if c == "i" else "W")
            else:
                phones.append(VOWELS[c])
            i += 1
        elif c == "y":
            # a vowel alone or word-finally (y, hoy), a consonant before a vowel (ya, mayo)
            phones.append("Y" if nxt in VOWELS or nxt in STRESSED else "IY")
            i += 1
        elif c == "c" and nxt == "h":
            phones.append("CH")
            i += 2
        elif c == "l" and nxt == "l":
            phones.append("Y")
            i += 2
        elif c == "r" and nxt == "r":
            phones.append("R")
            i += 2
        elif c == "ñ":
            phones += ["N", "Y"]
            i += 1
        elif c == "q":  # que, qui: the u is silent
            phones.append("K")
            i += 2 if nxt == "u" else 1
        elif c == "g" and nxt == "u" and rest[1:2] in FRONT:  # gue, gui: the u is silent
            phones.append("G")
            i += 2
        elif c == "g" and nxt == "ü":  # pingüino
            phones += ["G", "W"]
            i += 2
        elif c in "cg" and (nxt in FRONT or nxt in ("é", "í")):  # ce, ci -> S; ge, gi -> the jota
            phones.append("S" if c == "c" else "HH")
            i += 1
        else:  # one letter, one sound (or none)
            phones += SIMPLE[c]
            i += 1
    return phones


def spanish_words(text: str) -> list[str]:
    """The normalised words of a transcript (punctuation dropped)."""
    words = (normalise(w) for w in re.split(r"[\s\-.,;:!?¡¿\"“”()]+", text))
    return [w for w in words if w]
