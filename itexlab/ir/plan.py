"""The plan: which TF nodes became one oneDNN Graph op, why every other node stayed on TF, and how
the executor should lay out their tensors. Plain data all through (dataclasses, numpy arrays for
weights), written by `itexlab.lower`, run by `itexlab.runtime`, drawn and tabulated by
`itexlab.report`; JSON and back with `to_json` / `from_json`.
"""

from __future__ import annotations

import dataclasses
import json
from collections import Counter
from typing import Any

import numpy as np

from ..config import PartitionConfig
from ..errors import ModelError
from .graph import (CONSTANT_OPS, QDQ_OPS, QUANTIZED_DTYPES, Graph, Node, TensorInfo, expect, expect_list, field,
                    graph_from_dict, graph_to_dict, macs, normalize, prune_and_sort, ref, tensor_from_dict,
                    tensor_to_dict, total_macs)
from .speed import SpeedCheck

# The plan's JSON layout; from_json refuses others.
FORMAT_VERSION = 1
# The ops the executor may run itself, outside partitions (itexlab.lower.views), and how
VIEW_OPS = {"Reshape": "zero-copy view", "ExpandDims": "zero-copy view", "Squeeze": "zero-copy view",
            "Transpose": "oneDNN reorder", "StridedSlice": "strided copy"}


@dataclasses.dataclass(frozen=True)
class PlanTensor:
    name: str
    dtype: str
    shape: tuple[int | None, ...] | None
    constant: bool = False

    def describe(self) -> str:
        return TensorInfo(self.dtype, self.shape).describe()


@dataclasses.dataclass(frozen=True)
class PlanNode:
    name: str
    op: str


@dataclasses.dataclass
class OneDnnOp:
    """One oneDNN Graph op, as it is handed to oneDNN: its kind, the TF node it comes from, tensor
    references, and attributes as plain numbers, strings and lists."""

    id: int
    kind: str                      # oneDNN op kind, e.g. "Convolution"
    node: str                      # the TF node it comes from
    inputs: list[str]
    outputs: list[str]
    attrs: dict = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class ByteConcat:
    """A partition that only concatenates already-quantized bytes: the executor copies `sources`
    side by side along `axis` instead of running oneDNN Graph's compiled concat."""

    axis: int
    sources: list[str]


@dataclasses.dataclass
class Partition:
    """One oneDNN partition that replaces `nodes` with a single OneDnnGraph op."""

    id: int
    name: str                        # named after its last TF node, as ITEX does
    nodes: list[PlanNode]
    ops: list[OneDnnOp]              # its oneDNN ops, in graph order
    inputs: list[PlanTensor]         # in oneDNN's port order when it was planned
    outputs: list[PlanTensor]
    tensors: dict[str, TensorInfo]   # every tensor its ops read or write
    quantized: bool
    byte_concat: ByteConcat | None = None

    @property
    def onednn_ops(self) -> list[str]:
        return [op.kind for op in self.ops]

    @property
    def compute_nodes(self) -> list[PlanNode]:
        """Its TF nodes other than QuantizeV2/Dequantize."""
        return [n for n in self.nodes if n.op not in QDQ_OPS]


@dataclasses.dataclass(frozen=True)
class Fallback:
    """A node left to TensorFlow's own kernels, with the reason in words."""

    name: str
    op: str
    reason: str


@dataclasses.dataclass
class Plan:
    source: Graph                 # the INT8 (QDQ) graph as it was partitioned
    partitions: list[Partition]
    fallback: list[Fallback]
    config: PartitionConfig
    # run by the executor itself (lower.views), as VIEW_OPS says
    views: list[PlanNode] = dataclasses.field(default_factory=list)
    isa: str = ""                 # the instruction set oneDNN ran its kernels for when planning
    weight_bits: int = 8          # 7: weights of `seven_bit_ops` narrowed (see lower.qdq.seven_bit_weights)
    seven_bit_ops: list[str] = dataclasses.field(default_factory=list)
    # values of the partitions' constant inputs (int8 weights, quantized once by lower.translate)
    constants: dict[str, np.ndarray] = dataclasses.field(default_factory=dict, repr=False)
    layout_free: list[str] = dataclasses.field(default_factory=list)  # may stay in oneDNN's own layouts
    # INT8 against FP32 as the first run of a CompiledModel of this plan measured it (not saved:
    # it holds for the CPU and batch it was measured on)
    speed: SpeedCheck | None = dataclasses.field(default=None, repr=False, compare=False)

    def fused_node_count(self) -> int:
        return sum(len(p.nodes) for p in self.partitions)

    def fallback_by_reason(self) -> Counter:
        return Counter(f.reason for f in self.fallback)

    def summary(self) -> str:
        ops = Counter(n.op for p in self.partitions for n in p.nodes)
        lines = [f"{len(self.partitions)} oneDNN partitions "
                 f"({sum(p.quantized for p in self.partitions)} INT8) fuse {self.fused_node_count()} TF ops; "
                 f"{len(self.fallback)} ops left to TensorFlow"]
        if ops:
            lines.append("  fused: " + ", ".join(f"{op} {n}" for op, n in ops.most_common()))
        for reason, n in self.fallback_by_reason().most_common():
            lines.append(f"  left to TF ({n}): {reason}")
        for how in dict.fromkeys(VIEW_OPS.values()):
            ops = Counter(v.op for v in self.views if VIEW_OPS.get(v.op) == how)
            if ops:
                lines.append(f"  {', '.join(f'{n} {op}(s)' for op, n in ops.items())} outside partitions run as "
                             f"{how}s in the executor")
        if self.isa:
            lines.append(f"  oneDNN ISA: {self.isa}" + ("" if self.weight_bits == 8 else
                         f"; 7-bit weights on {len(self.seven_bit_ops)} convolutions/matmuls"
                         + (" (no VNNI: u8 x s8 pairs would saturate in int16)"
                            if self.config.weight_bits is None else "")))
        if self.speed is not None:
            lines += ["  " + line for line in self.speed.summary_lines()]
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.summary()

    def __repr__(self) -> str:
        # The dataclass default would print the whole source graph, weights included (a notebook
        # stores it as the plain-text twin of the drawing).
        return f"<Plan: {self.summary().splitlines()[0]}>"

    def _repr_html_(self) -> str:
        """The graph view as static HTML/SVG: shows in any notebook front end, survives nbconvert."""
        from ..report.views import plan_html  # a rendering of this data, loaded when a notebook asks

        return plan_html(self)

    # -------------------------------------------------------------------------- as JSON

    def to_dict(self, arrays: dict[str, np.ndarray] | None = None) -> dict:
        """JSON-able data. Weights and other arrays go into `arrays` (when given) under the names
        the data refers to them by, for an .npz beside the JSON."""
        arrays = {} if arrays is None else arrays
        for name, value in self.constants.items():
            arrays[f"constant:{name}"] = value
        return {
            "format": FORMAT_VERSION,
            "config": dataclasses.asdict(self.config),
            "isa": self.isa, "weight_bits": self.weight_bits, "seven_bit_ops": list(self.seven_bit_ops),
            "partitions": [_partition_to_dict(p) for p in self.partitions],
            "fallback": [dataclasses.asdict(f) for f in self.fallback],
            "views": [dataclasses.asdict(v) for v in self.views],
            "constants": sorted(self.constants),
            "layout_free": list(self.layout_free),
            "source": graph_to_dict(self.source, arrays),
        }

    def to_json(self, indent: int | None = 1) -> str:
        return json.dumps(self.to_dict(), indent=indent)

    def arrays(self) -> dict[str, np.ndarray]:
        """The arrays `to_json` leaves out, by name: the graph's constants and the partitions' weights."""
        arrays: dict[str, np.ndarray] = {}
        self.to_dict(arrays)
        return arrays

    @classmethod
    def from_dict(cls, data: dict, arrays: dict[str, np.ndarray] | None = None) -> "Plan":
        """The inverse of to_dict. Without `arrays` the plan can be drawn and tabulated, not run.
        ValueError names a field that is missing or of the wrong type (data from a file)."""
        if expect(data, dict, "a plan").get("format") != FORMAT_VERSION:
            raise ValueError(f"plan format {data.get('format')!r} is not the format {FORMAT_VERSION} "
                             "this itexlab reads")
        constants = {name: arrays[f"constant:{name}"] for name in expect_list(field(data, "constants", list), str)
                     if arrays is not None and f"constant:{name}" in arrays}
        config = field(data, "config", dict)
        for name, value in config.items():
            if name != "weight_bits":
                expect(value, bool, f"config.{name}")
        return cls(graph_from_dict(field(data, "source", dict), arrays),
                   [_partition_from_dict(p) for p in field(data, "partitions", list)],
                   [Fallback(field(f, "name", str), field(f, "op", str), field(f, "reason", str))
                    for f in field(data, "fallback", list)],
                   PartitionConfig(**config),
                   [_plan_node(v) for v in field(data, "views", list)], field(data, "isa", str),
                   field(data, "weight_bits", int), expect_list(field(data, "seven_bit_ops", list), str), constants,
                   expect_list(field(data, "layout_free", list), str))

    @classmethod
    def from_json(cls, text: str, arrays: dict[str, np.ndarray] | None = None) -> "Plan":
        return cls.from_dict(json.loads(text), arrays)

    def runnable(self) -> bool:
        """Whether the plan holds its weights (a plan read from JSON alone does not)."""
        wanted = {t.name for p in self.partitions for t in p.inputs if t.constant}
        return wanted <= set(self.constants) and all("value" in n.attrs for n in self.source.nodes
                                                     if n.op in CONSTANT_OPS)

    # ------------------------------------------------------------------ the rewritten graph

    def rewritten(self) -> Graph:
        """The graph as it runs: each partition is one `OneDnnGraph` node carrying the names of the
        ops it fused; everything else is the TF graph as it was."""
        replaced = {n.name for p in self.partitions for n in p.nodes}  # views stay as the Reshapes they are
        mapping: dict[str, str] = {}
        nodes: list[Node] = []
        for p in self.partitions:
            for k, t in enumerate(p.outputs):
                mapping[t.name] = ref(p.name, k)
            nodes.append(Node(p.name, "OneDnnGraph",
                              [t.name for t in p.inputs if not t.constant],
                              {"fused_ops": [n.name for n in p.nodes], "onednn_ops": list(p.onednn_ops),
                               "partition_id": p.id},
                              [TensorInfo(t.dtype, t.shape) for t in p.outputs]))
        nodes += [n for n in self.source.nodes if n.name not in replaced]
        nodes = [dataclasses.replace(n, inputs=[mapping.get(normalize(r), r) for r in n.inputs]) for n in nodes]
        outputs = [mapping.get(normalize(r), r) for r in self.source.outputs]
        return Graph(prune_and_sort(nodes, outputs), list(self.source.inputs), outputs)


def _tensor_to_dict(t: PlanTensor) -> dict:
    return {"name": t.name, **tensor_to_dict(TensorInfo(t.dtype, t.shape)), "constant": t.constant}


def _tensor_from_dict(data: dict) -> PlanTensor:
    info = tensor_from_dict(data)
    return PlanTensor(field(data, "name", str), info.dtype, info.shape, field(data, "constant", bool))


def _plan_node(data: dict) -> PlanNode:
    return PlanNode(field(data, "name", str), field(data, "op", str))


def plain(value: Any) -> Any:
    """numpy scalars and arrays in op attributes as JSON numbers and lists."""
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return value


def _partition_to_dict(p: Partition) -> dict:
    return {"id": p.id, "name": p.name, "quantized": p.quantized,
            "nodes": [dataclasses.asdict(n) for n in p.nodes],
            "ops": [{"id": op.id, "kind": op.kind, "node": op.node, "inputs": list(op.inputs),
                     "outputs": list(op.outputs), "attrs": dict(op.attrs)}
                    for op in p.ops],
            "inputs": [_tensor_to_dict(t) for t in p.inputs],
            "outputs": [_tensor_to_dict(t) for t in p.outputs],
            "tensors": {r: tensor_to_dict(t) for r, t in p.tensors.items()},
            "byte_concat": None if p.byte_concat is None else dataclasses.asdict(p.byte_concat)}


def _partition_from_dict(data: dict) -> Partition:
    concat = expect(data, dict, "a partition").get("byte_concat")
    if concat is not None:
        concat = ByteConcat(field(concat, "axis", int), expect_list(field(concat, "sources", list), str))
    ops = [OneDnnOp(field(op, "id", int), field(op, "kind", str), field(op, "node", str),
                    expect_list(field(op, "inputs", list), str), expect_list(field(op, "outputs", list), str),
                    field(op, "attrs", dict)) for op in field(data, "ops", list)]
    return Partition(
        field(data, "id", int), field(data, "name", str), [_plan_node(n) for n in field(data, "nodes", list)], ops,
        [_tensor_from_dict(t) for t in field(data, "inputs", list)],
        [_tensor_from_dict(t) for t in field(data, "outputs", list)],
        {r: tensor_from_dict(t) for r, t in field(data, "tensors", dict).items()},
        field(data, "quantized", bool), concat)


# ------------------------------------------------------------------------------ counts

def mac_share(plan: "Plan") -> float:
    """Share of the model's multiply-accumulates that run inside INT8 partitions."""
    int8_nodes = {n.name for p in plan.partitions if p.quantized for n in p.nodes}
    inside = sum(macs(node, plan.source) for node in plan.source.nodes if node.name in int8_nodes)
    total = total_macs(plan.source)
    return inside / total if total else 0.0


@dataclasses.dataclass(frozen=True)
class Counts:
    partitions: int
    int8_partitions: int
    fused_ops: int
    tf_ops: int
    views: int
    int8_mac_share: float

    def headline(self) -> str:
        return (f"{self.partitions} oneDNN partitions ({self.int8_partitions} INT8) · {self.fused_ops} ops fused · "
                f"{self.tf_ops} left to TF · {100 * self.int8_mac_share:.1f}% of MACs in INT8 partitions")


def counts(plan: "Plan") -> Counts:
    return Counts(len(plan.partitions), sum(p.quantized for p in plan.partitions), plan.fused_node_count(),
                  len(plan.fallback), len(plan.views), mac_share(plan))


# ------------------------------------------------------------------------------ consistency

def check(plan: Plan) -> None:
    """ModelError naming the first way the parts of a plan disagree with each other (each check of
    _problems may assume the ones before it passed). make_plan's
    plans agree by construction; a plan read from a file may have been edited or forged, and the
    executor and oneDNN must never be handed one whose partitions, tensors, weights and graph do
    not fit together (oneDNN's own rules for each op are checked at the oneDNN boundary)."""
    problem = next(_problems(plan), None)
    if problem:
        raise ModelError(f"the plan is inconsistent: {problem}")


def _tensor_problem(info) -> str | None:
    if not isinstance(info, TensorInfo) or not isinstance(info.dtype, str):
        return "is not a tensor description"
    if info.shape is not None and not (isinstance(info.shape, tuple) and all(
            d is None or (isinstance(d, int) and not isinstance(d, bool) and 0 <= d < 2**31) for d in info.shape)):
        return f"has the shape {info.shape!r}"
    return None


def _output_of(graph: Graph, reference) -> TensorInfo | None:
    """The tensor a reference names in the graph, or None when no node has that output."""
    if not isinstance(reference, str):
        return None
    name, _, index = reference.partition(":")
    if name not in graph or not (index == "" or index.isdigit()):
        return None
    outputs = graph.node(name).outputs
    position = int(index or 0)
    return outputs[position] if position < len(outputs) else None


def _problems(plan: Plan):
    graph = plan.source
    for node in graph.nodes:
        if not (isinstance(node.name, str) and isinstance(node.op, str) and isinstance(node.inputs, list)
                and isinstance(node.outputs, list) and isinstance(node.attrs, dict)):
            yield f"node {str(node.name)[:80]!r} is not a node description"
        for info in node.outputs:
            if _tensor_problem(info):
                yield f"an output of node {node.name!r} {_tensor_problem(info)}"
        for r in node.inputs:
            if _output_of(graph, r) is None:
                yield f"node {node.name!r} reads {str(r)[:80]!r}, which no node of the graph computes"
        value = node.attrs.get("value") if node.op in CONSTANT_OPS else None
        numeric = len(node.outputs) == 1 and _numpy_dtype(node.outputs[0].dtype) is not None
        if isinstance(value, np.ndarray) and numeric and (
                value.dtype != _numpy_dtype(node.outputs[0].dtype)
                or node.outputs[0].shape not in (None, tuple(value.shape))):  # TF gives HostConst no shape
            yield f"the value of constant {node.name!r} is not the tensor the graph says it is"
    for r in graph.inputs:
        if _output_of(graph, r) is None or graph.node(r).op != "Placeholder":
            yield f"the graph input {str(r)[:80]!r} is not a Placeholder of the graph"
    for r in graph.outputs:
        if _output_of(graph, r) is None:
            yield f"the graph output {str(r)[:80]!r} is not a tensor of the graph"
    try:
        prune_and_sort(graph.nodes, list(graph.outputs))
    except ValueError as e:
        yield str(e)
    if plan.weight_bits not in (7, 8) or not isinstance(plan.isa, str):
        yield f"weight bits {plan.weight_bits!r} or ISA {plan.isa!r}"
    placed: dict[str, str] = {}
    op_ids: set = set()
    produced = {}  # tensor -> partition id, for partition outputs
    computed = {t.name for p in plan.partitions for t in p.outputs if isinstance(t, PlanTensor)}
    for index, p in enumerate(plan.partitions):
        if p.id != index or not isinstance(p.name, str) or not isinstance(p.quantized, bool) or not p.ops:
            yield f"partition {index} is not a partition description (id {p.id!r})"
        for n in p.nodes:
            if n.name not in graph or graph.node(n.name).op != n.op or n.name in placed:
                yield f"partition {p.id} holds {str(n.name)[:80]!r} ({n.op}), which is not an op of the graph placed once"
            placed[n.name] = f"partition {p.id}"
        if not isinstance(p.tensors, dict):
            yield f"partition {p.id} describes no tensors"
        # Weights may take another form in oneDNN (a scalar as [1], depthwise weights regrouped); every
        # other tensor of the graph a partition touches is what the graph says it is.
        weights = {t.name for t in p.inputs if t.constant} | {
            o for op in p.ops if op.kind == "Dequantize" and set(op.inputs) <= {t.name for t in p.inputs if t.constant}
            for o in op.outputs}
        for r, info in p.tensors.items():
            source = None if r in weights else _output_of(graph, r)
            if _tensor_problem(info) or (source is not None and source != info):
                yield f"partition {p.id}'s tensor {str(r)[:80]!r} is not what the graph says it is"
        names = {n.name for n in p.nodes}
        written = set()
        for op in p.ops:
            if not isinstance(op.id, int) or op.id in op_ids or op.node not in names:
                yield f"partition {p.id} has an op {op.id!r} that is not its own or not its only one"
            op_ids.add(op.id)
            if not isinstance(op.outputs, list) or not isinstance(op.inputs, list):
                yield f"op {op.id} of partition {p.id} has no tensor lists"
            written.update(o for o in op.outputs if isinstance(o, str))
        for t in p.inputs + p.outputs:
            if not isinstance(t, PlanTensor) or t.name not in p.tensors or TensorInfo(t.dtype, t.shape) != p.tensors[t.name]:
                yield f"partition {p.id}'s port {getattr(t, 'name', t)!r} is not one of its tensors"
        for t in p.inputs:
            if t.constant:
                value = plan.constants.get(t.name)
                if value is not None and (not isinstance(value, np.ndarray) or tuple(value.shape) != t.shape
                                          or _numpy_dtype(t.dtype) != value.dtype):
                    yield f"the weights {t.name!r} of partition {p.id} do not have the shape and type {t.describe()}"
            elif _output_of(graph, t.name) is None and t.name not in computed:
                yield f"partition {p.id} reads {t.name!r}, which nothing computes"
        for t in p.outputs:
            if t.name not in written or t.name in produced:
                yield f"partition {p.id}'s output {t.name!r} is not computed by it alone"
            produced[t.name] = p.id
        if p.byte_concat is not None:
            concat = p.byte_concat
            inputs = [t.name for t in p.inputs if not t.constant]
            if (not isinstance(concat.axis, int) or not isinstance(concat.sources, list)
                    or any(s not in inputs for s in concat.sources) or len(p.outputs) != 1
                    or not 0 <= concat.axis < len(p.outputs[0].shape or ())):
                yield f"partition {p.id}'s byte concat does not fit its ports"
    for where, items in (("TF", plan.fallback), ("view", plan.views)):
        for item in items:
            if item.name not in graph or graph.node(item.name).op != item.op or item.name in placed:
                yield f"the {where} node {str(item.name)[:80]!r} ({item.op}) is not an op of the graph placed once"
            placed[item.name] = where
    for node in plan.source.nodes:
        if node.op not in CONSTANT_OPS and node.op != "Placeholder" and node.name not in placed:
            yield f"node {node.name!r} ({node.op}) runs nowhere: in no partition, not on TF, not a view"
    for view in plan.views:
        node = graph.node(view.name)
        if node.op not in VIEW_OPS or any(not graph.is_constant(r) for r in node.inputs[1:]):
            yield f"the view {view.name!r} is not one of {', '.join(VIEW_OPS)} with constant parameters"
    if any(r not in produced for r in plan.layout_free):
        yield "a tensor kept in oneDNN's layout is not a partition output"


def _numpy_dtype(dtype: str) -> np.dtype | None:
    """The numpy type of a TF type of numbers or booleans (None for strings, resources, ...)."""
    try:
        found = np.dtype(QUANTIZED_DTYPES.get(dtype, dtype))
    except TypeError:
        return None
    return found if found.kind in "biufc" else None
