"""French spelling to ARPAbet, so that pocketsphinx's English acoustic model can force-align the French
prompts that train the face model's audio-only closure head on real voices (training/real_voices.py).

French spelling is far from phonemic; these rules keep what that head needs, the bilabials and the open
vowels in time, and above all never write a bilabial that is not said: an m or n that makes the vowel
before it nasal (combien, temps, nom) is N, not M; p is silent in -mpt- and -mps (compte, temps) and at
the end of a few words (beaucoup); the final s, t, d, x, z and a final e are silent. Multi-letter vowels
(eau, au, ou, oi, ai, ei, eu) are one sound; elided words are joined (l'aide -> laide). Liaison is not
modelled.
"""

from __future__ import annotations

import re
import unicodedata

# Longest spellings first; each gives ARPAbet phones.
VOWEL_GROUPS = (
    ("eaux", ["OW"]), ("eau", ["OW"]), ("oeu", ["AH"]), ("œu", ["AH"]), ("ou", ["UW"]), ("où", ["UW"]),
    ("oû", ["UW"]), ("ail", ["AA", "Y"]), ("oi", ["W", "AA"]), ("oî", ["W", "AA"]), ("au", ["OW"]),
    ("ai", ["EH"]), ("aî", ["EH"]), ("ei", ["EH"]), ("eu", ["AH"]), ("ui", ["W", "IY"]),
)  # fmt: skip
NASALS = (  # a vowel spelling before m or n that is not followed by a vowel (or another m / n)
    ("ain", ["AE", "N"]), ("aim", ["AE", "N"]), ("ein", ["AE", "N"]), ("oin", ["W", "AE", "N"]),
    ("ien", ["Y", "AE", "N"]), ("an", ["AA", "N"]), ("am", ["AA", "N"]), ("en", ["AA", "N"]),
    ("em", ["AA", "N"]), ("on", ["AO", "N"]), ("om", ["AO", "N"]), ("in", ["AE", "N"]), ("im", ["AE", "N"]),
    ("un", ["AE", "N"]), ("um", ["AE", "N"]), ("yn", ["AE", "N"]), ("ym", ["AE", "N"]),
)  # fmt: skip
SINGLE_VOWELS = {
    "a": "AA", "à": "AA", "â": "AA", "e": "AH", "é": "EY", "è": "EH", "ê": "EH", "ë": "EH", "i": "IY",
    "î": "IY", "ï": "IY", "o": "AO", "ô": "OW", "u": "UW", "û": "UW", "ù": "UW", "ü": "UW", "y": "IY",
}  # fmt: skip
CONSONANTS = {
    "b": ["B"], "c": ["K"], "ç": ["S"], "d": ["D"], "f": ["F"], "g": ["G"], "h": [], "j": ["ZH"], "k": ["K"],
    "l": ["L"], "m": ["M"], "n": ["N"], "p": ["P"], "q": ["K"], "r": ["R"], "s": ["S"], "t": ["T"],
    "v": ["V"], "w": ["W"], "x": ["K", "S"], "z": ["Z"],
}  # fmt: skip
DIGRAPHS = {"ch": ["SH"], "ph": ["F"], "gn": ["N", "Y"], "qu": ["K"], "th": ["T"], "gu": ["G"]}
SILENT_FINALS = frozenset("stdxz")
SILENT_P = ("coup", "trop", "loup", "champ", "camp", "drap", "sirop", "galop")  # the few words whose final p is silent
WHOLE_WORDS = {"sept": ["S", "EH", "T"], "et": ["EY"], "est": ["EH"], "les": ["L", "EH"], "des": ["D", "EH"]}
LETTERS = frozenset(SINGLE_VOWELS) | frozenset(CONSONANTS) | frozenset("œæ")
VOWEL_LETTERS = frozenset(SINGLE_VOWELS) | frozenset("œæ")


def normalise(word: str) -> str:
    """Lower case, apostrophes dropped (elision joins the words), composed accents."""
    return unicodedata.normalize("NFC", word.lower()).replace("'", "").replace("’", "")


def _vowel_next(w: str, i: int) -> bool:
    return i < len(w) and w[i] in VOWEL_LETTERS


def french_phones(word: str) -> list[str]:
    """ARPAbet phones of one French word (normalised first)."""
    w = normalise(word)
    if w in WHOLE_WORDS:
        return list(WHOLE_WORDS[w])
    if set(w) - LETTERS:
        raise ValueError(f"not a French word: {word!r}")
    # silent endings: a final e or es; a final s, t, d, x or z (with the p of -mps); the p of SILENT_P;
    # -er and -ez are EY
    end, tail = len(w), []
    if w.endswith(("er", "ez")) and end > 3:
        end, tail = end - 2, ["EY"]
    elif w.endswith("es") and end > 3:
        end -= 2
    elif w.endswith("e") and end > 2:
        end -= 1
    elif w[-1] in SILENT_FINALS and end > 1:
        end -= 1
        if w[end - 1] == "p" and w[end - 2 : end - 1] == "m":  # temps
            end -= 1
    elif w.endswith(SILENT_P):
        end -= 1
    body, phones, i = w[:end], [], 0
    while i < len(body):
        rest = body[i:]
        nasal = next(((s, p) for s, p in NASALS if rest.startswith(s)), None)
        after = body[i + len(nasal[0]) : i + len(nasal[0]) + 1] if nasal else ""
        if nasal and after not in VOWEL_LETTERS and after not in ("m", "n"):
            phones += nasal[1]
            i += len(nasal[0])
            if body[i : i + 2] == "pt" or (body[i : i + 1] == "p" and i + 1 == len(body)):
                i += 1  # compte, temps: the p is not said
            continue
        group = next(((s, p) for s, p in VOWEL_GROUPS if rest.startswith(s)), None)
        if group:
            phones += group[1]
            i += len(group[0])
        elif rest.startswith("ill") and i > 0:
            phones += ["IY", "Y"] if body[i - 1] not in VOWEL_LETTERS else ["Y"]
            i += 3
        elif rest.startswith("tion"):
            phones += ["S", "Y", "AO", "N"]
            i += 4
        elif rest[:2] in DIGRAPHS and not (rest[:2] == "gu" and not _vowel_next(w, i + 2)):  # langue, aigu
            phones += DIGRAPHS[rest[:2]]
            i += 2
        elif rest[0] in SINGLE_VOWELS:
            if rest[0] == "y" and _vowel_next(body, i + 1):
                phones.append("Y")
            elif rest[0] == "e" and i + 2 < len(body) and not set(body[i + 1 : i + 3]) & VOWEL_LETTERS:
                phones.append("EH")  # e before two consonants: merci, reste
            else:
                phones.append(SINGLE_VOWELS[rest[0]])
            i += 1
        elif rest[0] in "œæ":
            phones.append("EH")
            i += 1
        elif i > 0 and rest[0] == body[i - 1]:
            i += 1  # a doubled consonant is one sound
        elif rest[0] in "cg" and w[i + 1 : i + 2] in tuple("eéèêiîy"):  # the full word: message, conférence
            phones.append("S" if rest[0] == "c" else "ZH")
            i += 1
        elif rest[0] == "s" and i > 0 and body[i - 1] in VOWEL_LETTERS and _vowel_next(body, i + 1):
            phones.append("Z")  # between vowels
            i += 1
        else:
            phones += CONSONANTS[rest[0]]
            i += 1
    return phones + tail


def french_words(text: str) -> list[str]:
    """The normalised words of a transcript (punctuation dropped; elided words joined)."""
    words = (normalise(w) for w in re.split(r"[\s\-.,;:!?\"«»“”()…]+", text))
    return [w for w in words if w]
