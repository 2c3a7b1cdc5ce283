"""Export a generator's step function to ONNX with explicit state (run by engines/onnx_backend.py).

Graph inputs, in order: the step inputs, `state_in.<name>` for each state tensor, `noise`, `reset`,
`active`; outputs: the step outputs, then `state_out.<name>`. The batch axis is dynamic.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

import torch

from emostream.runtime.errors import BackendError
from emostream.runtime.step import StreamingGenerator

OPSET = 18  # ONNX opset, within what TensorRT 10's parser supports
# The exporter's own logs: "torchvision is not installed" notices, and the optimizer's passes, which
# otherwise put hundreds of INFO lines a graph into the log of a server's first start.
EXPORTER_LOG_LEVELS = {"torch.onnx": logging.ERROR, "onnxscript": logging.WARNING, "onnx_ir": logging.WARNING}


def graph_input_names(model: StreamingGenerator) -> list[str]:
    spec = model.spec
    return [t.name for t in spec.inputs] + [f"state_in.{t.name}" for t in spec.state] + [
        "noise", "reset", "active",
    ]  # fmt: skip


def graph_output_names(model: StreamingGenerator) -> list[str]:
    spec = model.spec
    return [t.name for t in spec.outputs] + [f"state_out.{t.name}" for t in spec.state]


def example_step_args(model: StreamingGenerator, batch: int) -> tuple[torch.Tensor, ...]:
    """Flat example arguments in graph input order, for tracing and export."""
    spec = model.spec
    inputs = tuple(torch.randn((batch, *t.shape)).to(t.dtype) for t in spec.inputs)
    state = model.init_state(batch)
    masks = (torch.zeros(batch, dtype=torch.bool), torch.ones(batch, dtype=torch.bool))
    noise = torch.randn((batch, *spec.noise.shape))
    return inputs + tuple(state[t.name] for t in spec.state) + (noise, *masks)


def export_step_onnx(model: StreamingGenerator, path: Path, example_batch: int = 2) -> Path:
    """Writes the step function as an ONNX graph with a dynamic batch axis; returns `path`."""
    model = model.eval()
    args = example_step_args(model, example_batch)
    batch = torch.export.Dim("batch", min=1, max=4096)
    dynamic_shapes = (tuple({0: batch} for _ in args),)
    path.parent.mkdir(parents=True, exist_ok=True)
    for name, level in EXPORTER_LOG_LEVELS.items():
        logging.getLogger(name).setLevel(level)
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # the exporter's deprecation chatter is not ours to fix
        program = torch.onnx.export(
            model, args, dynamo=True, input_names=graph_input_names(model),
            output_names=graph_output_names(model), dynamic_shapes=dynamic_shapes, opset_version=OPSET,
            external_data=False, verbose=False,
        )  # fmt: skip
    if program is None:
        raise BackendError("torch.onnx.export returned no program")
    program.save(str(path), external_data=False)
    return path
