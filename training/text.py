"""A phonetically varied English text set, generated from small word lists and sentence templates.

Every word is checked against the CMU pronouncing dictionary that ships with pocketsphinx, so the forced
aligner can always pronounce it. Sentences are picked greedily to cover phone pairs (diphones) that the
set does not have yet, so a few hundred sentences cover most English phone transitions.
"""

from __future__ import annotations

import itertools
import random
from functools import cache
from pathlib import Path

NOUNS = """
apple baby ball band bank bath beach bear bed bell bike bird boat book bottle box boy bread bridge brother
bus cake camera car cat chair cheese child city clock cloud coat coffee cup dog door dream egg engine eye face
farm father fish floor flower foot friend game garden girl glass hand hat head horse house island jacket judge
key king kitchen lamp lemon letter light lion map market milk money monkey month moon morning mother mountain
mouse mouth music night nose ocean orange paper party pencil phone piano picture pizza plane plate pocket
queen rabbit rain river road rock room rope school sheep ship shoe shop sister sky smile snake song spoon star
station stone storm street summer sun table teacher thumb ticket tiger tooth town toy train tree truck umbrella
valley village voice wagon watch water whale window winter wolf woman world yard zoo
"""
VERBS_PAST = """
asked baked bought brought built called carried caught changed chased climbed closed cooked crossed danced
dropped drove fixed found grabbed helped hid hugged joined jumped kept kicked kissed knew laughed left lifted
liked lived looked loved made met missed moved needed opened packed painted passed picked played pulled
pushed reached read rode ran saved saw shared showed sold sang stopped took touched visited waited walked
wanted washed watched waved wished wore wrote
"""
ADJECTIVES = """
angry beautiful big black blue bold brave bright broken busy calm cheap clean clever cold cool cozy dark deep
dirty dry early easy empty famous fast fresh friendly full funny gentle giant golden good gray great green happy
heavy hot huge kind large late lazy little long loud lucky messy modern new nice noisy old pale perfect pink
plain polite poor proud purple quick quiet rich rough round rusty sad sharp shiny short silly small smooth soft
strange strong sunny sweet tall thick thin tiny tired warm weak wet white wide wild wise yellow young
"""
ADVERBS = """
again almost always carefully early finally gently happily maybe never now often quickly quietly rarely
really sadly slowly sometimes soon suddenly today together tomorrow yesterday
"""
NAMES = """
Anna Ben Bob Chloe David Emma Frank George Hannah Jack James Julia Kate Liam Lucy Maria Mark Max Mia Nick
Olivia Paul Peter Rose Ruth Sam Sarah Sophie Tom Vera Zoe
"""
PREPOSITIONS = (
    "above across after along around at behind below beside by from in inside into near on over past to under with"
)
TEMPLATES = (
    "{name} {verb} the {adj} {noun} {prep} the {noun2}.",
    "The {adj} {noun} {verb} {adv}.",
    "Did {name} see the {adj} {noun} {prep} the {noun2}?",
    "My {noun} {verb} a {adj} {noun2}, and then we {verb2} {adv}.",
    "{adv_cap}, the {noun} {verb} the {noun2}!",
    "Why is the {noun} so {adj} {adv}?",
    "We {verb} the {adj} {noun} and the {adj2} {noun2} {prep} the {noun3}.",
    "Please bring me the {adj} {noun} from the {noun2}.",
    "{name} and {name2} {verb} a {adj} {noun} {adv}.",
    "I think the {noun} is {adj}, but the {noun2} is {adj2}.",
    "Look at that {adj} {noun}! It {verb} my {noun2}.",
    "Maybe the {noun} {verb} the {noun2} {prep} the {adj} {noun3}.",
)


def _words(block: str) -> list[str]:
    return block.split()


@cache
def pronunciations() -> dict[str, tuple[str, ...]]:
    """The CMU dictionary from pocketsphinx: lower-case word -> ARPAbet phones without stress digits."""
    import pocketsphinx

    path = Path(pocketsphinx.get_model_path()) / "en-us" / "cmudict-en-us.dict"
    table: dict[str, tuple[str, ...]] = {}
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        word, *phones = line.split()
        if "(" not in word:  # keep the first pronunciation only
            table[word] = tuple(phones)
    return table


def sentence_phones(sentence: str) -> list[str]:
    table = pronunciations()
    words = [w.strip(".,!?").lower() for w in sentence.split()]
    return [p for w in words for p in table[w]]


def random_sentence(rng: random.Random) -> str:
    pick = {
        "noun": NOUNS, "noun2": NOUNS, "noun3": NOUNS, "verb": VERBS_PAST, "verb2": VERBS_PAST,
        "adj": ADJECTIVES, "adj2": ADJECTIVES, "adv": ADVERBS, "name": NAMES, "name2": NAMES,
        "prep": PREPOSITIONS,
    }  # fmt: skip
    values = {key: rng.choice(_words(block)) for key, block in pick.items()}
    values["adv_cap"] = values["adv"].capitalize()
    return rng.choice(TEMPLATES).format(**values)


def phonetically_varied_sentences(n: int, seed: int = 0, candidates_per_pick: int = 20) -> list[str]:
    """n sentences, each the candidate that adds the most unseen diphones (greedy set cover)."""
    rng = random.Random(seed)
    table = pronunciations()
    for block in (NOUNS, VERBS_PAST, ADJECTIVES, ADVERBS, NAMES, PREPOSITIONS):
        missing = [w for w in _words(block) if w.lower() not in table]
        assert not missing, f"words missing from the CMU dictionary: {missing}"
    seen: set[tuple[str, str]] = set()
    chosen: list[str] = []
    for _ in range(n):
        best, best_gain = "", -1
        for _ in range(candidates_per_pick):
            sentence = random_sentence(rng)
            phones = ["SIL", *sentence_phones(sentence), "SIL"]
            gain = len(set(itertools.pairwise(phones)) - seen)
            if gain > best_gain and sentence not in chosen:
                best, best_gain = sentence, gain
        phones = ["SIL", *sentence_phones(best), "SIL"]
        seen |= set(itertools.pairwise(phones))
        chosen.append(best)
    return chosen
