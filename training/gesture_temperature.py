"""Fit the gesture model's sampling temperature per emotion, on training voices.

    emostream train gesture-temperature [--checkpoint runtime/assets/gesture.pt] [--out same]

One temperature for all emotions cannot be right for all of them: at 0.6 the shipped model moved sad
faster than the teacher and neutral, surprised and angry much slower (docs/gestures.md, "A temperature per
emotion"). For each emotion this generates training-voice takes at a grid of temperatures and picks the
one whose motion an emotion classifier, trained on teacher motion of other training takes, reads as that
emotion most often; among equals, the one whose mean upper-body speed is nearest the teacher's on the same
takes. The network then carries the 8 temperatures (`GestureConfig.emotion_temperature`); its generators
blend them by the emotion weights. Held-out voices are left to the benchmark.

With `--guidance G` the takes are sampled with classifier-free guidance G on the emotion, and the network
carries G too (`GestureConfig.guidance`), so `emostream animate` and the server sample as the fit did: the
temperature that reads best depends on the guidance.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from emostream.runtime.models.gesture import (
    GestureNetwork,
    load_gesture_checkpoint,
    save_gesture_checkpoint,
    with_config,
)
from emostream.runtime.protocol import EMOTIONS
from emostream.training.gesture_evaluation import (
    STYLE_NAMES,
    Take,
    generate,
    load_takes,
    motion_metrics,
    positions,
    predict,
    teacher,
    train_classifiers,
    training_motion,
    window_features,
)
from emostream.training.motion_judge import judge, train_emotion_judges

ROOT = Path(__file__).resolve().parent.parent
GRID = (0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)
TAKES = 12  # training-voice takes per emotion and temperature
CLASSIFIER_TAKES = 48  # other training-voice takes, whose teacher motion trains the emotion classifier
CLASSIFIER_STEPS = 3000
CRITERIA = ("recognised", "speed", "motion")


def speed(pos: np.ndarray) -> float:
    """Mean upper-body speed (m/s) of (T, 55, 3) joint positions."""
    return motion_metrics(pos)["speed_m_s"]


def temperature_matching_speed(target: float, speeds: list[float], grid: tuple[float, ...] = GRID) -> float:
    """The temperature at which the model's speed reaches `target`, interpolated on the grid (the
    `--criterion speed` fit). Speed rises with temperature; the running maximum irons out dips."""
    rising = np.maximum.accumulate(np.asarray(speeds)) + 1e-9 * np.arange(len(speeds))
    return float(np.interp(target, rising, grid))


def pick_temperature(recognised: list[float], speeds: list[float], teacher_speed: float,
                     grid: tuple[float, ...] = GRID, speed_tolerance: float | None = None) -> float:  # fmt: skip
    """The grid temperature read right most often; among equals, the one moving nearest the teacher's speed.
    With `speed_tolerance`, only temperatures whose speed is within that share of the teacher's compete
    (the one nearest it if none is): the top of the grid was read best for neutral and happy but moved
    them nearly twice as fast as the teacher, with twice its jerk (docs/gestures.md)."""
    allowed = list(range(len(grid)))
    if speed_tolerance is not None:
        near = [g for g in allowed if abs(speeds[g] - teacher_speed) <= speed_tolerance * teacher_speed]
        allowed = near or [min(allowed, key=lambda g: abs(speeds[g] - teacher_speed))]
    best = max(recognised[g] for g in allowed)
    candidates = [g for g in allowed if recognised[g] == best]
    return float(grid[min(candidates, key=lambda g: abs(speeds[g] - teacher_speed))])


def training_takes(corpus: Path, n_takes: int = TAKES, n_classifier_takes: int = CLASSIFIER_TAKES
                   ) -> tuple[list[Take], list[Take]]:  # fmt: skip
    """Training-voice takes of 4.5 s or more: `n_takes` to fit on and the next ones for the classifier."""
    loaded = load_takes(corpus, False, 2 * (n_takes + n_classifier_takes))
    long_enough = [t for t in loaded if t.audio.size / t.rate >= 4.5]
    takes, others = long_enough[:n_takes], long_enough[n_takes : n_takes + n_classifier_takes]
    if not takes or not others:
        raise ValueError(f"{corpus} has too few training-voice takes of 4.5 s or more to fit temperatures on")
    return takes, others


def fit_emotion_temperatures(network: GestureNetwork, style_names: list[str], takes: list[Take],
                             classifier_takes: list[Take], grid: tuple[float, ...] = GRID,
                             classifier_steps: int = CLASSIFIER_STEPS, criterion: str = "recognised",
                             speed_tolerance: float | None = None) -> dict:  # fmt: skip
    """Per emotion: the teacher's speed, and at each grid temperature the model's speed and the share of
    its 4 s windows recognised as that emotion by a classifier trained on `classifier_takes`; then the
    temperature picked by `criterion`: "recognised" (pick_temperature, with `speed_tolerance`) or "speed"
    (temperature_matching_speed, which ignores the classifier) or "motion": pick_temperature on the mean of
    the classifier's reads and those of the judge of motion alone (training/motion_judge.py, trained on the
    same teacher motion), so the temperature must make the motion itself, not only its window statistics,
    read as the emotion."""
    if criterion not in CRITERIA:
        raise ValueError(f"criterion must be one of {CRITERIA}, got {criterion!r}")
    motion = training_motion(classifier_takes)
    classifier, _ = train_classifiers(motion, classifier_steps)
    motion_alone = None
    if criterion == "motion":
        judged = [(positions(poses), e) for poses, e, _ in motion]
        motion_alone = train_emotion_judges(judged, kinds=("motion alone",))["motion alone"]
    report: dict = {"grid": list(grid), "takes": len(takes), "classifier_takes": len(classifier_takes),
                    "criterion": criterion, "speed_tolerance": speed_tolerance, "emotions": {}}  # fmt: skip
    with tqdm(total=len(EMOTIONS) * len(takes) * (len(grid) + 1), desc="temperature per emotion") as bar:
        for e, emotion in enumerate(EMOTIONS):
            taught, speeds, hits = [], np.zeros((len(grid), len(takes))), [[] for _ in grid]
            for i, take in enumerate(takes):
                style = STYLE_NAMES[(3 * i + e) % len(STYLE_NAMES)]  # each emotion across several styles
                taught.append(speed(positions(teacher(take, emotion, style, seed=500 + i))))
                bar.update()
                preset = network.style_presets[style_names.index(style)].numpy()
                for g, temperature in enumerate(grid):
                    poses = generate(network, take, emotion, preset, seed=i, temperature=temperature)
                    pos = positions(poses)
                    speeds[g, i] = speed(pos)
                    read = (predict(classifier, window_features(poses)) == e).astype(float)
                    if motion_alone is not None:
                        read = (read + (judge(motion_alone, pos) == e)) / 2
                    hits[g] += list(read)
                    bar.update()
            recognised = [float(np.mean(h)) if h else 0.0 for h in hits]
            target, mean_speeds = float(np.mean(taught)), speeds.mean(axis=1).tolist()
            if criterion == "speed":
                picked = temperature_matching_speed(target, mean_speeds, grid)
            else:
                picked = pick_temperature(recognised, mean_speeds, target, grid, speed_tolerance)
            report["emotions"][emotion] = {
                "teacher_speed_m_s": target, "model_speed_m_s": mean_speeds, "recognised": recognised,
                "windows": len(hits[0]), "temperature": picked,
            }  # fmt: skip
    return report


def with_guidance(network: GestureNetwork, guidance: float) -> GestureNetwork:
    """The same weights under a config whose generators sample with this guidance unless told otherwise
    (the config refuses a guidance other than 1 for a network without a null emotion)."""
    return with_config(network, replace(network.config, guidance=guidance), set()).eval()


def with_emotion_temperatures(network: GestureNetwork, temperatures: list[float]) -> GestureNetwork:
    """The same weights under a config that carries a temperature per emotion, set to these."""
    out = with_config(network, replace(network.config, emotion_temperature=True), {"emotion_temperatures"})
    out.emotion_temperatures.copy_(torch.tensor(temperatures, dtype=torch.float32))
    return out.eval()


def plot_fit(report: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(2, 4, figsize=(12, 5.5), sharex=True)
    for ax, (emotion, fit) in zip(axes.flat, report["emotions"].items(), strict=True):
        ax.plot(report["grid"], fit["model_speed_m_s"], "o-", label="model speed")
        ax.axhline(fit["teacher_speed_m_s"], color="tab:orange", ls=":", label="teacher speed")
        ax.axvline(fit["temperature"], color="gray", lw=0.8)
        ax.set_title(f"{emotion}: {fit['temperature']:.2f}")
        share = ax.twinx()
        share.plot(report["grid"], fit["recognised"], "s--", color="tab:green", ms=3, label="recognised")
        share.set_ylim(0, 1.05)
    axes[0, 0].legend(loc="upper left", fontsize=7)
    for ax in axes[1]:
        ax.set_xlabel("sampling temperature")
    for ax in axes[:, 0]:
        ax.set_ylabel("upper-body speed (m/s)")
    figure.suptitle(
        "Training voices: model speed (blue) and the share of 4 s windows recognised as the emotion\n"
        "(green, right axis) against sampling temperature; the grey line marks the temperature picked; "
        f"guidance {report.get('guidance', 1.0):g}"
    )
    figure.tight_layout()
    figure.savefig(path, dpi=90)
    plt.close(figure)


def calibrate(network: GestureNetwork, style_names: list[str], corpus: Path, figures: Path, n_takes: int = TAKES,
              guidance: float | None = None, **fit: Any) -> tuple[GestureNetwork, dict]:  # fmt: skip
    """Fit on the corpus's training voices (options as fit_emotion_temperatures), sampling with `guidance`
    (None: the network's own), plot to `figures` (.png, .json beside it) and return the network that
    carries the temperatures and the guidance."""
    if guidance is not None:
        network = with_guidance(network, guidance)
    report = fit_emotion_temperatures(network, style_names, *training_takes(corpus, n_takes), **fit)
    report["guidance"] = network.config.guidance
    figures.parent.mkdir(parents=True, exist_ok=True)
    plot_fit(report, figures.with_name(figures.name + ".png"))
    figures.with_name(figures.name + ".json").write_text(json.dumps(report, indent=1) + "\n")
    temperatures = [report["emotions"][e]["temperature"] for e in EMOTIONS]
    return with_emotion_temperatures(network, temperatures), report


def main(argv: list[str] | None = None) -> None:
    default = ROOT / "runtime" / "assets" / "gesture.pt"
    parser = argparse.ArgumentParser(description="Fit a gesture checkpoint's sampling temperature per emotion.")
    parser.add_argument("--checkpoint", type=Path, default=default)
    parser.add_argument("--out", type=Path, default=None, help="where to write it (default: over --checkpoint)")
    parser.add_argument("--corpus", type=Path, default=ROOT / "training" / "data" / "corpus")
    parser.add_argument(
        "--criterion",
        choices=CRITERIA,
        default="recognised",
        help="pick the temperature read right most often (by window statistics; with 'motion' also by the "
        "judge of motion alone), or the one matching the teacher's speed",
    )
    parser.add_argument("--speed-tolerance", type=float, default=None,
                        help="with the recognised criterion: only temperatures whose speed is within this share "
                             "of the teacher's compete, e.g. 0.25")  # fmt: skip
    parser.add_argument("--guidance", type=float, default=None,
                        help="classifier-free guidance on the emotion to sample with, fitted with and carried "
                             "by the checkpoint (default: the checkpoint's own)")  # fmt: skip
    parser.add_argument("--takes", type=int, default=TAKES, help="training-voice takes per emotion and temperature")
    parser.add_argument("--grid", type=lambda text: tuple(float(v) for v in text.split(",")), default=GRID,
                        help="temperatures to try, comma-separated (default: 0.2 to 1.0 by 0.1)")  # fmt: skip
    args = parser.parse_args(argv)
    if args.takes < 1 or not args.grid or min(args.grid) < 0 or list(args.grid) != sorted(args.grid):
        parser.error("need --takes >= 1 and an ascending --grid of temperatures >= 0")
    if args.speed_tolerance is not None and (args.speed_tolerance <= 0 or args.criterion == "speed"):
        parser.error("--speed-tolerance must be above 0, and goes with --criterion recognised or motion")
    if args.guidance is not None and args.guidance < 0:
        parser.error("--guidance must be >= 0 (1: none)")
    out = args.out or args.checkpoint
    torch.set_num_threads(2)
    network, style_names, metadata = load_gesture_checkpoint(args.checkpoint)
    shipped = out.resolve() == default.resolve()
    results = ROOT / "benchmarks" / "results"
    figures = results / "gesture_temperature" if shipped else out.parent / f"{out.stem}_temperature"
    network, report = calibrate(network, style_names, args.corpus, figures, n_takes=args.takes, grid=args.grid,
                                guidance=args.guidance, criterion=args.criterion,
                                speed_tolerance=args.speed_tolerance)  # fmt: skip
    save_gesture_checkpoint(out, network, style_names, metadata | {"emotion_temperature": report})
    fitted = ", ".join(f"{e} {report['emotions'][e]['temperature']:.2f}" for e in EMOTIONS)
    print(f"wrote {out}: {fitted}; guidance {report['guidance']}; curves in {figures}.png")


if __name__ == "__main__":
    main()
