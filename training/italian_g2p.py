"""Italian spelling to ARPAbet, so that pocketsphinx's English acoustic model can force-align Italian
speech (training/align.py) for the real-voice evaluation set.

Italian spelling is close to phonemic; these rules cover it except stress-dependent vowel quality (open
and closed e and o are one phone each here), intervocalic s (always S) and z (always T S), and geminates
(one phone: the English model has no long consonants). The alignment only has to place the bilabials
(p, b, m, which Italian always spells as such) and the open vowels (a) in time, which these rules do.
"""

from __future__ import annotations

import re
import unicodedata

VOWELS = {"a": "AA", "e": "EH", "i": "IY", "o": "OW", "u": "UW"}
FRONT = frozenset("ei")
SIMPLE = {  # letters that always sound the same (h: silent)
    "b": ["B"], "d": ["D"], "f": ["F"], "k": ["K"], "l": ["L"], "m": ["M"], "n": ["N"], "p": ["P"],
    "r": ["R"], "s": ["S"], "t": ["T"], "v": ["V"], "w": ["W"], "j": ["Y"], "y": ["IY"], "c": ["K"],
    "g": ["G"], "z": ["T", "S"], "x": ["K", "S"], "h": [],
}  # fmt: skip
LETTERS = frozenset("abcdefghijklmnopqrstuvwxyz")


def normalise(word: str) -> str:
    """Lower case, accents off (à -> a), apostrophes joined (l'ultimo -> lultimo)."""
    decomposed = unicodedata.normalize("NFD", word.lower())
    return "".join(c for c in decomposed if c in LETTERS)


def italian_phones(word: str) -> list[str]:
    """ARPAbet phones of one Italian word (normalised first)."""
    w = normalise(word)
    phones: list[str] = []
    i = 0
    while i < len(w):
        c, rest = w[i], w[i + 1 :]
        if c not in VOWELS and rest[:1] == c:  # a geminate is one phone: the second letter, in its context
            i += 1
            continue
        if c in VOWELS:
            # i or u between a consonant-less start or a vowel and another vowel is a glide (ieri, uomo)
            if c in "iu" and rest[:1] in VOWELS and (i == 0 or w[i - 1] in VOWELS or w[i - 1] in "lnrtdsvmpbfzh"):
                phones.append("Y" if c == "i" else "W")
            else:
                phones.append(VOWELS[c])
            i += 1
        elif rest.startswith("li") and c == "g" and (len(rest) == 2 or rest[2] in VOWELS):  # gli
            phones += ["L", "Y"] if len(rest) > 2 else ["L", "IY"]
            i += 3
        elif c == "g" and rest.startswith("n"):  # gn
            phones += ["N", "Y"]
            i += 2
        elif c == "s" and rest.startswith("c") and rest[1:2] in FRONT:  # sce, sci(a)
            phones.append("SH")
            i += 3 if rest[1] == "i" and rest[2:3] in VOWELS else 2
        elif c in "cg" and rest[:1] == "h":  # che, ghi
            phones.append("K" if c == "c" else "G")
            i += 2
        elif c in "cg" and rest[:1] in FRONT:  # ce, ci(a), ge, gi(a)
            phones.append("CH" if c == "c" else "JH")
            i += 2 if rest[0] == "i" and rest[1:2] in VOWELS else 1
        elif c == "q":  # qu
            phones += ["K", "W"]
            i += 2 if rest.startswith("u") else 1
        else:  # one letter, one sound (or none)
            phones += SIMPLE[c]
            i += 1
    return phones


def italian_words(text: str) -> list[str]:
    """The normalised words of a transcript (punctuation dropped)."""
    words = (normalise(w) for w in re.split(r"[\s\-.,;:!?\"“”()]+", text))
    return [w for w in words if w]
