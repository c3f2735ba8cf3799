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
from .graph import (CONSTANT_OPS, QDQ_OPS, Graph, Node, TensorInfo, graph_from_dict, graph_to_dict, macs, normalize,
                    prune_and_sort, ref, tensor_from_dict, tensor_to_dict, total_macs)

# The plan's JSON layout; from_json refuses others.
FORMAT_VERSION = 1


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
    views: list[PlanNode] = dataclasses.field(default_factory=list)  # reshapes run as zero-copy views
    isa: str = ""                 # the instruction set oneDNN ran its kernels for when planning
    weight_bits: int = 8          # 7: weights of `seven_bit_ops` narrowed (see lower.qdq.seven_bit_weights)
    seven_bit_ops: list[str] = dataclasses.field(default_factory=list)
    # values of the partitions' constant inputs (int8 weights, quantized once by lower.translate)
    constants: dict[str, np.ndarray] = dataclasses.field(default_factory=dict, repr=False)
    layout_free: list[str] = dataclasses.field(default_factory=list)  # may stay in oneDNN's own layouts

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
        if self.views:
            lines.append(f"  {len(self.views)} Reshape(s) outside partitions run as zero-copy views in the executor")
        if self.isa:
            lines.append(f"  oneDNN ISA: {self.isa}" + ("" if self.weight_bits == 8 else
                         f"; 7-bit weights on {len(self.seven_bit_ops)} convolutions/matmuls"
                         + (" (no VNNI: u8 x s8 pairs would saturate in int16)"
                            if self.config.weight_bits is None else "")))
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
        """The inverse of to_dict. Without `arrays` the plan can be drawn and tabulated, not run."""
        if data.get("format") != FORMAT_VERSION:
            raise ValueError(f"plan format {data.get('format')!r} is not the format {FORMAT_VERSION} "
                             "this itexlab reads")
        constants = {name: arrays[f"constant:{name}"] for name in data["constants"]
                     if arrays is not None and f"constant:{name}" in arrays}
        return cls(graph_from_dict(data["source"], arrays),
                   [_partition_from_dict(p) for p in data["partitions"]],
                   [Fallback(**f) for f in data["fallback"]], PartitionConfig(**data["config"]),
                   [PlanNode(**v) for v in data["views"]], data["isa"], data["weight_bits"],
                   list(data["seven_bit_ops"]), constants, list(data["layout_free"]))

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
    return PlanTensor(data["name"], info.dtype, info.shape, data["constant"])


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
    return Partition(
        data["id"], data["name"], [PlanNode(**n) for n in data["nodes"]], [OneDnnOp(**op) for op in data["ops"]],
        [_tensor_from_dict(t) for t in data["inputs"]], [_tensor_from_dict(t) for t in data["outputs"]],
        {r: tensor_from_dict(t) for r, t in data["tensors"].items()},
        data["quantized"], None if data["byte_concat"] is None else ByteConcat(**data["byte_concat"]))


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
