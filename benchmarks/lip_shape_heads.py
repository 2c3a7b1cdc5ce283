"""What limits the lip-shape head (training/lip_shape.py): variants of it trained on the same data, judged by
their error on the teacher's lip shapes of held-out voices.

    python -m emostream.benchmarks.lip_shape_heads [--steps 3000] [--held-out 120] [--speakers | --naming]

Each variant is trained as the recipe trains the head (the face recipe's examples, batch, seed, steps and
optimiser; the rest of the network frozen) and judged by the squared error of its lip shapes (`LIP_SHAPES`,
summed over the channels, mean over frames) against the teacher's, at the default lookahead, on the clean
audio of held-out voices and of as many training utterances:

- shipped: the checkpoint's head as it is, untrained here;
- recipe: the head the recipe trains (`train_lip_shape`);
- wider and deeper: two hidden layers of 512 instead of one of 256, on the same frozen encodings;
- own encoder: the head with a copy of the audio encoder, trained with it (the main encoder stays frozen).

If more width or an encoder of its own lowers the held-out error little, the head is not what limits the
lip shapes: what 58 ms of audio of an unseen voice leaves in doubt is. Writes
benchmarks/results/lip_shape_heads.{json,md}.

With `--speakers`, whether the number of speakers heard matters instead: the recipe's head trained
without two of the five speakers that are not espeak-ng (`DROPPED_SPEAKERS`), against the head trained
without as many utterances drawn at random from the other three; if the held-out error grows more
without the speakers than without the utterances, more speakers would teach it. Writes
benchmarks/results/lip_shape_heads_speakers.{json,md}.

With `--naming`, the same question for the head that names the viseme (`VisemeTemplates`): each variant's
classifier is judged by the share of held-out frames whose viseme (the teacher's) it names, and trained
by cross-entropy on them: the shipped and the recipe's head, two hidden layers of 512, an encoder of its
own; and the shipped head's posterior through a causal forward filter (an HMM over visemes, its
transitions and prior counted on the training examples' visemes), which weighs each frame's naming
against what came before. Writes benchmarks/results/lip_shape_heads_naming.{json,md}.
"""

from __future__ import annotations

import argparse
import copy
import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import cast

import numpy as np
import torch
from torch import Tensor, nn

from emostream.benchmarks.common import RESULTS, machine, write_result
from emostream.runtime.controls import FEATURE_MS, lookahead_from_ms
from emostream.runtime.layers import CausalConv1d, residual_convs
from emostream.runtime.models.face import N_EMOTIONS, FaceNetwork, VisemeTemplates, load_checkpoint, lookahead_timing
from emostream.runtime.rigs import FACE_CHANNELS
from emostream.training import train_face
from emostream.training.face_data import FaceExample, build_dataset
from emostream.training.lip_shape import LEARNING_RATE, SEED_OFFSET, naming_error, shape_error, train_lip_shape
from emostream.training.optimise import run_stage
from emostream.training.train_face import CHECKPOINT, add_data_arguments, frame_windows, make_batch, random_batch

Predict = Callable[[dict[str, Tensor]], Tensor]  # a batch -> (B * K, n shapes) lip shapes
DROPPED_SPEAKERS = ("flite:rms:", "festival:ked_diphone:")  # two of kal, rms, slt (flite), kal, ked (festival)


class LipShapeVariant(nn.Module):
    """A lip-shape head on the audio window and the emotion, as `FaceNetwork.lip_shape`, with `depth` hidden
    layers of `hidden`, `outputs` outputs (lip shapes, or viseme logits) and, with `own_encoder`, a
    trainable copy of the network's audio encoder."""

    def __init__(self, network: FaceNetwork, hidden: int, depth: int, own_encoder: bool, outputs: int) -> None:
        super().__init__()
        self.network = [network]  # in a list: not a submodule, so its weights stay out of this one's
        self.own_encoder = own_encoder
        if own_encoder:
            self.project = copy.deepcopy(network.project)
            self.convs = nn.ModuleList(copy.deepcopy(network.conv_layers))
        width = network.window * network.config.channels + N_EMOTIONS
        layers: list[nn.Module] = []
        for _ in range(depth):
            layers += [nn.Linear(width, hidden), nn.SiLU()]
            width = hidden
        self.mlp = nn.Sequential(*layers, nn.Linear(width, outputs))

    def encode(self, features: Tensor) -> Tensor:
        net = self.network[0]
        if not self.own_encoder:
            with torch.no_grad():
                return net.encode_sequence(features)
        B, M = features.shape[:2]
        h = self.project(((features - net.feature_mean) / net.feature_std).reshape(B, M, -1)).transpose(1, 2)
        return residual_convs([cast(CausalConv1d, conv) for conv in self.convs], h).transpose(1, 2)

    def forward(self, batch: dict[str, Tensor]) -> Tensor:
        windows, emotion = frame_inputs(self.network[0], self.encode(batch["features"]), batch)
        return self.mlp(torch.cat([windows.flatten(1), emotion], dim=1))


def frame_inputs(net: FaceNetwork, encoded: Tensor, batch: dict[str, Tensor]) -> tuple[Tensor, Tensor]:
    """Every frame's audio window of the encodings (B * K, window, C) and its emotion (B * K, 8), as
    `lip_shape_loss` feeds the head."""
    B, K = batch["mask"].shape
    delay, _ = lookahead_timing(int(batch["lookahead"]))
    windows = frame_windows(encoded, K, delay, net.window).reshape(B * K, net.window, -1)
    return windows, batch["emotion"][:, None].expand(B, K, -1).reshape(B * K, -1)


def network_head(net: FaceNetwork) -> Predict:
    """The network's own lip-shape head over a batch."""
    return lambda batch: net.lip_shapes(*frame_inputs(net, net.encode_sequence(batch["features"]), batch))


def network_naming(net: FaceNetwork) -> Predict:
    """The viseme logits of the network's head (`VisemeTemplates.classify`) over a batch."""
    head = net.lip_shape
    assert isinstance(head, VisemeTemplates), "--naming needs a checkpoint whose head names the viseme"

    def predict(batch: dict[str, Tensor]) -> Tensor:
        windows, emotion = frame_inputs(net, net.encode_sequence(batch["features"]), batch)
        return head.classify(torch.cat([windows.flatten(1), emotion], dim=1))

    return predict


def first_version(e: FaceExample) -> FaceExample:
    """The example with its first audio version (the clean one) and first render only."""
    return FaceExample([e.features[0]], [e.faces[0]], [e.emotions[0]], e.visemes, e.closure, [e.time_scales[0]])


def clean_batches(examples: list[FaceExample], lookahead: int) -> Iterator[dict[str, Tensor]]:
    """Batches of 24 of the examples' first audio version (the clean one) and first render, without the
    training warp, in order."""
    rng = np.random.default_rng(0)
    warp, train_face.VTLP_PROBABILITY = train_face.VTLP_PROBABILITY, 0.0
    try:
        for start in range(0, len(examples), 24):
            yield make_batch([first_version(e) for e in examples[start : start + 24]], rng, lookahead)
    finally:
        train_face.VTLP_PROBABILITY = warp


@torch.no_grad()
def lip_shape_error(predict: Predict, examples: list[FaceExample], shapes: list[int], lookahead: int) -> float:
    """Squared error of the clamped lip shapes against the teacher's, summed over channels, mean over frames
    of `clean_batches`."""
    total = frames = 0.0
    for batch in clean_batches(examples, lookahead):
        B, K = batch["mask"].shape
        target = batch["target"][..., shapes].reshape(B * K, -1)
        mask = batch["mask"].reshape(-1, 1)
        total += float((((predict(batch).clamp(0.0, 1.0) - target) ** 2) * mask).sum())
        frames += float(mask.sum())
    return total / frames


@torch.no_grad()
def naming_accuracy(predict: Predict, examples: list[FaceExample], lookahead: int,
                    hmm: tuple[np.ndarray, np.ndarray] | None = None) -> float:  # fmt: skip
    """Share of the frames of `clean_batches` whose viseme the logits `predict` gives name (their argmax);
    with `hmm` (transitions, prior), of the posteriors through `forward_filter`."""
    hits = frames = 0
    for batch in clean_batches(examples, lookahead):
        B, K = batch["mask"].shape
        posterior = torch.softmax(predict(batch), dim=-1).reshape(B, K, -1).numpy()
        for b in range(B):
            n = int(batch["mask"][b].sum())  # each example's frames come first, padding after
            named = posterior[b, :n] if hmm is None else forward_filter(posterior[b, :n], *hmm)
            hits += int((named.argmax(1) == batch["visemes"][b, :n].numpy()).sum())
            frames += n
    return hits / frames


def viseme_transitions(examples: list[FaceExample], n_visemes: int) -> tuple[np.ndarray, np.ndarray]:
    """(transitions (V, V): row v the chance of each viseme in the next frame, prior (V,)), counted on the
    examples' visemes at 60 fps, with one added to every count."""
    counts, prior = np.ones((n_visemes, n_visemes)), np.ones(n_visemes)
    for e in examples:
        v = e.visemes.astype(np.int64)
        np.add.at(counts, (v[:-1], v[1:]), 1)
        np.add.at(prior, v, 1)
    return counts / counts.sum(1, keepdims=True), prior / prior.sum()


def forward_filter(posterior: np.ndarray, transitions: np.ndarray, prior: np.ndarray) -> np.ndarray:
    """(T, V) per-frame posteriors -> (T, V) the HMM's causal posteriors: each frame's posterior over the
    prior (a likelihood up to a constant) times the last frame's filtered one carried by `transitions`."""
    out, carried = np.empty_like(posterior), prior
    for t, p in enumerate(posterior):
        carried = p / prior * carried
        out[t] = carried = carried / carried.sum()
        carried = carried @ transitions
    return out


def train_variant(variant: LipShapeVariant, examples: list[FaceExample], steps: int, batch_size: int, seed: int,
                  shapes: list[int] | None) -> float:  # fmt: skip
    """Trains `variant` as `train_lip_shape` trains the head, on the lip shapes `shapes`, or with None on
    naming the viseme; returns the mean loss of its last 100 steps."""
    rng = np.random.default_rng(seed + SEED_OFFSET)

    def loss() -> Tensor:
        batch = random_batch(examples, rng, batch_size)
        return naming_error(variant(batch), batch) if shapes is None else shape_error(variant(batch), batch, shapes)

    losses = run_stage("lip-shape head variant", list(variant.parameters()), loss, steps, LEARNING_RATE)
    variant.eval()
    return float(np.mean(losses[-100:]))


def manifest_voices(corpus: Path, held_out: bool, limit: int | None) -> list[str]:
    """The voice of each of the corpus's training (or held-out) utterances, in `build_dataset`'s order."""
    entries = json.loads((corpus / "manifest.json").read_text())["utterances"]
    return [e["voice_id"] for e in entries if e["held_out"] == held_out][:limit]


def example_voices(corpus: Path, examples: list[FaceExample], limit: int | None) -> list[str]:
    """The voice of each of the recipe's examples: the corpus's training utterances in order, then "real"."""
    voices = manifest_voices(corpus, False, limit)
    return voices + ["real"] * (len(examples) - len(voices))


def speaker_subsets(voices: list[str], seed: int) -> dict[str, list[int]]:
    """Indices of the examples kept without `DROPPED_SPEAKERS`, and without as many of the other non-espeak
    utterances, drawn at random."""
    dropped = {i for i, v in enumerate(voices) if v.startswith(DROPPED_SPEAKERS)}
    others = [i for i, v in enumerate(voices) if v.startswith(("flite:", "festival:")) and i not in dropped]
    drawn = set(np.random.default_rng(seed).choice(others, len(dropped), replace=False).tolist())
    return {"without two speakers": [i for i in range(len(voices)) if i not in dropped],
            "without as many utterances": [i for i in range(len(voices)) if i not in drawn]}  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Variants of the face network's lip-shape head, held-out error.")
    add_data_arguments(parser)
    parser.add_argument("--checkpoint", type=Path, default=CHECKPOINT)
    parser.add_argument("--steps", type=int, default=3000, help="optimizer steps of each variant")
    parser.add_argument("--held-out", type=int, default=120, help="held-out utterances judged")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--speakers", action="store_true",
                      help="the recipe's head without two speakers, and without as many utterances")  # fmt: skip
    mode.add_argument("--naming", action="store_true",
                      help="variants of the head that names the viseme, judged by the visemes named")  # fmt: skip
    args = parser.parse_args(argv)
    torch.set_num_threads(2)
    examples, _ = train_face.training_examples(args)  # before the checkpoint is used: forked workers
    held = build_dataset(args.corpus, n_audio=1, n_renders=1, held_out=True, limit=args.held_out)
    voices = manifest_voices(args.corpus, True, len(held))
    seen = examples[: args.held_out]
    network, _ = load_checkpoint(args.checkpoint)
    network.eval()
    for p in network.parameters():
        p.requires_grad_(False)
    shapes = [FACE_CHANNELS.index(name) for name in network.config.lip_shapes]
    lookahead = lookahead_from_ms(60.0)
    by_voice = {voice: [e for e, v in zip(held, voices, strict=True) if v == voice] for voice in sorted(set(voices))}
    rows: dict[str, dict] = {}
    measure = "accuracy" if args.naming else "error"
    hmm = viseme_transitions(examples, network.config.lip_visemes) if args.naming else None

    def judge(
        name: str, predict: Predict, began: float, final_loss: float | None = None, filtered: bool = False
    ) -> None:
        def score(some: list[FaceExample]) -> float:
            if args.naming:
                return naming_accuracy(predict, some, lookahead, hmm if filtered else None)
            return lip_shape_error(predict, some, shapes, lookahead)

        per_voice = {voice: score(some) for voice, some in by_voice.items()}
        rows[name] = {f"held_out_{measure}": score(held), f"training_{measure}": score(seen),
                      "final_training_loss": final_loss, "minutes": (time.time() - began) / 60,
                      f"held_out_{measure}_per_voice": per_voice}  # fmt: skip
        print(name, rows[name], flush=True)

    if args.speakers:
        for name, kept in speaker_subsets(example_voices(args.corpus, examples, args.limit), args.seed).items():
            began = time.time()
            subset = [examples[i] for i in kept]
            trained, record = train_lip_shape(network, subset, args.steps, args.batch_size, args.seed)
            judge(name, network_head(trained), began, record["final_loss"])
            rows[name]["training_examples"] = len(subset)
    elif args.naming:
        judge("shipped", network_naming(network), time.time())
        judge("shipped, forward filter", network_naming(network), time.time(), filtered=True)
        began = time.time()
        trained, record = train_lip_shape(network, examples, args.steps, args.batch_size, args.seed)
        judge("recipe", network_naming(trained), began, record["final_loss"])
        for name, hidden, depth, own in (("wider and deeper", 512, 2, False), ("own encoder", 256, 1, True)):
            began = time.time()
            torch.manual_seed(args.seed + SEED_OFFSET)
            variant = LipShapeVariant(network, hidden, depth, own, network.config.lip_visemes)
            judge(name, variant, began, train_variant(variant, examples, args.steps, args.batch_size, args.seed, None))
    else:
        judge("shipped", network_head(network), time.time())
        began = time.time()
        trained, record = train_lip_shape(network, examples, args.steps, args.batch_size, args.seed)
        judge("recipe", network_head(trained), began, record["final_loss"])
        variants = (("wider and deeper", 512, 2, False), ("own encoder", network.config.hidden, 1, True))
        for name, hidden, depth, own in variants:
            began = time.time()
            torch.manual_seed(args.seed + SEED_OFFSET)
            variant = LipShapeVariant(network, hidden, depth, own, len(shapes))
            final = train_variant(variant, examples, args.steps, args.batch_size, args.seed, shapes)
            judge(name, variant, began, final)
    result_name = "lip_shape_heads" + ("_speakers" if args.speakers else "_naming" if args.naming else "")
    result = {"benchmark": result_name, "machine": machine(), "checkpoint": str(args.checkpoint.name),
              "steps": args.steps, "held_out_utterances": len(held), "training_utterances_judged": len(seen),
              "lookahead_ms": lookahead * FEATURE_MS, "variants": rows}  # fmt: skip
    write_result(result_name, result)
    judged = ("share of the frames whose viseme (the teacher's) the classifier names" if args.naming else
              f"squared error of the lip shapes, summed over {len(shapes)} channels")  # fmt: skip
    lines = [f"Lip-shape head variants ({result['machine']['cpu']}, {result['machine']['date']}; {args.steps} steps "
             f"each; {judged}, clean audio, {result['lookahead_ms']:.0f} ms lookahead)", "",
             "| variant | held-out voices | training voices | final training loss (augmented) | minutes |",
             "|---|---|---|---|---|"]  # fmt: skip
    for name, row in rows.items():
        loss = "" if row["final_training_loss"] is None else f"{row['final_training_loss']:.4f}"
        scores = f"{row[f'held_out_{measure}']:.4f} | {row[f'training_{measure}']:.4f}"
        lines.append(f"| {name} | {scores} | {loss} | {row['minutes']:.1f} |")
    if args.naming:
        lines += ["", "The recipe's training loss adds its templates' squared error to the naming's cross-entropy."]
    lines += ["", f"Held-out {measure} per voice:", "", "| variant | " + " | ".join(by_voice) + " |",
              "|---|" + "---|" * len(by_voice)]  # fmt: skip
    for name, row in rows.items():
        lines.append(
            f"| {name} | " + " | ".join(f"{e:.4f}" for e in row[f"held_out_{measure}_per_voice"].values()) + " |"
        )
    (RESULTS / f"{result_name}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
