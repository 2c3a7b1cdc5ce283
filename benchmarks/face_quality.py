"""Face quality benchmark on held-out voices: lip-sync, emotion, diversity, lookahead trade-off, compute.

    python -m emostream.benchmarks.face_quality [--utterances 60] [--checkpoint runtime/assets/face.pt]

Prints Markdown tables and writes benchmarks/results/face_quality.{json,md} and face_quality.png.
Definitions (issue 3): bilabial closure hit rate (the lips close, gap < 0.1, at least once in each p/b/m
widened by one frame), false closures in the central half of open vowels, jawOpen correlation and mouth
MAE against the teacher (also by sampler steps), lip-reading accuracy (a viseme classifier trained on
teacher motion, applied to generated and to teacher motion), emotion accuracy (a classifier trained on
teacher frames), diversity (std across 5 seeds), and compute per frame (batch 1, one core) and
throughput (batch 64).
"""

from __future__ import annotations

import argparse
import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from emostream.benchmarks.common import machine, step_cost, write_report
from emostream.clients.avatar.vrm import arkit_to_vrm, presets_as_arkit
from emostream.runtime.audio import N_MELS, LogMelFrontEnd
from emostream.runtime.blinks import apply_blinks
from emostream.runtime.controls import FEATURE_MS, emotion_vector, lookahead_from_ms
from emostream.runtime.models.face import LIP_SHAPES, FaceGenerator, FaceNetwork, load_checkpoint, with_closure_band
from emostream.runtime.pitch import N_PITCH, model_rate, pitch_frames
from emostream.runtime.protocol import EMOTIONS
from emostream.runtime.rigs import ARKIT_BLENDSHAPES, FACE_CHANNELS, FACE_FPS
from emostream.runtime.slot_table import SILENT_FEATURE as SILENT_FEATURES
from emostream.runtime.step import FlatState
from emostream.training.align import Phone
from emostream.training.corpus import build, load_utterance
from emostream.training.face_data import supported_rate
from emostream.training.gesture_evaluation import predict, train_classifier
from emostream.training.metrics import closure_rates
from emostream.training.teacher_face import MOUTH_CHANNELS, teach
from emostream.training.visemes import VISEMES

ROOT = Path(__file__).resolve().parent.parent
CH = {n: i for i, n in enumerate(FACE_CHANNELS)}
LIP_SHAPE_CHANNELS = [CH[name] for name in LIP_SHAPES]  # the channels the lip-shape head sets
MOUTH = [CH[n] for n in MOUTH_CHANNELS]
REVERSAL_STEP, REVERSAL_FRAMES = 0.1, 4  # a lip shape's change undone within 67 ms: a twitch
LIDS_LOWERED = 0.25  # eyelid closure that reads as drowsy or half shut, not as open eyes
UPPER = [CH[n] for n in FACE_CHANNELS if n.startswith(("brow", "eyeBlink", "eyeWide", "eyeSquint"))]
HEAD = [
    CH[n] for n in ("headYaw", "headPitch", "headRoll", "leftEyeYaw", "leftEyePitch", "rightEyeYaw", "rightEyePitch")
]
LOOKAHEADS_MS = (0.0, 30.0, 60.0, 100.0)
SAMPLER_STEPS = (1, 2, 4)  # the server never sheds to fewer steps than asked: this is why (docs/server.md)
DEFAULT_LOOKAHEAD_MS = 60.0
# Training steps of the lip-reading and emotion classifiers: a fixed budget, so that every run judges by the
# same classifiers (a time budget gave this machine's slow days a less trained judge).
CLASSIFIER_STEPS = 4000


@dataclass
class Utterance:
    audio: np.ndarray
    rate: int
    phones: list[Phone]
    features: np.ndarray  # (T_f, 80) log-mel, exactly as streamed


def load_set(corpus: Path, held_out: bool, limit: int) -> list[Utterance]:
    manifest = json.loads((corpus / "manifest.json").read_text())
    entries = [e for e in manifest["utterances"] if e["held_out"] == held_out][:limit]
    out = []
    for e in entries:
        audio, rate, phones = load_utterance(corpus / f"{e['id']}.npz")
        audio, rate = supported_rate(audio, rate)
        out.append(Utterance(audio, rate, phones, LogMelFrontEnd(rate).offline(audio)))
    return out


@torch.no_grad()
def generate(generator: FaceGenerator, utterances: list[Utterance], emotion: np.ndarray, seed: int,
             estimator: torch.nn.Module | None = None) -> list[np.ndarray]:  # fmt: skip
    """Every utterance streamed through the step function, all in one batch (one slot each). With an
    `estimator` (runtime/models/voice_emotion.py) the emotion input is its estimate from the same features,
    step by step ("auto"), instead of the constant `emotion`."""
    B = len(utterances)
    n_frames = [math.ceil(u.audio.size / u.rate * FACE_FPS) for u in utterances]
    n_steps = max(n_frames) + generator.delay
    feats = np.full((B, 2 * n_steps, N_MELS), SILENT_FEATURES, np.float32)
    for b, u in enumerate(utterances):
        f = u.features[: 2 * n_steps - generator.prefix]
        feats[b, generator.prefix : generator.prefix + f.shape[0]] = f
    gen = torch.Generator().manual_seed(seed)
    blink_seeds = seed * 100_003 + np.arange(B)  # a stream's own blinks: not all in the same frames
    state = generator.init_state(B)
    emotions = torch.from_numpy(np.tile(emotion, (B, n_steps, 1)))
    if estimator is not None:
        heard = feats
        if estimator.pitch:  # the same frames' pitch beside them (silence: none)
            heard = np.concatenate([feats, np.zeros((B, 2 * n_steps, N_PITCH), np.float32)], axis=2)
            for b, u in enumerate(utterances):
                n = min(u.features.shape[0], 2 * n_steps - generator.prefix)
                pitch = pitch_frames(model_rate(u.audio, u.rate), n)
                heard[b, generator.prefix : generator.prefix + n, N_MELS:] = pitch
        split = estimator.split(torch.from_numpy(heard))
        emotions = estimator.as_applied(estimator.estimates(split))["emotion"]  # as the server applies them
    yes, no = torch.ones(B, dtype=torch.bool), torch.zeros(B, dtype=torch.bool)
    frames = []
    for s in range(n_steps):
        inputs = {"features": torch.from_numpy(feats[:, 2 * s : 2 * s + 2]), "emotion": emotions[:, s : s + 1]}
        noise = torch.randn((B, len(FACE_CHANNELS)), generator=gen)
        outputs, state = generator.step(inputs, state, noise, no, yes)
        if s >= generator.delay:  # the eyelids as the server sends them
            index = np.full(B, s - generator.delay)
            face = outputs["face"][:, 0].numpy()
            frames.append(apply_blinks(face, blink_seeds, index, emotions[:, s].numpy()))
    stacked = np.stack(frames, axis=1)
    return [stacked[b, : n_frames[b]] for b in range(B)]


def windows(face: np.ndarray, channels: list[int], half: int) -> np.ndarray:
    """(T, C) -> (T, (2 half + 1) * len(channels)): each frame with its neighbours, edge-padded."""
    x = np.pad(face[:, channels], ((half, half), (0, 0)), mode="edge")
    return np.concatenate([x[i : i + face.shape[0]] for i in range(2 * half + 1)], axis=1)


def emotion_features(face: np.ndarray) -> np.ndarray:
    """Per 0.5 s segment, the mean of every blendshape: the expression, not the motion's texture (blinks,
    brow raises), which differs between any two takes of one emotion."""
    seg = FACE_FPS // 2
    n = face.shape[0] // seg
    return face[: n * seg, :52].reshape(n, seg, 52).mean(1)


def through_presets(face: np.ndarray) -> np.ndarray:
    """Face frames as an avatar with only the VRM presets shows them: fitted, then rebuilt."""
    out = face.copy()
    for k, frame in enumerate(face):
        out[k, : len(ARKIT_BLENDSHAPES)] = presets_as_arkit(arkit_to_vrm(frame))
    return out


def expression_metrics(faces: list[np.ndarray]) -> dict[str, float]:
    """Articulation kept (the jaw's 5-95% range over the take), surprise readable (brows, eyes) and the eyes
    open (the share of frames whose lids are lowered by a quarter or more, blinks included; the teacher's
    first blink comes up to a blink interval into a take, so on short takes it shows fewer)."""
    face = np.concatenate(faces)
    jaw = face[:, CH["jawOpen"]]
    lids = face[:, [CH["eyeBlinkLeft"], CH["eyeBlinkRight"]]].mean(axis=1)
    return {
        "lids_lowered_share": float((lids >= LIDS_LOWERED).mean()),
        "jaw_range": float(np.percentile(jaw, 95) - np.percentile(jaw, 5)),
        "brow_inner_up_mean": float(face[:, CH["browInnerUp"]].mean()),
        "eye_wide_mean": float(face[:, [CH["eyeWideLeft"], CH["eyeWideRight"]]].mean()),
    }


def lip_metrics(generated: list[np.ndarray], teacher: list[np.ndarray], utts: list[Utterance]) -> dict[str, float]:
    hits, falses, corr, mae = [], [], [], []
    for g, t, u in zip(generated, teacher, utts, strict=True):
        n = min(len(g), len(t))
        h, f, nb, nv = closure_rates(g, u.phones)
        hits += [h] * nb
        falses += [f] * nv
        corr.append(np.corrcoef(g[:n, CH["jawOpen"]], t[:n, CH["jawOpen"]])[0, 1])
        mae.append(np.abs(g[:n, MOUTH] - t[:n, MOUTH]).mean())
    return {
        "closure_hit_rate": float(np.nanmean(hits)),
        "false_closure_rate": float(np.nanmean(falses)),
        "jaw_correlation": float(np.nanmean(corr)),
        "mouth_mae": float(np.mean(mae)),
    }


def train_lipreader(utterances: list[Utterance], steps: int = CLASSIFIER_STEPS) -> torch.nn.Module:
    """Lip-reading: visemes from a window of mouth motion, trained on teacher motion (random emotions) of
    `utterances` (training voices), for a fixed number of steps: the same judge on every run and machine."""
    x, y = [], []
    for u in utterances:
        out = teach(u.phones, u.audio, u.rate, str(np.random.default_rng(len(x)).choice(EMOTIONS)), 1.0, seed=2)
        x.append(windows(out.face, MOUTH, 3))
        y.append(out.visemes)
    return train_classifier(np.concatenate(x), np.concatenate(y), len(VISEMES), steps=steps)


def viseme_truth(utterance: Utterance) -> np.ndarray:
    """The teacher's viseme of each frame of an utterance (anything with phones, audio and rate)."""
    return teach(utterance.phones, utterance.audio, utterance.rate).visemes


def lipreading_hits(lipreader: torch.nn.Module, face: np.ndarray, truth: np.ndarray) -> tuple[int, int]:
    """(frames whose viseme the lip-reader reads right from `face`, frames judged)."""
    truth = truth[: len(face)]
    return int((predict(lipreader, windows(face, MOUTH, 3))[: len(truth)] == truth).sum()), len(truth)


def lipreading_accuracy(lipreader: torch.nn.Module, faces: list[np.ndarray], truths: list[np.ndarray]) -> float:
    """Share of frames whose viseme the lip-reader reads right, over all of `faces`."""
    hits = [lipreading_hits(lipreader, f, t) for f, t in zip(faces, truths, strict=True)]
    return sum(h for h, _ in hits) / sum(n for _, n in hits)


def lip_shape_jitter(faces: list[np.ndarray]) -> float:
    """How unsteadily the lips change shape: the mean absolute second difference from frame to frame of the
    lip-shape channels (LIP_SHAPES), over every frame of `faces`."""
    return float(np.mean(np.concatenate([np.abs(np.diff(f[:, LIP_SHAPE_CHANNELS], n=2, axis=0)).mean(1)
                                         for f in faces])))  # fmt: skip


def lip_shape_reversals(faces: list[np.ndarray], step: float = REVERSAL_STEP, within: int = REVERSAL_FRAMES) -> float:
    """How often the lips pop into a shape and straight back out: per second, summed over the lip-shape
    channels, the changes of at least `step` from one frame to the next that a change of at least `step`
    the other way follows within `within` frames."""
    count, frames = 0, 0
    for face in faces:
        frames += face.shape[0]
        for change in np.diff(face[:, LIP_SHAPE_CHANNELS], axis=0).T:
            big = np.flatnonzero(np.abs(change) >= step)
            for i in big:
                after = big[(big > i) & (big <= i + within)]
                count += bool(np.any(np.sign(change[after]) != np.sign(change[i])))
    return count / frames * FACE_FPS


def with_teacher_lip_shapes(faces: list[np.ndarray], teacher: list[np.ndarray]) -> list[np.ndarray]:
    """`faces` with the lip-shape channels (`LIP_SHAPES`) replaced by the teacher's, frame by frame."""
    out = []
    for face, taught in zip(faces, teacher, strict=True):
        n = min(len(face), len(taught))
        mixed = face[:n].copy()
        mixed[:, LIP_SHAPE_CHANNELS] = taught[:n, LIP_SHAPE_CHANNELS]
        out.append(mixed)
    return out


def compute_cost(network: FaceNetwork, lookahead: int, steps: int, served: bool = False) -> dict[str, float]:
    """ms per frame at batch 1 on one thread, and frames per second at batch 64, eager; with `served`, also
    (keys prefixed onnx_) in ONNX Runtime as `emostream serve` runs the face by default (engines.factory
    resolve_backend): its state in one tensor, compact batches without masks, the graph from the cache."""
    cost = step_cost(FaceGenerator(network, lookahead=lookahead, n_steps=steps).eval())
    if served:
        from emostream.engines.factory import make_backend

        face = FlatState(FaceGenerator(network, lookahead=lookahead, n_steps=steps, masks=False)).eval()
        cost |= {f"onnx_{key}": value for key, value in step_cost(make_backend("onnx", face)).items()}
    return cost


def run(checkpoint: Path, corpus: Path, n_utterances: int, n_train: int,
        classifier_steps: int = CLASSIFIER_STEPS) -> dict:  # fmt: skip
    network, metadata = load_checkpoint(checkpoint)
    if not (corpus / "manifest.json").exists():
        build(corpus, n_utterances, seed=7, only_held_out=True)
    held = load_set(corpus, held_out=True, limit=n_utterances)
    train_set = load_set(corpus, held_out=False, limit=n_train)
    la_default = lookahead_from_ms(DEFAULT_LOOKAHEAD_MS)
    neutral = emotion_vector("neutral", 1.0)
    teacher_neutral = [teach(u.phones, u.audio, u.rate, "neutral", 1.0, seed=1).face for u in held]

    lipreader = train_lipreader(train_set or held, classifier_steps)

    truths = [viseme_truth(u) for u in held]

    def lipread_accuracy(faces: list[np.ndarray]) -> float:
        return lipreading_accuracy(lipreader, faces, truths)

    # Emotion recognisability: a classifier on teacher frames of training voices.
    x, y = [], []
    for i, u in enumerate(train_set or held):
        for e, emotion in enumerate(EMOTIONS):
            feats = emotion_features(teach(u.phones, u.audio, u.rate, emotion, 1.0, seed=i * 8 + e).face)
            x.append(feats)
            y.append(np.full(len(feats), e))
    emotion_classifier = train_classifier(np.concatenate(x), np.concatenate(y), len(EMOTIONS), steps=classifier_steps)

    result: dict = {
        "benchmark": "face_quality",
        "machine": machine(),
        "checkpoint": checkpoint.name,
        "model_created": metadata.get("created"),
        "held_out_utterances": len(held),
        "held_out_voices": metadata.get("data", {}).get("voices_held_out"),
    }
    teacher_lipread = lipread_accuracy(teacher_neutral)

    # Lookahead trade-off (neutral).
    generated: dict[tuple[int, int], list[np.ndarray]] = {}

    def neutral_faces(lookahead: int, steps: int) -> list[np.ndarray]:
        """The held-out utterances in neutral, seed 1: generated once per lookahead and step count."""
        if (lookahead, steps) not in generated:
            gen = FaceGenerator(network, lookahead=lookahead, n_steps=steps).eval()
            generated[lookahead, steps] = generate(gen, held, neutral, seed=1)
        return generated[lookahead, steps]

    result["lookahead"] = {}
    for ms in tqdm(LOOKAHEADS_MS, desc="lookaheads", unit="lookahead"):
        la = lookahead_from_ms(ms)
        faces = neutral_faces(la, 2)
        row = lip_metrics(faces, teacher_neutral, held) | {"lipread_accuracy": lipread_accuracy(faces)}
        result["lookahead"][f"{la * FEATURE_MS:.1f}"] = row
    result["teacher_lipread_accuracy"] = teacher_lipread
    # What limits lip-reading: the model's frames at the default lookahead with the lip-shape channels
    # (runtime/models/face.py, LIP_SHAPES) taken from the teacher.
    default_faces = neutral_faces(la_default, 2)
    result["lipread_with_teacher_lip_shapes"] = lipread_accuracy(
        with_teacher_lip_shapes(default_faces, teacher_neutral)
    )
    result["lip_shape_jitter"] = {"model": lip_shape_jitter(default_faces),
                                  "teacher": lip_shape_jitter(teacher_neutral)}  # fmt: skip
    result["lip_shape_reversals_per_s"] = {"model": lip_shape_reversals(default_faces),
                                           "teacher": lip_shape_reversals(teacher_neutral)}  # fmt: skip

    # Sampler steps (neutral, default lookahead): how far the face moves from the two the model ships with.
    result["steps"] = {}
    for steps in tqdm(SAMPLER_STEPS, desc="sampler steps", unit="count"):
        faces = neutral_faces(la_default, steps)
        row = lip_metrics(faces, teacher_neutral, held)
        row["jaw_open_mean"] = float(np.concatenate([f[:, CH["jawOpen"]] for f in faces]).mean())
        row["ms_per_frame_batch1"] = compute_cost(network, la_default, steps)["ms_per_frame_batch1_1core"]
        result["steps"][str(steps)] = row
    result["teacher_jaw_open_mean"] = float(np.concatenate([f[:, CH["jawOpen"]] for f in teacher_neutral]).mean())

    # Through VRM presets: what an avatar without ARKit morphs shows (docs/avatars.md), judged alike.
    result["vrm_presets"] = {"arkit": lip_metrics(default_faces, teacher_neutral, held),
                             "presets": lip_metrics([through_presets(f) for f in default_faces], teacher_neutral,
                                                    held)}  # fmt: skip

    # Emotions at full intensity, default lookahead.
    gen = FaceGenerator(network, lookahead=la_default, n_steps=2).eval()
    result["emotions"] = {}
    for e, emotion in enumerate(tqdm(EMOTIONS, desc="emotions", unit="emotion")):
        faces = default_faces if emotion == "neutral" else generate(gen, held, emotion_vector(emotion, 1.0), seed=1)
        teacher = [teach(u.phones, u.audio, u.rate, emotion, 1.0, seed=1).face for u in held]
        row = lip_metrics(faces, teacher, held)
        preds = np.concatenate([predict(emotion_classifier, emotion_features(f)) for f in faces])
        row["emotion_accuracy"] = float((preds == e).mean())
        row |= expression_metrics(faces)
        row["teacher"] = expression_metrics(teacher)
        result["emotions"][emotion] = row
    neutral_hits = result["emotions"]["neutral"]["closure_hit_rate"]
    result["emotion_accuracy_mean"] = float(np.mean([r["emotion_accuracy"] for r in result["emotions"].values()]))
    result["worst_closure_drop_vs_neutral"] = float(
        max(neutral_hits - r["closure_hit_rate"] for r in result["emotions"].values())
    )
    neutral_jaw = result["emotions"]["neutral"]["jaw_range"]
    for row in result["emotions"].values():
        row["jaw_range_vs_neutral"] = row["jaw_range"] / neutral_jaw

    # Diversity: 5 seeds on the same audio.
    subset = held[: min(20, len(held))]
    runs = np.stack([np.concatenate(generate(gen, subset, neutral, seed=s)) for s in range(5)])  # (5, T, C)
    std = runs.std(axis=0).mean(axis=0)
    result["diversity"] = {
        "mouth_seed_std": float(std[MOUTH].mean()),
        "upper_face_seed_std": float(std[UPPER].mean()),
        "head_eyes_seed_std": float(std[HEAD].mean()),
    }
    result["diversity"]["upper_over_mouth"] = (
        result["diversity"]["upper_face_seed_std"] / result["diversity"]["mouth_seed_std"]
    )
    result["compute"] = compute_cost(network, la_default, 2, served=True)
    if network.config.closure_telephone_band:  # what the closure head's own encoder pass costs
        without = compute_cost(with_closure_band(network, telephone=False), la_default, 2)
        result["compute"] |= {f"{key}_without_closure_pass": value for key, value in without.items()}
    return result


def markdown(result: dict) -> str:
    m = result["machine"]
    lines = [
        f"Face quality on {result['held_out_utterances']} held-out utterances ({m['cpu']}, {m['date']}); "
        f"checkpoint {result['checkpoint']} ({result['model_created']})",
        "",
    ]
    lines += [
        "| lookahead (ms) | closure hit rate | false closures | jaw corr | mouth MAE | lip-reading acc |",
        "|---|---|---|---|---|---|",
    ]
    for ms, r in result["lookahead"].items():
        lines.append(
            f"| {ms} | {r['closure_hit_rate']:.3f} | {r['false_closure_rate']:.3f} | "
            f"{r['jaw_correlation']:.3f} | {r['mouth_mae']:.4f} | {r['lipread_accuracy']:.3f} |"
        )
    lines += [
        "",
        f"Teacher's own lip-reading accuracy: {result['teacher_lipread_accuracy']:.3f}; the model's "
        f"frames (58 ms) with the teacher's lip shapes: {result['lipread_with_teacher_lip_shapes']:.3f}",
        "",
        f"Lip-shape jitter (58 ms; mean absolute second difference of the lip-shape channels a frame): "
        f"{result['lip_shape_jitter']['model']:.4f} (teacher {result['lip_shape_jitter']['teacher']:.4f}); "
        f"reversals (a change of {REVERSAL_STEP} or more undone within {REVERSAL_FRAMES} frames, a second, "
        f"summed over the channels): {result['lip_shape_reversals_per_s']['model']:.2f} "
        f"(teacher {result['lip_shape_reversals_per_s']['teacher']:.2f})",
        "",
    ]
    lines += [
        f"| sampler steps (58 ms) | closure hit rate | false closures | jaw corr | mouth MAE | jawOpen mean "
        f"(teacher {result['teacher_jaw_open_mean']:.3f}) | ms per frame, batch 1, one core |",
        "|---|---|---|---|---|---|---|",
    ]
    for steps, r in result["steps"].items():
        lines.append(
            f"| {steps} | {r['closure_hit_rate']:.3f} | {r['false_closure_rate']:.3f} | "
            f"{r['jaw_correlation']:.3f} | {r['mouth_mae']:.4f} | {r['jaw_open_mean']:.3f} | "
            f"{r['ms_per_frame_batch1']:.3f} |"
        )
    lines += [""]
    lines += [
        "| emotion (intensity 1, 58 ms) | closure hit rate | false closures | jaw corr | emotion acc | "
        "jaw range / neutral | browInnerUp (teacher) | eyeWide (teacher) | lids lowered (teacher) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for emotion, r in result["emotions"].items():
        lines.append(
            f"| {emotion} | {r['closure_hit_rate']:.3f} | {r['false_closure_rate']:.3f} | "
            f"{r['jaw_correlation']:.3f} | {r['emotion_accuracy']:.3f} | {r['jaw_range_vs_neutral']:.2f} | "
            f"{r['brow_inner_up_mean']:.2f} ({r['teacher']['brow_inner_up_mean']:.2f}) | "
            f"{r['eye_wide_mean']:.2f} ({r['teacher']['eye_wide_mean']:.2f}) | "
            f"{r['lids_lowered_share']:.3f} ({r['teacher']['lids_lowered_share']:.3f}) |"
        )
    d, c, v = result["diversity"], result["compute"], result["vrm_presets"]
    lines += [
        "",
        f"Mean emotion accuracy {result['emotion_accuracy_mean']:.3f}; largest closure drop against neutral "
        f"{result['worst_closure_drop_vs_neutral']:.3f}; jaw range (5-95%) against neutral "
        f"{min(r['jaw_range_vs_neutral'] for r in result['emotions'].values()):.2f} to "
        f"{max(r['jaw_range_vs_neutral'] for r in result['emotions'].values()):.2f}. Lids lowered: the share "
        "of frames whose eyelids are a quarter shut or more, blinks included (the teacher's first blink comes "
        "up to a blink interval into a take, so on these short takes it shows fewer).",
        "",
        f"Diversity over 5 seeds (std): mouth {d['mouth_seed_std']:.4f}, "
        f"upper face {d['upper_face_seed_std']:.4f} "
        f"({d['upper_over_mouth']:.1f}x mouth), head and eyes {d['head_eyes_seed_std']:.4f} rad.",
        "",
        "Lip-sync through VRM presets (an avatar without ARKit morphs: the frame fitted to aa, ih, ou, ee, oh "
        "and the emotion presets, then rebuilt): closure hit / false closures "
        f"{v['presets']['closure_hit_rate']:.3f} / {v['presets']['false_closure_rate']:.3f} against "
        f"{v['arkit']['closure_hit_rate']:.3f} / {v['arkit']['false_closure_rate']:.3f} through ARKit morphs.",
        "",
        f"Compute: {c['ms_per_frame_batch1_1core']:.3f} ms per frame at batch 1 on one core; "
        f"{c['fps_batch64_1core']:.0f} frames/s at batch 64 on one core.",
    ]
    if "onnx_ms_per_frame_batch1_1core" in c:
        lines.append(f"Served (ONNX Runtime, the server's default on the CPU): "
                     f"{c['onnx_ms_per_frame_batch1_1core']:.3f} ms per frame at batch 1 on one core; "
                     f"{c['onnx_fps_batch64_1core']:.0f} frames/s at batch 64.")  # fmt: skip
    if "ms_per_frame_batch1_1core_without_closure_pass" in c:
        lines.append(f"Without the closure head's telephone-band pass (the same weights, the head hearing the whole "
                     f"band), measured after it: {c['ms_per_frame_batch1_1core_without_closure_pass']:.3f} ms, "
                     f"{c['fps_batch64_1core_without_closure_pass']:.0f} frames/s.")  # fmt: skip
    return "\n".join(lines)


def plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4))
    ms = [float(k) for k in result["lookahead"]]
    for key in ("closure_hit_rate", "jaw_correlation", "lipread_accuracy", "false_closure_rate"):
        a.plot(ms, [r[key] for r in result["lookahead"].values()], marker="o", label=key)
    a.set_xlabel("lookahead (ms)")
    a.set_title("lip-sync against lookahead")
    a.legend(fontsize=8)
    names = list(result["emotions"])
    x = np.arange(len(names))
    b.bar(x - 0.2, [result["emotions"][n]["closure_hit_rate"] for n in names], 0.4, label="closure hit rate")
    b.bar(x + 0.2, [result["emotions"][n]["emotion_accuracy"] for n in names], 0.4, label="emotion accuracy")
    b.set_xticks(x, names, rotation=30, fontsize=8)
    b.set_ylim(0, 1.05)
    b.set_title("per emotion (intensity 1)")
    b.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", type=Path, default=ROOT / "runtime" / "assets" / "face.pt")
    parser.add_argument("--corpus", type=Path, default=ROOT / "training" / "data" / "corpus")
    parser.add_argument("--utterances", type=int, default=60, help="held-out utterances to evaluate")
    parser.add_argument("--train-utterances", type=int, default=150, help="for the lip-reading and emotion classifiers")
    parser.add_argument("--classifier-steps", type=int, default=CLASSIFIER_STEPS, help="training steps of each one")
    parser.add_argument("--name", default="face_quality")
    args = parser.parse_args(argv)
    torch.set_num_threads(2)
    result = run(args.checkpoint, args.corpus, args.utterances, args.train_utterances, args.classifier_steps)
    write_report(args.name, result, markdown(result), plot)


if __name__ == "__main__":
    main()
