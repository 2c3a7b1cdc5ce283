"""The stages that follow the face network's flow matching, each on the frozen network: the one-step
sampler's distillation (training/distil_face.py), the audio-only closure head (training/audio_closure.py),
the lip-opening head (training/audio_opening.py) and the lip-shape head (training/lip_shape.py).
`emostream train face` runs them after training;

    emostream train face-stages [--from runtime/assets/face.pt] [--out ...]

runs them alone on a trained checkpoint, which with the same data options and seed gives the weights
`emostream train face` would (each stage draws from its own seeded streams).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from emostream.runtime.models.face import FaceNetwork, load_checkpoint, save_checkpoint
from emostream.training.audio_closure import train_audio_closure
from emostream.training.audio_opening import train_audio_opening
from emostream.training.distil_face import distil
from emostream.training.face_data import FaceExample
from emostream.training.lip_shape import train_lip_shape
from emostream.training.machine import machine
from emostream.training.train_face import CHECKPOINT, add_data_arguments, closure_examples, training_examples

DISTIL_STEPS = 3000
AUDIO_CLOSURE_STEPS = 3000
AUDIO_OPENING_STEPS = 3000
LIP_SHAPE_STEPS = 3000


def run_stages(
    network: FaceNetwork, examples: list[FaceExample], batch_size: int, seed: int,
    distil_steps: int = DISTIL_STEPS, audio_closure_steps: int = AUDIO_CLOSURE_STEPS,
    audio_opening_steps: int = AUDIO_OPENING_STEPS, lip_shape_steps: int = LIP_SHAPE_STEPS,
    closure_examples: list[FaceExample] | None = None,
) -> tuple[FaceNetwork, dict]:  # fmt: skip
    """The network after every stage with a budget above 0, and what each stage recorded. The closure head
    trains on `closure_examples` where given (training/train_face.py `closure_examples`), the rest on
    `examples`."""
    records = {}
    if distil_steps > 0:
        network, records["one_step"] = distil(network, examples, distil_steps, batch_size, seed)
    if audio_closure_steps > 0:
        heard = examples if closure_examples is None else closure_examples
        network, records["audio_closure"] = train_audio_closure(network, heard, audio_closure_steps, batch_size, seed)
    if audio_opening_steps > 0:
        network, records["audio_opening"] = train_audio_opening(
            network, examples, audio_opening_steps, batch_size, seed
        )
    if lip_shape_steps > 0:
        network, records["lip_shape"] = train_lip_shape(network, examples, lip_shape_steps, batch_size, seed)
    return network, records


def add_stage_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--one-step-steps", type=int, default=DISTIL_STEPS,
                        help="optimizer steps of the one-step sampler's distillation (0: none)")  # fmt: skip
    parser.add_argument("--audio-closure-steps", type=int, default=AUDIO_CLOSURE_STEPS,
                        help="optimizer steps of the audio-only closure head (0: none)")  # fmt: skip
    parser.add_argument("--audio-opening-steps", type=int, default=AUDIO_OPENING_STEPS,
                        help="optimizer steps of the lip-opening head (0: none)")  # fmt: skip
    parser.add_argument("--lip-shape-steps", type=int, default=LIP_SHAPE_STEPS,
                        help="optimizer steps of the lip-shape head (0: none)")  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Run the stages after training on a face checkpoint.")
    add_data_arguments(parser)
    add_stage_arguments(parser)
    parser.add_argument("--from", dest="source", type=Path, default=CHECKPOINT, help="the trained checkpoint")
    parser.add_argument("--out", type=Path, default=None, help="default: over --from")
    args = parser.parse_args(argv)
    torch.set_num_threads(2)  # as `emostream train face`: the thread count can change the last bits
    # The examples first: they are built in forked workers, which torch's thread pool, once the checkpoint
    # has been used here, would deadlock.
    examples, data = training_examples(args)
    closure, closure_data = closure_examples(args, examples, data)
    network, metadata = load_checkpoint(args.source)  # heads it already has are made afresh
    network, records = run_stages(network, examples, args.batch_size, args.seed, args.one_step_steps,
                                  args.audio_closure_steps, args.audio_opening_steps, args.lip_shape_steps,
                                  closure)  # fmt: skip
    if closure_data:
        records["audio_closure"]["data_added"] = closure_data
    for record in records.values():
        record["machine"] = machine()
    metadata |= records
    out = args.out or args.source
    save_checkpoint(out, network, metadata)
    print(json.dumps(records, indent=1))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
