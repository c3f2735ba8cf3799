"""Partitioning: which TF nodes become one oneDNN Graph op, and why every other node stays on TF.

The result is a `Plan` (itexlab.ir.plan), plain data: the report renders it, the runtime runs it.
"""

from __future__ import annotations

import dataclasses
import warnings

from ..backend import onednn, opset
from ..config import PartitionConfig
from ..frontend import tfgraph
from ..ir.graph import CONSTANT_OPS, MATMUL_OPS, Graph, Node, normalize, split_ref
from ..ir.plan import Fallback, Partition, Plan, PlanNode, PlanTensor, plain
from ..quant.prepare import drop_identities
from .layouts import byte_concat, layout_free_tensors
from .qdq import (bias_before_reshape, global_mean_as_pooling, pad_into_max_pool, quantize_commuting_ops, seven_bit_weights,
                  split_shared_dequantize, tensordot_as_batch_matmul)
from .translate import Translation, translate
from .views import executor_step

QUANTIZED_KINDS = {"Quantize", "Dequantize"}
WEIGHTED_OPS = ("Conv2D", "DepthwiseConv2dNative", *MATMUL_OPS)  # ops whose input 1 may be weights


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
    graph = bias_before_reshape(tensordot_as_batch_matmul(drop_identities(graph)))
    isa = onednn.effective_isa()
    weight_bits = config.weight_bits or (7 if onednn.int8_pairs_saturate(isa) else 8)
    seven_bit_ops: list[str] = []
    if weight_bits == 7:
        graph, seven_bit_ops = seven_bit_weights(graph)
    graph = split_shared_dequantize(quantize_commuting_ops(pad_into_max_pool(global_mean_as_pooling(graph))))
    translation, partitioned = _partitioned(graph, weight_bits == 7, isa)
    ops_by_id = {op.id: op for op in translation.ops}
    position = {n.name: i for i, n in enumerate(graph.nodes)}

    candidates, reasons = [], {}
    for part in partitioned.partitions:
        kinds = [ops_by_id[i].kind for i in sorted(part.op_ids)]
        names = [ops_by_id[i].node for i in sorted(part.op_ids)]
        if "Wildcard" in kinds:
            continue
        if part.supported:
            candidates.append((part, kinds, names))
        else:
            reasons.update((n, f"oneDNN has no kernel for this {'+'.join(kinds)} partition") for n in names)
    compilable = []
    for part, kinds, names in candidates:  # oneDNN 3.2 reports some partitions it cannot compile
        error = onednn.compile_error(partitioned, part)
        if error:
            reasons.update((n, f"oneDNN reports this {'+'.join(kinds)} partition supported but cannot compile it "
                               f"({error})") for n in names)
        else:
            compilable.append((part, kinds, names))
    candidates = compilable
    # ITEX_TF_CONSTANT_FOLDING=1: a weighted op whose weight QDQ TF folded away has no INT8 pattern and
    # stays on TF, as in ITEX (the plan says so for it), even where an FP32 partition could take it.
    folded = {n.name for n in graph.nodes if config.tf_constant_folding and _weight_qdq_folded(n, graph, unfolded)}
    chosen = _choose_offloaded([c for c in candidates if not folded & set(c[2])], translation.constants, config,
                               graph)
    partitions: list[Partition] = []
    for part, kinds, names in candidates:
        if part.index not in chosen:
            why = ("partition has no quantized op and reads from TF (ITEX offloads INT8 partitions only; "
                   "see offload_fp32)")
            reasons.update((n, why) for n in names)
            continue
        absorbed = [split_ref(r)[0] for r in part.inputs if split_ref(r)[0] in translation.absorbed]
        grouped = [n for n, anchor in translation.covered.items() if anchor in names]  # by a pattern's op
        members = sorted(set(names) | set(absorbed) | set(grouped), key=position.__getitem__)
        ops = [ops_by_id[i] for i in sorted(part.op_ids)]
        ops = [dataclasses.replace(op, attrs={k: plain(v) for k, v in op.attrs.items()}) for op in ops]
        references = dict.fromkeys(r for op in ops for r in op.inputs + op.outputs)
        partition = Partition(
            id=len(partitions), name=members[-1],
            nodes=[PlanNode(n, graph.node(n).op) for n in members], ops=ops,
            inputs=[_plan_tensor(translation, r) for r in part.inputs],
            outputs=[_plan_tensor(translation, r) for r in part.outputs],
            tensors={r: translation.tensors[r] for r in references},
            quantized=bool(QUANTIZED_KINDS & set(kinds)))
        partitions.append(dataclasses.replace(partition, byte_concat=byte_concat(partition)))

    fused = {n.name for p in partitions for n in p.nodes}
    consumers = graph.consumers()
    fallback, views = [], []
    for node in graph.nodes:
        if not _is_op(node) or node.name in fused:
            continue
        if executor_step(node, graph) is not None:
            views.append(PlanNode(node.name, node.op))
            continue
        if node.name in translation.refused:
            reason = translation.refused[node.name]
        elif node.name in translation.absorbed:
            users = ", ".join(c.name for c in consumers.get(node.name, []))
            reason = f"quantizes constant weights for {users}, which stays on TF"
        else:
            anchor = translation.covered.get(node.name, node.name)  # a pattern's nodes go where its op goes
            reason = reasons.get(anchor, "not in any oneDNN partition")
        if config.tf_constant_folding and _weight_qdq_folded(node, graph, unfolded):
            reason = "weight QDQ was constant-folded away (ITEX_TF_CONSTANT_FOLDING=1): no INT8 pattern"
        fallback.append(Fallback(node.name, node.op, reason))
    constants = {t.name: translation.constants[t.name] for p in partitions for t in p.inputs if t.constant}
    plan = Plan(graph, partitions, fallback, config, views, isa, weight_bits, seven_bit_ops, constants,
                layout_free_tensors(graph, partitions))
    if any(p.quantized for p in plan.partitions):
        warn_if_int8_is_slow(isa, weight_bits)
    return plan


def _partitioned(graph: Graph, seven_bit: bool, isa: str) -> tuple[Translation, onednn.PartitionedGraph]:
    """The graph translated and partitioned by oneDNN. A node stays on TF, with the reason, when
    oneDNN's own checks refuse one of its ops as it is added (beyond opset's rules), or when
    oneDNN puts the ops it became (x³ as Square and Multiply) into different partitions: a TF node
    runs in one place."""
    refuse: dict[str, str] = {}
    while True:
        translation = translate(graph, seven_bit_weights=seven_bit, refuse=refuse, isa=isa)
        try:
            partitioned = onednn.partition(translation.ops, translation.tensors, translation.constants)
        except opset.InvalidOp as e:
            if not e.node or e.node in refuse or e.node not in graph:
                raise
            refuse[e.node] = f"{graph.node(e.node).op} not translated: {e}"
            continue
        node_of = {op.id: op.node for op in translation.ops if op.kind != "Wildcard"}
        where: dict[str, set[int]] = {}
        for part in partitioned.partitions:
            for op_id in part.op_ids:
                if op_id in node_of:
                    where.setdefault(node_of[op_id], set()).add(part.index)
        split = [name for name, parts in where.items() if len(parts) > 1 and name not in refuse]
        if not split:
            return translation, partitioned
        refuse.update((name, f"{graph.node(name).op} not translated: oneDNN puts its ops into different partitions")
                      for name in split)


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


INPUT = -1  # the source of a graph input: it is in the executor before any step runs


def _choose_offloaded(candidates, constants, config: PartitionConfig, graph: Graph) -> set[int]:
    """ITEX offloads a supported partition when it holds a Quantize/Dequantize. We also offload an
    FP32 partition whose every input comes from offloaded partitions (e.g. the last concat and
    global pooling of Inception V3) or is a graph input, directly or through zero-copy reshapes:
    sending its data back to TF would only add a round trip. One that reads graph inputs alone
    stays on TF: oneDNN 3.2 runs a per-channel normalization of an image (EfficientNet's: a
    subtraction and a division broadcast over 3 channels) with a reference kernel, 15 ms against
    TF's 2 ms at 224x224."""
    chosen = {p.index for p, kinds, _ in candidates if config.offload_fp32 or QUANTIZED_KINDS & set(kinds)}
    producer = {out: p.index for p, _, _ in candidates for out in p.outputs}

    producer.update({normalize(r): INPUT for r in graph.inputs})  # in the executor from the start
    for node in graph.nodes:  # a view's output comes from where its input comes from
        if executor_step(node, graph) is not None and normalize(node.inputs[0]) in producer:
            producer[node.name] = producer[normalize(node.inputs[0])]
    changed = True
    while changed:
        changed = False
        for part, _, _ in candidates:
            if part.index in chosen:
                continue
            sources = [producer.get(r) for r in part.inputs if r not in constants]
            if any(s in chosen for s in sources) and all(s in chosen or s == INPUT for s in sources):
                chosen.add(part.index)
                changed = True
    return chosen


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
