from pathlib import Path

import numpy as np
import onnx
import torch

from engines.onnx_export import OnnxStepSession, export_step_onnx, graph_input_names, graph_output_names
from runtime.models.conv_stack import CausalConvStack


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


def test_onnx_runtime_session_runs_batch_one_with_state(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = CausalConvStack().eval()
    session = OnnxStepSession(export_step_onnx(model, tmp_path / "step.onnx"), model)
    state = {k: v.numpy() for k, v in model.init_state(1).items()}
    features = np.random.default_rng(0).normal(size=(1, 2, 80)).astype(np.float32)
    noise = np.zeros((1, 8), np.float32)
    outputs, new_state = session.step({"features": features}, state, noise, np.array([False]), np.array([True]))
    assert outputs["frames"].shape == (1, 1, 8)
    assert set(new_state) == set(state)
    assert not np.array_equal(new_state["conv0"], state["conv0"])  # the cache took the new frame
