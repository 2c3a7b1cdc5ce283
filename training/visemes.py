"""ARPAbet phones to the 15 Meta/OpenXR visemes, and each viseme's mouth pose as ARKit blendshapes."""

from __future__ import annotations

VISEMES: tuple[str, ...] = ("sil", "PP", "FF", "TH", "DD", "kk", "CH", "SS", "nn", "RR", "aa", "E", "ih", "oh", "ou")

PHONE_TO_VISEME: dict[str, str] = {
    "SIL": "sil",
    "P": "PP", "B": "PP", "M": "PP",
    "F": "FF", "V": "FF",
    "TH": "TH", "DH": "TH",
    "T": "DD", "D": "DD",
    "K": "kk", "G": "kk", "NG": "kk",
    "CH": "CH", "JH": "CH", "SH": "CH", "ZH": "CH",
    "S": "SS", "Z": "SS",
    "N": "nn", "L": "nn",
    "R": "RR", "ER": "RR",
    "AA": "aa", "AH": "aa", "AE": "aa", "AY": "aa", "AW": "aa",
    "EH": "E", "EY": "E",
    "IH": "ih", "IY": "ih", "Y": "ih",
    "AO": "oh", "OW": "oh", "OY": "oh",
    "UW": "ou", "UH": "ou", "W": "ou",
    "HH": "aa",  # takes the neighbouring vowel's shape through its low dominance
}  # fmt: skip

BILABIALS = frozenset({"P", "B", "M"})
LABIODENTALS = frozenset({"F", "V"})
OPEN_VOWELS = frozenset({"AA", "AE", "AH", "AO", "AW", "AY"})

# Mouth pose per viseme (ARKit name -> weight); left/right pairs are written once with a "*" suffix.
VISEME_POSES: dict[str, dict[str, float]] = {
    "sil": {"jawOpen": 0.02},
    "PP": {"jawOpen": 0.06, "mouthClose": 0.06, "mouthPress*": 0.35, "mouthRollLower": 0.1},
    "FF": {"jawOpen": 0.1, "mouthClose": 0.04, "mouthRollLower": 0.55, "mouthUpperUp*": 0.2, "mouthShrugUpper": 0.1},
    "TH": {"jawOpen": 0.18, "tongueOut": 0.35, "mouthLowerDown*": 0.15},
    "DD": {"jawOpen": 0.2, "mouthLowerDown*": 0.2, "mouthStretch*": 0.1},
    "kk": {"jawOpen": 0.26, "mouthStretch*": 0.1, "mouthLowerDown*": 0.1},
    "CH": {"jawOpen": 0.14, "mouthFunnel": 0.5, "mouthPucker": 0.3, "mouthUpperUp*": 0.2, "mouthLowerDown*": 0.2},
    "SS": {"jawOpen": 0.08, "mouthStretch*": 0.3, "mouthSmile*": 0.1, "mouthLowerDown*": 0.1, "mouthUpperUp*": 0.1},
    "nn": {"jawOpen": 0.2, "mouthLowerDown*": 0.15},
    "RR": {"jawOpen": 0.15, "mouthFunnel": 0.3, "mouthPucker": 0.35},
    "aa": {"jawOpen": 0.6, "mouthLowerDown*": 0.35, "mouthUpperUp*": 0.12},
    "E": {"jawOpen": 0.4, "mouthStretch*": 0.3, "mouthLowerDown*": 0.3, "mouthUpperUp*": 0.12},
    "ih": {"jawOpen": 0.25, "mouthStretch*": 0.35, "mouthSmile*": 0.15, "mouthLowerDown*": 0.2},
    "oh": {"jawOpen": 0.45, "mouthFunnel": 0.6, "mouthPucker": 0.3},
    "ou": {"jawOpen": 0.18, "mouthPucker": 0.8, "mouthFunnel": 0.4},
}

# How strongly each viseme holds its shape against its neighbours (coarticulation dominance).
VISEME_DOMINANCE: dict[str, float] = {
    "sil": 0.4, "PP": 3.0, "FF": 2.5, "TH": 1.2, "DD": 0.7, "kk": 0.6, "CH": 1.5, "SS": 1.2, "nn": 0.7,
    "RR": 1.2, "aa": 1.0, "E": 1.0, "ih": 1.0, "oh": 1.3, "ou": 1.6,
}  # fmt: skip


def expand_sides(pose: dict[str, float]) -> dict[str, float]:
    """{"mouthPress*": w} -> {"mouthPressLeft": w, "mouthPressRight": w}."""
    out: dict[str, float] = {}
    for name, weight in pose.items():
        if name.endswith("*"):
            out[name[:-1] + "Left"] = weight
            out[name[:-1] + "Right"] = weight
        else:
            out[name] = weight
    return out
