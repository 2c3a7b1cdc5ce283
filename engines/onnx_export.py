"""Export a generator's step function to ONNX with explicit state, and run it with ONNX Runtime.

Graph inputs, in order: the step inputs, `state_in.<name>` for each state tensor, `noise`, `reset`,
`active`; outputs: the step outputs, then `state_out.<name>`. The batch axis is dynamic.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

import numpy as np
import torch

from runtime.errors import BackendError
from runtime.step import StreamingGenerator

OPSET = 18  # ONNX opset, within what TensorRT 10's parser supports


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
    logging.getLogger("torch.onnx").setLevel(logging.ERROR)  # "torchvision is not installed" notices
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


class OnnxStepSession:
    """Runs an exported step with ONNX Runtime on the CPU, state passed in and out as numpy arrays."""

    def __init__(self, path: Path, model: StreamingGenerator, intra_op_threads: int = 1) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = intra_op_threads
        options.inter_op_num_threads = 1
        # Spinning threads burn a core between steps that the server's other work needs.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.spec = model.spec
        self.input_names = graph_input_names(model)
        self.output_names = graph_output_names(model)

    def step(
        self,
        inputs: dict[str, np.ndarray],
        state: dict[str, np.ndarray],
        noise: np.ndarray,
        reset: np.ndarray,
        active: np.ndarray,
    ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        spec = self.spec
        feeds = [inputs[t.name] for t in spec.inputs] + [state[t.name] for t in spec.state] + [noise, reset, active]
        results = self.session.run(self.output_names, dict(zip(self.input_names, feeds, strict=True)))
        n_out = len(spec.outputs)
        outputs = {t.name: r for t, r in zip(spec.outputs, results[:n_out], strict=True)}
        new_state = {t.name: r for t, r in zip(spec.state, results[n_out:], strict=True)}
        return outputs, new_state
