"""The pieces of the real-voice evaluation: Italian spelled into ARPAbet and aligned by pocketsphinx,
speech through real codecs (ffmpeg) staying in time, and the judge and peer of the benchmark."""

import shutil

import numpy as np
import pytest

from emostream.benchmarks.real_voices import Clip, judge, peer_faces
from emostream.runtime.audio import Resampler
from emostream.runtime.rigs import FACE_CHANNELS
from emostream.training.align import Phone, align
from emostream.training.codecs import CODECS, codec_delay, through_codec
from emostream.training.french_g2p import french_phones, french_words
from emostream.training.italian_g2p import italian_phones, italian_words
from emostream.training.real_voices import (
    CLOSURE_TRAINING,
    EVALUATION,
    TRAINING,
    VALIDATION,
    RealUtterance,
    split_at_pauses,
)
from emostream.training.russian_g2p import latin_key, russian_phones, russian_words
from emostream.training.spanish_g2p import spanish_phones, spanish_words
from emostream.training.tts import Voice

needs_ffmpeg = pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="ffmpeg is not installed")
needs_espeak = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng is not installed")


@pytest.mark.parametrize(
    ("word", "phones"),
    [
        ("prego", "P R EH G OW"),
        ("chiamata", "K Y AA M AA T AA"),
        ("messaggio", "M EH S AA JH OW"),  # geminate gg before i: one JH, the i silent
        ("famiglia", "F AA M IY L Y AA"),
        ("bagno", "B AA N Y OW"),
        ("scelta", "SH EH L T AA"),
        ("quello", "K W EH L OW"),
        ("pizza", "P IY T S AA"),
        ("è", "EH"),
    ],
)
def test_italian_words_are_spelled_into_arpabet(word: str, phones: str) -> None:
    assert " ".join(italian_phones(word)) == phones


@pytest.mark.parametrize(
    ("word", "phones"),
    [
        ("número", "N UW M EH R OW"),
        ("contraseña", "K OW N T R AA S EH N Y AA"),  # ñ
        ("siguiente", "S IY G Y EH N T EH"),  # gui: silent u; ie: glide
        ("quiere", "K Y EH R EH"),
        ("llamada", "Y AA M AA D AA"),
        ("buzón", "B UW S OW N"),  # z as s
        ("vacío", "B AA S IY OW"),  # v is b; an accented i stays a vowel
        ("mensaje", "M EH N S AA HH EH"),  # j: the jota
        ("hoy", "OW IY"),  # silent h, final y
        ("pingüino", "P IY N G W IY N OW"),
    ],
)
def test_spanish_words_are_spelled_into_arpabet(word: str, phones: str) -> None:
    assert " ".join(spanish_phones(word)) == phones


def test_spanish_transcripts_keep_their_accents_until_spelled() -> None:
    assert spanish_words("¿Por favor, ingrese su número?") == ["por", "favor", "ingrese", "su", "número"]


@pytest.mark.parametrize(
    ("word", "phones"),
    [
        ("привет", "P R IY V EH T"),
        ("нажмите", "N AA ZH M IY T EH"),
        ("объявление", "AA B Y AA V L EH N IY Y EH"),  # a hard sign and a vowel before the iotated vowels
        ("его", "Y EH V AA"),  # the ending's г said as в
        ("хлеб", "HH L EH P"),  # devoiced at the end
        ("поддержка", "P AA D EH R ZH K AA"),  # a doubled letter is one sound; о as unstressed
        ("что", "SH T AA"),
        ("мясных", "M AA S N IH HH"),
    ],
)
def test_russian_words_are_spelled_into_arpabet(word: str, phones: str) -> None:
    assert " ".join(russian_phones(word)) == phones


def test_russian_transcripts_split_into_words_with_ascii_keys() -> None:
    assert russian_words("Введите пароль и нажмите «решётку».") == ["введите", "пароль", "и", "нажмите", "решётку"]
    assert latin_key("решётку") == "reshyotku" and latin_key("объявление") == "obyavlenie"
    with pytest.raises(ValueError, match="not a Russian word"):
        russian_phones("pin")


@pytest.mark.parametrize(
    ("word", "phones"),
    [
        ("combien", "K AO N B Y AE N"),  # a nasal vowel's m is no bilabial
        ("temps", "T AA N"),  # nor is the p of -mps
        ("beaucoup", "B OW K UW"),  # a silent final p
        ("bip", "B IY P"),  # and one that is said
        ("comme", "K AO M"),  # a doubled m keeps the vowel oral
        ("message", "M EH S AA ZH"),  # g before the silent e
        ("appuyez", "AA P UW IY EY"),
        ("boîte", "B W AA T"),
    ],
)
def test_french_words_are_spelled_into_arpabet(word: str, phones: str) -> None:
    assert " ".join(french_phones(word)) == phones


def test_french_transcripts_join_elided_words() -> None:
    words = ["à", "laide", "de", "votre", "clavier", "composez"]
    assert french_words("À l'aide de votre clavier, composez...") == words


def test_no_language_is_both_trained_on_and_evaluated() -> None:
    assert not set(TRAINING) & set(EVALUATION)
    assert not set(CLOSURE_TRAINING) & set(EVALUATION)
    assert not set(VALIDATION) & (set(EVALUATION) | set(TRAINING) | set(CLOSURE_TRAINING))
    assert "en" in EVALUATION  # the English words are the check on a recording chain other than Asterisk's


def test_a_transcript_splits_into_normalised_words() -> None:
    assert italian_words("Prego, digitare l'interno.") == ["prego", "digitare", "linterno"]


@needs_espeak
def test_italian_speech_aligns_with_its_bilabials_where_the_audio_goes_quiet() -> None:
    audio, rate = Voice("espeak", "it", speed=0.8).synthesize("prego premere il pulsante e poi aspettare")
    words = [f"{w}_it" for w in italian_words("prego premere il pulsante e poi aspettare")]
    phones = align(audio, rate, " ".join(words), {w: italian_phones(w[:-3]) for w in words})
    labels = [p.label for p in phones if p.label != "SIL"]
    assert labels.count("P") == 5 and labels.count("M") == 1

    # A p is a closure: quieter than the vowels around it
    def level(p: Phone) -> float:
        segment = audio[int(p.start_s * rate) : int(p.end_s * rate)].astype(np.float64)
        return float(np.sqrt(np.mean(segment**2)))

    stops = [level(p) for p in phones if p.label == "P"]
    vowels = [level(p) for p in phones if p.label == "AA"]
    assert np.median(stops) < 0.5 * np.median(vowels)


@needs_ffmpeg
@pytest.mark.parametrize("codec", ["g711-mulaw", "gsm", "opus-12k", "mp3-32k"])
def test_speech_through_a_codec_keeps_its_rate_length_and_timing(codec: str) -> None:
    audio, rate = Voice("espeak", "en-us").synthesize("the quick brown fox jumps over the lazy dog")
    decoded, coded_rate = through_codec(audio, rate, CODECS[codec])
    assert coded_rate == CODECS[codec].rate_hz
    assert abs(decoded.size - round(audio.size * coded_rate / rate)) <= 1
    # back in time with the input: no residual delay, and the codec did change the signal
    reference = Resampler(rate, coded_rate).offline(audio.astype(np.float64))
    assert codec_delay(reference, decoded, coded_rate) <= coded_rate // 1000
    assert np.corrcoef(reference, decoded)[0, 1] > 0.9
    assert np.abs(reference - decoded).max() > 1e-3


def test_the_judge_counts_bilabials_and_vowels_per_language() -> None:
    phones = [Phone("M", 0.1, 0.2), Phone("AA", 0.2, 0.5), Phone("P", 0.5, 0.6)]
    shut = np.zeros((40, len(FACE_CHANNELS)), np.float32)  # every frame closed
    result = judge([shut, shut], [Clip("en", np.zeros(10), 16000, phones), Clip("it", np.zeros(10), 16000, phones)])
    assert result["all"] == {"closure_hit_rate": 1.0, "false_closure_rate": 1.0, "bilabials": 4, "open_vowels": 2}
    assert result["en"]["bilabials"] == 2


def test_the_peer_mouth_is_volume_times_openness_and_silence_shuts_it() -> None:
    openness = np.array([1.0, 1.0, 0.0], np.float32)
    volumes = np.array([10**-1.0, 10**-3.0, 10**-1.0], np.float32)  # loud, quiet, loud
    clip = Clip("en", np.zeros(800), 16000, [])
    face = peer_faces([(openness, volumes)], [clip], low=-2.0, high=-1.0, gain=0.8)[0]
    assert face[:, FACE_CHANNELS.index("jawOpen")].tolist() == pytest.approx([0.8, 0.0, 0.0])


def test_a_long_recording_is_cut_in_its_pauses_with_phones_retimed() -> None:
    rate = 16_000
    phones = [Phone("SIL", 0.0, 0.3), Phone("M", 0.3, 0.4), Phone("AA", 0.4, 3.0), Phone("SIL", 3.0, 3.4),
              Phone("P", 3.4, 3.5), Phone("AA", 3.5, 6.8), Phone("SIL", 6.8, 7.0)]  # fmt: skip
    audio = np.arange(int(7.0 * rate), dtype=np.float32)
    pieces = split_at_pauses(RealUtterance("es/x", "es", "ma pa", audio, rate, phones), max_s=5.0)
    assert [p.id for p in pieces] == ["es/x#0", "es/x#1"]
    first, second = pieces
    assert first.audio.size == int(3.2 * rate) and second.audio[0] == audio[int(3.2 * rate)]  # cut mid-pause
    assert [p.label for p in second.phones] == ["SIL", "P", "AA", "SIL"]
    assert abs(second.phones[1].start_s - 0.2) < 1e-9 and abs(second.phones[-1].end_s - 3.8) < 1e-9
    assert split_at_pauses(first, max_s=5.0) == [first]  # short ones stay whole
