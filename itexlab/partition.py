"""Partitioning: which TF nodes become one oneDNN Graph op, and why every other node stays on TF.

The result is a `Plan`, plain data: views and the CLI render it, the executor runs it.
"""

from __future__ import annotations

import dataclasses
import json
import warnings
from collections import Counter

from . import onednn, tfgraph
from .config import PartitionConfig
from .graph import CONSTANT_OPS, Graph, Node, TensorInfo, normalize, prune_and_sort, ref, split_ref
from .prepare import drop_identities
from .qdq import global_mean_as_pooling, quantize_commuting_ops, seven_bit_weights, split_shared_dequantize
from .translate import ONEDNN_DTYPES, Translation, translate

QUANTIZED_KINDS = {"Quantize", "Dequantize"}
WEIGHTED_OPS = ("Conv2D", "DepthwiseConv2dNative", "MatMul")


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
class Partition:
    """One oneDNN partition that replaces `nodes` with a single OneDnnGraph op."""

    id: int
    name: str                   # named after its last TF node, as ITEX does
    nodes: list[PlanNode]
    onednn_ops: list[str]       # oneDNN op kinds, in graph order
    inputs: list[PlanTensor]
    outputs: list[PlanTensor]
    quantized: bool
    onednn_index: int           # oneDNN's own index, to compile it


@dataclasses.dataclass(frozen=True)
class Fallback:
    """A node left to TensorFlow's own kernels, with the reason in words."""

    name: str
    op: str
    reason: str


@dataclasses.dataclass
class Plan:
    source: Graph                 # the INT8 (QDQ) graph that was partitioned
    partitions: list[Partition]
    fallback: list[Fallback]
    config: PartitionConfig
    views: list[PlanNode] = dataclasses.field(default_factory=list)  # reshapes run as zero-copy views
    isa: str = ""                 # the instruction set oneDNN ran its kernels for when planning
    weight_bits: int = 8          # 7: weights of `seven_bit_ops` narrowed (see qdq.seven_bit_weights)
    seven_bit_ops: list[str] = dataclasses.field(default_factory=list)
    translation: Translation | None = dataclasses.field(default=None, repr=False)
    onednn_graph: onednn.PartitionedGraph | None = dataclasses.field(default=None, repr=False)

    # -------------------------------------------------------------------------- plain data

    def fused_node_count(self) -> int:
        return sum(len(p.nodes) for p in self.partitions)

    def fallback_by_reason(self) -> Counter:
        return Counter(f.reason for f in self.fallback)

    def to_dict(self) -> dict:
        return {
            "config": dataclasses.asdict(self.config),
            "partitions": [{"id": p.id, "name": p.name, "quantized": p.quantized,
                            "onednn_ops": p.onednn_ops,
                            "nodes": [dataclasses.asdict(n) for n in p.nodes],
                            "inputs": [_tensor_dict(t) for t in p.inputs],
                            "outputs": [_tensor_dict(t) for t in p.outputs]} for p in self.partitions],
            "fallback": [dataclasses.asdict(f) for f in self.fallback],
            "views": [dataclasses.asdict(v) for v in self.views],
            "isa": self.isa, "weight_bits": self.weight_bits, "seven_bit_ops": list(self.seven_bit_ops),
        }

    def to_json(self, indent: int = 1) -> str:
        return json.dumps(self.to_dict(), indent=indent)

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
                            if onednn.int8_pairs_saturate(self.isa) else "")))
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.summary()

    def __repr__(self) -> str:
        # The dataclass default would print the whole source graph, weights included (a notebook
        # stores it as the plain-text twin of the drawing).
        return f"<Plan: {self.summary().splitlines()[0]}>"

    def _repr_html_(self) -> str:
        """The graph view as static HTML/SVG: shows in any notebook front end, survives nbconvert."""
        from .views import plan_html

        return plan_html(self)

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

    def graph_def(self):
        """The rewritten graph as a TF GraphDef (for export; `OneDnnGraph` has no stock TF kernel)."""
        return tfgraph.graph_def_from_graph(self.rewritten())


def _tensor_dict(t: PlanTensor) -> dict:
    return {"name": t.name, "dtype": t.dtype, "shape": None if t.shape is None else list(t.shape),
            "constant": t.constant}


def _is_op(node: Node) -> bool:
    return node.op not in CONSTANT_OPS and node.op != "Placeholder"


def make_plan(graph: Graph, config: PartitionConfig | None = None) -> Plan:
    """Partition a QDQ graph the way ITEX does, with its switches, and explain the leftovers."""
    config = config or PartitionConfig()
    if not config.onednn_graph:
        reason = "oneDNN Graph partitioning is off (ITEX_ONEDNN_GRAPH=0)"
        return Plan(graph, [], [Fallback(n.name, n.op, reason) for n in graph.nodes if _is_op(n)], config)
    unfolded = graph
    if config.tf_constant_folding:
        graph = tfgraph.grappler_constant_folding(graph)
    # Identities go first: every rewrite after this one sees an op's true producer, and a partition
    # never reads an Identity (the executor aliases them: an aliased tensor is not the one oneDNN
    # partitioned).
    graph = drop_identities(graph)
    isa = onednn.effective_isa()
    weight_bits = config.weight_bits or (7 if onednn.int8_pairs_saturate(isa) else 8)
    seven_bit_ops: list[str] = []
    if weight_bits == 7:
        graph, seven_bit_ops = seven_bit_weights(graph)
    graph = split_shared_dequantize(quantize_commuting_ops(global_mean_as_pooling(graph)))
    translation = translate(graph, seven_bit_weights=weight_bits == 7)
    partitioned = onednn.partition(translation)
    op_node = {op.id: op.node for op in translation.ops}
    op_kind = {op.id: op.kind for op in translation.ops}
    position = {n.name: i for i, n in enumerate(graph.nodes)}

    candidates, reasons = [], {}
    for part in partitioned.partitions:
        kinds = [op_kind[i] for i in sorted(part.op_ids)]
        names = [op_node[i] for i in sorted(part.op_ids)]
        if "Wildcard" in kinds:
            continue
        if part.supported:
            candidates.append((part, kinds, names))
        else:
            reasons.update((n, f"oneDNN has no kernel for this {'+'.join(kinds)} partition") for n in names)
    compilable = []
    for part, kinds, names in candidates:  # oneDNN 3.2 reports some partitions it cannot compile
        error = onednn.compile_error(partitioned, translation, part)
        if error:
            reasons.update((n, f"oneDNN reports this {'+'.join(kinds)} partition supported but cannot compile it "
                               f"({error})") for n in names)
        else:
            compilable.append((part, kinds, names))
    candidates = compilable
    chosen = _choose_offloaded(candidates, translation.constants, config)
    partitions: list[Partition] = []
    for part, kinds, names in candidates:
        if part.index not in chosen:
            why = ("partition has no quantized op and reads from TF (ITEX offloads INT8 partitions only; "
                   "see offload_fp32)")
            reasons.update((n, why) for n in names)
            continue
        absorbed = [split_ref(r)[0] for r in part.inputs if split_ref(r)[0] in translation.absorbed]
        members = sorted(set(names) | set(absorbed), key=position.__getitem__)
        partitions.append(Partition(
            id=len(partitions), name=members[-1],
            nodes=[PlanNode(n, graph.node(n).op) for n in members], onednn_ops=kinds,
            inputs=[_plan_tensor(translation, r) for r in part.inputs],
            outputs=[_plan_tensor(translation, r) for r in part.outputs],
            quantized=bool(QUANTIZED_KINDS & set(kinds)), onednn_index=part.index))

    fused = {n.name for p in partitions for n in p.nodes}
    consumers = graph.consumers()
    fallback, views = [], []
    for node in graph.nodes:
        if not _is_op(node) or node.name in fused:
            continue
        if runs_as_view(node, graph):
            views.append(PlanNode(node.name, node.op))
            continue
        if node.name in translation.refused:
            reason = translation.refused[node.name]
        elif node.name in translation.absorbed:
            users = ", ".join(c.name for c in consumers.get(node.name, []))
            reason = f"quantizes constant weights for {users}, which stays on TF"
        else:
            reason = reasons.get(node.name, "not in any oneDNN partition")
        if config.tf_constant_folding and _weight_qdq_folded(node, graph, unfolded):
            reason = "weight QDQ was constant-folded away (ITEX_TF_CONSTANT_FOLDING=1): no INT8 pattern"
        fallback.append(Fallback(node.name, node.op, reason))
    plan = Plan(graph, partitions, fallback, config, views, isa, weight_bits, seven_bit_ops, translation, partitioned)
    if any(p.quantized for p in plan.partitions):
        warn_if_int8_is_slow(isa, weight_bits)
    return plan


_warned_isa = False


class Int8SpeedWarning(UserWarning):
    """INT8 runs here without the instructions that make it fast."""


def warn_if_int8_is_slow(isa: str, weight_bits: int) -> None:
    """Say once per process when oneDNN's INT8 kernels lack VNNI/AMX here (and every time a plan
    forces 8-bit weights on them)."""
    global _warned_isa
    if not onednn.int8_pairs_saturate(isa):
        return
    if weight_bits == 8:
        warnings.warn(f"8-bit weights on {isa} kernels (no VNNI or AMX): int16 sums of int8 products may saturate "
                      "and give wrong results; weight_bits=None chooses 7 here", Int8SpeedWarning, stacklevel=3)
    elif not _warned_isa:
        warnings.warn(f"oneDNN runs INT8 with {isa} kernels on this CPU (no VNNI or AMX): INT8 speedups over FP32 "
                      "will be smaller than on CPUs with VNNI, and itexlab uses 7-bit weights for convolutions and "
                      "matmuls so that no int16 sum saturates", Int8SpeedWarning, stacklevel=3)
    _warned_isa = True


def _choose_offloaded(candidates, constants, config: PartitionConfig) -> set[int]:
    """ITEX offloads a supported partition when it holds a Quantize/Dequantize. We also offload an
    FP32 partition whose every input comes from offloaded partitions (e.g. the last concat and
    global pooling of Inception V3): sending its data back to TF would only add a round trip."""
    chosen = {p.index for p, kinds, _ in candidates if config.offload_fp32 or QUANTIZED_KINDS & set(kinds)}
    producer = {out: p.index for p, _, _ in candidates for out in p.outputs}
    changed = True
    while changed:
        changed = False
        for part, _, _ in candidates:
            if part.index in chosen:
                continue
            sources = [producer.get(r) for r in part.inputs if r not in constants]
            if sources and all(s in chosen for s in sources):
                chosen.add(part.index)
                changed = True
    return chosen


def runs_as_view(node: Node, graph: Graph) -> bool:
    """A Reshape to a constant shape of a plain tensor: no computation, the executor reinterprets
    the buffer (oneDNN makes no partition of a lone StaticReshape)."""
    return (node.op == "Reshape" and graph.constant(node.inputs[1]) is not None
            and graph.tensor(node.inputs[0]).dtype in ONEDNN_DTYPES)


def _weight_qdq_folded(node: Node, folded: Graph, unfolded: Graph) -> bool:
    if node.op not in WEIGHTED_OPS or node.name not in unfolded:
        return False
    before = unfolded.node(unfolded.node(node.name).inputs[1])
    after = folded.node(node.inputs[1])
    if after.op == "Dequantize":  # TF folded the QuantizeV2 into a qint8 constant but kept this
        after = folded.node(after.inputs[0])
    return before.op == "Dequantize" and after.op in CONSTANT_OPS


def _plan_tensor(translation: Translation, reference: str) -> PlanTensor:
    info = translation.tensors[reference]
    return PlanTensor(reference, info.dtype, info.shape, reference in translation.constants)
