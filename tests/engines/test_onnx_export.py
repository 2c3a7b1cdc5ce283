from pathlib import Path

import numpy as np
import onnx
import torch

from emostream.engines.onnx_backend import OnnxBackend
from emostream.engines.onnx_export import export_step_onnx, graph_input_names, graph_output_names
from emostream.runtime.models.conv_stack import CausalConvStack


def test_exported_graph_has_named_explicit_state_and_a_dynamic_batch(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = CausalConvStack().eval()
    graph = onnx.load(str(export_step_onnx(model, tmp_path / "step.onnx")))
    inputs = [i.name for i in graph.graph.input]
    outputs = [o.name for o in graph.graph.output]
    assert inputs == graph_input_names(model)
    assert outputs == graph_output_names(model)
    assert inputs[-3:] == ["noise", "reset", "active"]
    assert "state_in.conv0" in inputs and "state_out.conv0" in outputs
    for value in graph.graph.input:
        assert value.type.tensor_type.shape.dim[0].dim_param, f"{value.name} has a fixed batch size"
    # No random-number operators: noise is an input, never drawn inside the graph.
    assert not {n.op_type for n in graph.graph.node} & {"RandomNormal", "RandomUniform", "RandomNormalLike"}


def test_onnx_backend_runs_batch_one_and_carries_state(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = CausalConvStack().eval()
    backend = OnnxBackend(model, export_step_onnx(model, tmp_path / "step.onnx"))
    state = backend.init_state(1)
    features = torch.from_numpy(np.random.default_rng(0).normal(size=(1, 2, 80)).astype(np.float32))
    masks = torch.tensor([False]), torch.tensor([True])
    outputs, new_state = backend.step({"features": features}, state, torch.zeros(1, 8), *masks)
    assert outputs["frames"].shape == (1, 1, 8)
    assert set(new_state) == set(state)
    assert not torch.equal(new_state["conv0"], state["conv0"])  # the cache took the new frame
