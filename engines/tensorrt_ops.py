"""A static check that an ONNX graph stays within what TensorRT's ONNX parser supports.

TensorRT cannot be installed here, so the exported graphs are checked against the parser's published
support matrix instead (engines/data/, TensorRT 10.15, opset 9 to 24): every node must be in the standard
ONNX domain, its operator on the list, the element types of its inputs among those listed for it, and
the inputs the matrix requires to be build-time constants must come from initializers or Constant nodes.
Random-number operators are refused even though TensorRT has some: our contract keeps noise an input.
This proves the parser can read the graph; only a real build proves the kernels and the parity.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import onnx

SUPPORT_MATRIX = "tensorrt-10.15-onnx-operators.txt"
TENSORRT_VERSION = "10.15"
RANDOM_OPS = {"RandomNormal", "RandomNormalLike", "RandomUniform", "RandomUniformLike", "Bernoulli", "Multinomial"}
# (operator, input index) pairs the matrix says must be constant when the graph is built.
CONSTANT_INPUTS = {"Squeeze": 1, "Unsqueeze": 1, "CumSum": 1, "OneHot": 1} | {
    f"Reduce{kind}": 1 for kind in ("L1", "L2", "LogSum", "LogSumExp", "Max", "Mean", "Min", "Prod", "Sum", "SumSquare")
}
_TYPE_NAMES = {
    onnx.TensorProto.FLOAT: "FP32", onnx.TensorProto.FLOAT16: "FP16", onnx.TensorProto.BFLOAT16: "BF16",
    onnx.TensorProto.INT32: "INT32", onnx.TensorProto.INT64: "INT64", onnx.TensorProto.INT8: "INT8",
    onnx.TensorProto.UINT8: "UINT8", onnx.TensorProto.BOOL: "BOOL", onnx.TensorProto.DOUBLE: "DOUBLE",
}  # fmt: skip


@dataclass(frozen=True)
class SupportMatrix:
    version: str
    opsets: tuple[int, int]
    types: dict[str, frozenset[str]]  # operator -> element types it accepts


def load_support_matrix() -> SupportMatrix:
    text = (resources.files("emostream.engines") / "data" / SUPPORT_MATRIX).read_text()
    types: dict[str, frozenset[str]] = {}
    opsets = (0, 0)
    for line in text.splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        key, _, value = line.partition(":")
        if key == "opset":
            low, high = value.strip().split("-")
            opsets = (int(low), int(high))
        else:
            types[key.strip()] = frozenset(v.strip() for v in value.split(","))
    return SupportMatrix(TENSORRT_VERSION, opsets, types)


@dataclass(frozen=True)
class OperatorReport:
    tensorrt_version: str
    opset: int
    operators: dict[str, int]  # operator -> node count
    problems: list[str]

    @property
    def ok(self) -> bool:
        return not self.problems

    def summary(self) -> str:
        if self.ok:
            return (
                f"TensorRT {self.tensorrt_version} ONNX parser: all {len(self.operators)} operator types "
                f"({sum(self.operators.values())} nodes, opset {self.opset}) are supported"
            )
        return f"TensorRT {self.tensorrt_version} ONNX parser would refuse this graph:\n  " + "\n  ".join(self.problems)


def check_graph(model: onnx.ModelProto | Path) -> OperatorReport:
    """Every problem TensorRT's parser would have with the graph, by the published support matrix."""
    if isinstance(model, Path):
        model = onnx.load(str(model))
    matrix = load_support_matrix()
    problems: list[str] = []
    try:
        graph = onnx.shape_inference.infer_shapes(model).graph
    except onnx.shape_inference.InferenceError as exc:
        problems.append(f"ONNX shape inference fails: {exc}")
        graph = model.graph
    elem_types = {v.name: v.type.tensor_type.elem_type for v in [*graph.input, *graph.value_info, *graph.output]}
    elem_types |= {t.name: t.data_type for t in graph.initializer}
    constants = {t.name for t in graph.initializer}
    constants |= {out for n in graph.node if n.op_type == "Constant" for out in n.output}
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)
    if not matrix.opsets[0] <= opset <= matrix.opsets[1]:
        problems.append(f"opset {opset} is outside {matrix.opsets[0]}..{matrix.opsets[1]}")
    if model.functions:
        problems.append(f"{len(model.functions)} local functions: inline them before building")
    counts: dict[str, int] = {}
    for node in graph.node:
        op = node.op_type
        counts[op] = counts.get(op, 0) + 1
        where = f"{op} node {node.name or node.output[0]!r}"
        if node.domain not in ("", "ai.onnx"):
            problems.append(f"{where} is in the custom domain {node.domain!r}")
            continue
        if op in RANDOM_OPS:
            problems.append(f"{where} draws random numbers: noise must be a graph input")
            continue
        accepted = matrix.types.get(op)
        if accepted is None:
            problems.append(f"{where}: {op} is not supported")
            continue
        for name in node.input:
            type_name = _TYPE_NAMES.get(elem_types.get(name, 0), "of unknown type") if name else None
            if type_name is not None and type_name not in accepted:
                problems.append(f"{where}: input {name!r} is {type_name}; {op} takes {', '.join(sorted(accepted))}")
        index = CONSTANT_INPUTS.get(op)
        if index is not None and len(node.input) > index and node.input[index] not in constants:
            problems.append(f"{where}: input {index} ({node.input[index]!r}) must be a build-time constant")
    return OperatorReport(matrix.version, opset, dict(sorted(counts.items())), problems)
