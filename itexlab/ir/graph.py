"""The neutral graph model that every stage shares: importer, preparation, partitioner, executor, views.

A graph is a list of nodes in topological order. A node names its inputs as tensor references
("node" or "node:1"); attributes are plain Python values (numbers, strings, lists, numpy arrays for
constants, `DType` and `Shape` for typed attributes). Every node knows its outputs' dtype and shape
(batch dimension None), so later stages never have to ask TensorFlow again.
"""

from __future__ import annotations

import dataclasses
import graphlib
from collections import defaultdict
from typing import Any, Iterable

import numpy as np

from . import structure

class DType(str):
    """A TensorFlow dtype name used as an attribute value, e.g. DType("qint8")."""


# TF's quantized dtypes -> the plain integer type with the same bytes (what numpy and oneDNN see).
QUANTIZED_DTYPES = {"qint8": "int8", "quint8": "uint8"}


class ShapeAttr(tuple):
    """A shape used as an attribute value; None marks unknown dimensions, unknown_rank a missing one."""

    unknown_rank = False


@dataclasses.dataclass(frozen=True)
class TensorInfo:
    dtype: str
    shape: tuple[int | None, ...] | None  # None: rank unknown

    def describe(self) -> str:
        dims = "?" if self.shape is None else "x".join("?" if d is None else str(d) for d in self.shape)
        return f"{self.dtype}[{dims}]"


@dataclasses.dataclass
class Node:
    name: str
    op: str
    inputs: list[str]
    attrs: dict[str, Any] = dataclasses.field(default_factory=dict)
    outputs: list[TensorInfo] = dataclasses.field(default_factory=list)

    @property
    def value(self) -> np.ndarray:
        """The value of a Const node."""
        try:
            return self.attrs["value"]
        except KeyError:
            raise LookupError(f"constant '{self.name}' has no value: the graph was read without its arrays") from None


FLOAT32_MAX = float(np.finfo(np.float32).max)


def beyond_float32(array: np.ndarray) -> int:
    """How many finite values of a float array float32 cannot hold (they would become infinities)."""
    if array.dtype.kind != "f" or array.dtype.itemsize <= 4:
        return 0
    magnitude = np.abs(array)
    return int(np.count_nonzero((magnitude > FLOAT32_MAX) & np.isfinite(magnitude)))


def fits_integers(array: np.ndarray, dtype: np.dtype) -> bool:
    """Whether an array of integers (or booleans) converts to an integer dtype without loss: token
    ids come as int64 from numpy for models that take int32."""
    if array.dtype.kind not in "biu" or np.dtype(dtype).kind not in "iu":
        return False
    if np.can_cast(array.dtype, dtype, "safe") or array.size == 0:
        return True
    limits = np.iinfo(dtype)
    return limits.min <= int(array.min()) and int(array.max()) <= limits.max


def split_ref(ref: str) -> tuple[str, int]:
    """'conv:1' -> ('conv', 1); 'conv' -> ('conv', 0)."""
    name, _, index = ref.partition(":")
    return name, int(index) if index else 0


def ref(name: str, index: int = 0) -> str:
    return name if index == 0 else f"{name}:{index}"


CONSTANT_OPS = ("Const", "HostConst")
QDQ_OPS = ("QuantizeV2", "Dequantize")  # the quantization nodes of a QDQ graph

# TensorFlow ops that only compute tensors from tensors: no files or other I/O, no Python, no state,
# no randomness. A model from a saved folder may run only these on TF (see runtime.saving.load), and
# only these are evaluated when constant subgraphs are folded.
PURE_TF_OPS = frozenset({
    *CONSTANT_OPS, *QDQ_OPS, "Placeholder", "PlaceholderWithDefault", "Identity", "IdentityN", "NoOp",
    "StopGradient", "PreventGradient", "Snapshot", "EnsureShape", "CheckNumerics", "Assert",
    # elementwise arithmetic and comparison
    "Abs", "Add", "AddN", "AddV2", "BiasAdd", "Ceil", "ClipByValue", "Cos", "Div", "DivNoNan", "Elu", "Equal",
    "Erf", "Erfc", "Exp", "Expm1", "Floor", "FloorDiv", "FloorMod", "Gelu", "Greater", "GreaterEqual", "Inv",
    "IsFinite", "IsInf", "IsNan", "LeakyRelu", "Less", "LessEqual", "Log", "Log1p", "LogicalAnd", "LogicalNot",
    "LogicalOr", "Maximum", "Minimum", "Mod", "Mul", "MulNoNan", "Neg", "NotEqual", "Pow", "RealDiv",
    "Reciprocal", "Relu", "Relu6", "Rint", "Round", "Rsqrt", "Select", "SelectV2", "Selu", "Sigmoid", "Sign",
    "Sin", "Softplus", "Softsign", "Sqrt", "Square", "SquaredDifference", "Sub", "Tan", "Tanh", "TruncateDiv",
    "Atan", "Atan2", "Acos", "Asin", "Cosh", "Sinh", "Xdivy", "Xlogy", "Cast", "Bitcast",
    # linear algebra, convolution, pooling, normalization
    "MatMul", "BatchMatMul", "BatchMatMulV2", "BatchMatMulV3", "Einsum", "Conv2D", "Conv3D",
    "DepthwiseConv2dNative", "Conv2DBackpropInput", "Conv3DBackpropInputV2", "MaxPool", "MaxPoolV2", "MaxPool3D",
    "AvgPool", "AvgPool3D", "FusedBatchNorm", "FusedBatchNormV2", "FusedBatchNormV3", "LRN", "Softmax",
    "LogSoftmax", "ResizeBilinear", "ResizeNearestNeighbor", "ResizeBicubic", "ResizeArea",
    # reductions and scans
    "All", "Any", "ArgMax", "ArgMin", "Cumprod", "Cumsum", "Max", "Mean", "Min", "Prod", "Sum", "TopKV2",
    # shapes and data movement
    "BroadcastArgs", "BroadcastTo", "Concat", "ConcatV2", "DepthToSpace", "ExpandDims", "Fill", "Gather",
    "GatherNd", "GatherV2", "InvertPermutation", "LinSpace", "MirrorPad", "OneHot", "OnesLike", "Pack", "Pad",
    "PadV2", "Range", "Rank", "Reshape", "Reverse", "ReverseV2", "Shape", "ShapeN", "Size", "Slice",
    "SpaceToDepth", "Split", "SplitV", "Squeeze", "StridedSlice", "Tile", "Transpose", "Unpack", "Where",
    "ZerosLike", "BatchToSpaceND", "SpaceToBatchND", "MatrixBandPart", "MatrixDiag", "MatrixDiagV3",
})


def impure_nodes(graph: "Graph") -> list[Node]:
    """The nodes whose op is not one of PURE_TF_OPS."""
    return [n for n in graph.nodes if n.op not in PURE_TF_OPS]


@dataclasses.dataclass
class Graph:
    nodes: list[Node]
    inputs: list[str]   # tensor references of the graph inputs (Placeholders)
    outputs: list[str]  # tensor references of the graph outputs
    # How the model nests its inputs and outputs over these flat lists (see ir.structure); None: a
    # flat list. One that does not nest exactly these tensors (outputs added, say) does not apply.
    input_structure: Any = None
    output_structure: Any = None

    def __post_init__(self):
        self._by_name = {n.name: n for n in self.nodes}
        if len(self._by_name) != len(self.nodes):
            raise ValueError("graph has duplicate node names")
        for kind, names in (("input", self.inputs), ("output", self.outputs)):
            given = getattr(self, f"{kind}_structure")
            if given is not None and structure.leaves(given) != list(names):
                setattr(self, f"{kind}_structure", None)

    @property
    def inputs_nested(self) -> Any:
        """The structure of the inputs: the model's own, or the flat list."""
        return self.input_structure if self.input_structure is not None else structure.flat(self.inputs)

    @property
    def outputs_nested(self) -> Any:
        return self.output_structure if self.output_structure is not None else structure.flat(self.outputs)

    def __contains__(self, name: str) -> bool:
        return name in self._by_name

    def node(self, name_or_ref: str) -> Node:
        return self._by_name[split_ref(name_or_ref)[0]]

    def producer(self, reference: str) -> Node:
        """The node that computes a tensor, looking through Identity nodes."""
        node = self.node(reference)
        while node.op == "Identity":
            node = self.node(node.inputs[0])
        return node

    def is_range_output(self, reference: str) -> bool:
        """Outputs 1 and 2 of QuantizeV2 are its min/max scalars: quantization metadata, not data."""
        name, index = split_ref(reference)
        return index > 0 and self.node(name).op == "QuantizeV2"

    def tensor(self, reference: str) -> TensorInfo:
        name, index = split_ref(reference)
        return self._by_name[name].outputs[index]

    def is_constant(self, reference: str) -> bool:
        return self.producer(reference).op in CONSTANT_OPS

    def constant(self, reference: str) -> np.ndarray | None:
        """The value of a constant tensor (through Identities), None for a computed one."""
        node = self.producer(reference)
        return node.value if node.op in CONSTANT_OPS else None

    def consumers(self) -> dict[str, list[Node]]:
        """Tensor reference -> nodes reading it (graph outputs are not nodes and not listed)."""
        result: dict[str, list[Node]] = defaultdict(list)
        for node in self.nodes:
            for r in node.inputs:
                result[normalize(r)].append(node)
        return result

    def count(self, op: str) -> int:
        return sum(1 for n in self.nodes if n.op == op)

    def replace(self, nodes: Iterable[Node]) -> "Graph":
        """A new graph with these nodes and the same inputs and outputs, re-sorted and pruned of
        nodes that no output depends on."""
        return Graph(prune_and_sort(list(nodes), self.outputs), list(self.inputs), list(self.outputs),
                     self.input_structure, self.output_structure)


def normalize(reference: str) -> str:
    name, index = split_ref(reference)
    return ref(name, index)


def prune_and_sort(nodes: list[Node], outputs: list[str]) -> list[Node]:
    """Keep the nodes the outputs depend on (Placeholders always), in topological order (the
    standard library's, which keeps the given order among independent nodes)."""
    by_name = {n.name: n for n in nodes}
    needed: dict[str, None] = {}
    stack = [split_ref(r)[0] for r in reversed(outputs)] + [n.name for n in nodes if n.op == "Placeholder"]
    while stack:
        name = stack.pop()
        if name in needed:
            continue
        if name not in by_name:
            raise ValueError(f"graph refers to a missing node '{name}'")
        needed[name] = None
        stack.extend(split_ref(r)[0] for r in by_name[name].inputs)
    sorter = graphlib.TopologicalSorter(
        {n.name: [split_ref(r)[0] for r in n.inputs] for n in nodes if n.name in needed})
    try:
        return [by_name[name] for name in sorter.static_order()]
    except graphlib.CycleError as e:
        raise ValueError(f"graph has a cycle through {' -> '.join(e.args[1])}") from None


# ------------------------------------------------------------------------------ work

MATMUL_OPS = ("MatMul", "BatchMatMul", "BatchMatMulV2", "BatchMatMulV3")


def macs(node: Node, graph: Graph) -> int:
    """Multiply-accumulates per image (per sample of the batch) of a convolution, a transposed
    convolution, a MatMul or a batch matmul (attention's Q·Kᵀ and weights·V included)."""
    if node.op not in ("Conv2D", "DepthwiseConv2dNative", "Conv2DBackpropInput", *MATMUL_OPS):
        return 0
    out = node.outputs[0].shape
    if out is None or not out or None in out[1:]:
        return 0
    if node.op in MATMUL_OPS and node.op != "MatMul":  # each output element sums K products; the batch leads
        first = graph.tensor(node.inputs[0]).shape
        if first is None or len(first) < 2:
            return 0
        inner = first[-2] if node.attrs.get("adj_x") else first[-1]
        return 0 if inner is None else int(np.prod(out[1:], dtype=np.int64)) * int(inner)
    weights = graph.tensor(node.inputs[1]).shape
    if weights is None or None in weights:
        return 0
    if node.op == "MatMul":
        return int(np.prod(weights))
    if node.op == "Conv2DBackpropInput":  # every weight once per input pixel (the gradient's view)
        data = graph.tensor(node.inputs[2]).shape
        return 0 if data is None or None in data[1:3] else int(np.prod(data[1:3])) * int(np.prod(weights))
    # Ho*Wo * KH*KW*Ci*Co (Conv2D) or Ho*Wo * KH*KW*C*M (depthwise): every weight once per pixel
    return int(np.prod(out[1:3])) * int(np.prod(weights))


def total_macs(graph: Graph) -> int:
    """Multiply-accumulates per image of the whole graph."""
    return sum(macs(node, graph) for node in graph.nodes)



# ------------------------------------------------------------------------------ as JSON

def graph_to_dict(graph: Graph, arrays: dict[str, np.ndarray]) -> dict:
    """The graph as JSON-able data; array attributes (constants' values) go into `arrays`, named
    "<node>:<attribute>", so a plan's JSON stays small and the weights can live in an .npz."""
    return {"inputs": list(graph.inputs), "outputs": list(graph.outputs),
            "input_structure": graph.input_structure, "output_structure": graph.output_structure,
            "nodes": [{"name": n.name, "op": n.op, "inputs": list(n.inputs),
                       "attrs": {k: _encode(v, f"{n.name}:{k}", arrays) for k, v in n.attrs.items()},
                       "outputs": [tensor_to_dict(t) for t in n.outputs]} for n in graph.nodes]}


def graph_from_dict(data: dict, arrays: dict[str, np.ndarray] | None = None) -> Graph:
    """The inverse of graph_to_dict. Without `arrays`, constants have no values: the graph can be
    drawn and tabulated, not run. ValueError names a field of the wrong type (data from a file)."""
    nodes = []
    for i, n in enumerate(field(data, "nodes", list)):
        attrs = {k: _decode(v, arrays, f"node {i} attribute {k}") for k, v in field(n, "attrs", dict).items()}
        nodes.append(Node(field(n, "name", str), field(n, "op", str), expect_list(field(n, "inputs", list), str),
                          {k: v for k, v in attrs.items() if v is not _MISSING},
                          [tensor_from_dict(t) for t in field(n, "outputs", list)]))
    inputs, outputs = expect_list(field(data, "inputs", list), str), expect_list(field(data, "outputs", list), str)
    nested = [data.get(f"{kind}_structure") for kind in ("input", "output")]  # absent in plans saved before
    for given, names in zip(nested, (inputs, outputs)):
        if given is not None:
            structure.check(given, names)
    return Graph(nodes, inputs, outputs, *nested)


def expect(value: Any, kind: type, what: str) -> Any:
    """`value` when it is a `kind` (a bool is no number here), else ValueError naming `what`: data
    read from a file may hold anything where a number or a name belongs."""
    if not isinstance(value, kind) or (kind in (int, float) and isinstance(value, bool)):
        raise ValueError(f"{what} is {type(value).__name__} {str(value)[:40]!r}, not {kind.__name__}")
    return value


def expect_list(value: Any, kind: type, what: str = "a list") -> list:
    return [expect(v, kind, f"{what}[{i}]") for i, v in enumerate(expect(value, list, what))]


def field(data: Any, key: str, kind: type) -> Any:
    """data[key], checked to be a `kind` (see expect)."""
    if not isinstance(data, dict) or key not in data:
        raise ValueError(f"{str(data)[:60]!r} has no field {key!r}")
    return expect(data[key], kind, key)


def tensor_to_dict(info: TensorInfo) -> dict:
    return {"dtype": info.dtype, "shape": None if info.shape is None else list(info.shape)}


def tensor_from_dict(data: dict) -> TensorInfo:
    shape = expect(data, dict, "a tensor").get("shape")
    if shape is not None:
        shape = tuple(None if d is None else expect(d, int, "a dimension") for d in expect(shape, list, "a shape"))
    return TensorInfo(field(data, "dtype", str), shape)


_MISSING = object()


def _encode(value: Any, key: str, arrays: dict[str, np.ndarray]) -> Any:
    if isinstance(value, DType):
        return {"dtype": str(value)}
    if isinstance(value, ShapeAttr):
        return {"shape": list(value), "unknown_rank": value.unknown_rank}
    if isinstance(value, np.ndarray):
        arrays[key] = value
        return {"array": key}
    if isinstance(value, (list, tuple)):
        return [_encode(v, f"{key}/{i}", arrays) for i, v in enumerate(value)]
    if isinstance(value, np.generic):
        return value.item()
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise TypeError(f"attribute {key} has a value of type {type(value).__name__}, which a graph cannot hold")


def _decode(value: Any, arrays: dict[str, np.ndarray] | None, what: str) -> Any:
    if isinstance(value, list):
        return [_decode(v, arrays, what) for v in value]
    if isinstance(value, dict):
        if set(value) == {"dtype"}:
            return DType(field(value, "dtype", str))
        if set(value) == {"shape", "unknown_rank"}:
            shape = ShapeAttr(None if d is None else expect(d, int, what) for d in field(value, "shape", list))
            shape.unknown_rank = field(value, "unknown_rank", bool)
            return shape
        name = field(value, "array", str)
        if arrays is None or name not in arrays:
            return _MISSING
        return arrays[name]
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise ValueError(f"{what} has a value of type {type(value).__name__}")
