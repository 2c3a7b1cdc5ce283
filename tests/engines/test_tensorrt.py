"""TensorRT: what can be checked without it (the operator matrix, profiles, errors), and the runtime
tests, which skip where TensorRT is absent (it cannot be installed in this workplace).

Every model's graph is checked against the operator matrix where the step-contract harness exports it
for its ONNX parity check (tests/harness/step_contract.py: the face with and without lookahead, with the
stages after training, the gesture model with every option, the voice-emotion estimator, the contract's
conv stack), and the shipped models' graphs where `emostream export` builds them (test_export_cli.py)."""

from pathlib import Path

import onnx
import pytest
import torch
from onnx import TensorProto, helper

from emostream.engines.cache import EngineCache
from emostream.engines.factory import make_backend
from emostream.engines.parity import streamed_parity
from emostream.engines.tensorrt_backend import NOT_INSTALLED, import_tensorrt, profile_ranges, tensorrt_available
from emostream.engines.tensorrt_ops import check_graph, load_support_matrix
from emostream.runtime.assets import default_face_checkpoint
from emostream.runtime.errors import BackendError
from emostream.runtime.models.face import FaceGenerator, load_checkpoint

needs_tensorrt = pytest.mark.skipif(not tensorrt_available(), reason=NOT_INSTALLED + " (or no CUDA device)")


def tiny_graph(nodes: list[onnx.NodeProto], opset: int = 18, **kwargs: object) -> onnx.ModelProto:
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    graph = helper.make_graph(nodes, "g", [x], [y], **kwargs)  # type: ignore[arg-type]
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def test_the_check_names_unsupported_operators_random_numbers_types_and_opsets() -> None:
    unsupported = tiny_graph([helper.make_node("Unique", ["x"], ["y"])])
    assert any("Unique is not supported" in p for p in check_graph(unsupported).problems)
    random = tiny_graph([helper.make_node("RandomNormalLike", ["x"], ["y"])])
    assert any("noise must be a graph input" in p for p in check_graph(random).problems)
    double = tiny_graph([helper.make_node("Cast", ["x"], ["d"], to=TensorProto.DOUBLE),
                         helper.make_node("Sigmoid", ["d"], ["y"])])  # fmt: skip
    assert any("is DOUBLE" in p for p in check_graph(double).problems)
    custom = tiny_graph([helper.make_node("Fancy", ["x"], ["y"], domain="com.example")])
    assert any("custom domain" in p for p in check_graph(custom).problems)
    assert any("opset 25" in p for p in check_graph(tiny_graph([helper.make_node("Relu", ["x"], ["y"])], 25)).problems)


def test_axes_that_are_not_build_time_constants_are_refused() -> None:
    axes = helper.make_tensor_value_info("axes", TensorProto.INT64, [1])
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    graph = helper.make_graph([helper.make_node("ReduceSum", ["x", "axes"], ["y"])], "g", [x, axes], [y])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    assert any("build-time constant" in p for p in check_graph(model).problems)


def test_the_support_matrix_is_the_one_named() -> None:
    matrix = load_support_matrix()
    assert matrix.version == "10.15" and matrix.opsets == (9, 24)
    assert "Unique" not in matrix.types and matrix.types["Where"] >= {"BOOL", "FP32", "FP16"}


def test_one_profile_per_bucket_covering_every_batch_once() -> None:
    ranges = profile_ranges([128, 1, 8, 32])
    assert ranges == [(1, 1, 1), (2, 8, 8), (9, 32, 32), (33, 128, 128)]
    covered = [b for low, _, high in ranges for b in range(low, high + 1)]
    assert covered == list(range(1, 129))


@pytest.mark.skipif(tensorrt_available(), reason="TensorRT is installed here")
def test_without_tensorrt_the_backend_says_why() -> None:
    with pytest.raises(BackendError, match="TensorRT is not installed"):
        import_tensorrt()


@needs_tensorrt
@pytest.mark.gpu
def test_tensorrt_engine_matches_eager_over_a_long_stream(tmp_path: Path) -> None:
    network, _ = load_checkpoint(default_face_checkpoint())
    generator = FaceGenerator(network, lookahead=7, n_steps=2)
    backend = make_backend("tensorrt", generator, device="cuda", buckets=(1, 8), cache=EngineCache(tmp_path))
    report = streamed_parity(backend, n_steps=300, batch=5)
    print(report.summary())
    assert report.worst_output < 2e-3


@needs_tensorrt
@pytest.mark.gpu
def test_tensorrt_engines_are_cached(tmp_path: Path) -> None:
    from emostream.engines.tensorrt_backend import cached_engine

    generator = FaceGenerator(load_checkpoint(default_face_checkpoint())[0], lookahead=7, n_steps=1)
    cache = EngineCache(tmp_path)
    assert cached_engine(generator, "face", cache, buckets=(1, 8), device="cuda").built
    assert not cached_engine(generator, "face", cache, buckets=(1, 8), device="cuda").built
    assert torch.cuda.is_available()
