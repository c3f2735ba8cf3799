"""TF -> oneDNN Graph op translation: the driver that runs the rules (itexlab.lower.rules) over a
graph. Patterns claim their groups of nodes first; every other node goes through the rule of its
op type, or becomes a Wildcard (an op oneDNN must know is there, which runs on TF). Every op a rule
makes is checked by oneDNN's rules for its kind (backend.opset) before anything is partitioned.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from ..backend import onednn, opset
from ..ir.graph import CONSTANT_OPS, Graph, Node, TensorInfo, normalize, ref
from ..ir.plan import OneDnnOp
from .rules import PATTERNS, RULES, Context, Untranslatable

# Ops with no oneDNN Graph counterpart that models commonly hold, and why they stay on TF.
_GATHER = ("an embedding lookup or gather: oneDNN Graph 3.2 has no gather op, and TF's kernel reads only the rows "
           "the ids name (no multiply-accumulates to gain)")
WHY_NOT = {"GatherV2": _GATHER, "Gather": _GATHER, "ResourceGather": _GATHER,
           "Shape": "computes a tensor's shape: integer bookkeeping that oneDNN has no op for, cheap on TF"}


@dataclasses.dataclass
class Translation:
    ops: list[OneDnnOp]                            # translated ops and Wildcards, in graph order
    constants: dict[str, np.ndarray]             # tensor reference -> value for constant inputs
    absorbed: set[str]                           # weight QuantizeV2 nodes folded into int8 constants
    refused: dict[str, str]                      # TF node -> why it has no translation
    tensors: dict[str, TensorInfo]               # every tensor reference the ops use
    covered: dict[str, str] = dataclasses.field(default_factory=dict)  # TF node -> the pattern's anchor node

    @property
    def translated(self) -> set[str]:
        return {op.node for op in self.ops if op.kind != "Wildcard"}


# ----------------------------------------------------------------------------------- driver

def translate(graph: Graph, seven_bit_weights: bool = False, refuse: dict[str, str] | None = None,
              isa: str | None = None) -> Translation:
    """Translate every node that has a rule; the rest (non-constant) become Wildcards.

    seven_bit_weights: the graph's Conv2D/MatMul weights are on the 7-bit grid; give oneDNN those
    it would sum in int16 pairs as they are as codes of at most 63 (see `_halved_codes`).
    refuse: nodes to leave untranslated, with the reason (oneDNN refused their ops before).
    isa: the oneDNN ISA to plan for (default: this CPU's effective one).
    """
    ctx = Context(graph, seven_bit_weights, isa or onednn.effective_isa())
    refuse = refuse or {}
    claimed, covered = _claim_patterns(graph, ctx, refuse)
    translated: list[tuple[Node, list[OneDnnOp]]] = []
    refused: dict[str, str] = {}
    for node in graph.nodes:
        if node.op in CONSTANT_OPS or node.op == "Placeholder" or node.name in covered:
            continue
        translate_node = RULES.get(node.op)
        if node.name in claimed:
            translated.append((node, claimed[node.name]))
            continue
        if node.name in refuse:
            refused[node.name] = refuse[node.name]
        elif translate_node is None:
            refused[node.name] = WHY_NOT.get(node.op, f"op {node.op} has no oneDNN Graph translation")
        else:
            try:
                new_ops = translate_node(node, ctx)
                unknown = [r for op in new_ops for r in op.inputs + op.outputs
                           if _tensor_info(graph, ctx, r).shape is None]
                if unknown:
                    raise Untranslatable(f"the rank of {unknown[0]} is unknown")
                translated.append((node, new_ops))
                continue
            except Untranslatable as why:
                refused[node.name] = f"{node.op} not translated: {why}"
        translated.append((node, [_wildcard(node, ctx)]))
    tensors = {r: _tensor_info(graph, ctx, r) for _, new_ops in translated for op in new_ops
               for r in op.inputs + op.outputs}
    for r, value in ctx.constants.items():
        tensors[r] = TensorInfo(_tf_dtype_of(value), tuple(value.shape))
    ops: list[OneDnnOp] = []
    for node, new_ops in translated:
        try:  # the rules oneDNN's ops must meet, as the boundary will check them (opset)
            ops += [opset.checked(op, tensors) for op in new_ops]
        except opset.InvalidOp as why:
            group = [node] + [graph.node(n) for n, anchor in covered.items() if anchor == node.name]
            for member in group:  # a pattern that fails leaves each of its nodes to TF
                refused[member.name] = f"{node.op} not translated: oneDNN would refuse it: {why}"
                ops.append(_wildcard(member, ctx))
                covered.pop(member.name, None)
    ops = [op for op in ops if op.kind != "Wildcard" or op.inputs or op.outputs]
    return Translation(ops, ctx.constants, ctx.absorbed, refused, tensors, covered)


def _claim_patterns(graph: Graph, ctx: Context, refuse: dict[str, str]):
    """The groups of nodes patterns turn into one op each: the ops by anchor node, and the anchor
    of every other node a group covers. Later nodes first, so a group takes the most it can (a
    hard swish claims the hard sigmoid inside it); a node belongs to one group at most."""
    claimed: dict[str, list[OneDnnOp]] = {}
    covered: dict[str, str] = {}
    for node in reversed(graph.nodes):
        if node.name in covered or node.name in refuse:
            continue
        for match in PATTERNS:
            try:
                found = match(node, ctx)
            except Untranslatable:
                found = None
            if found and not (set(found[1]) & (covered.keys() | claimed.keys() | refuse.keys())):
                claimed[node.name] = found[0]
                covered.update({name: node.name for name in found[1] if name != node.name})
                break
    return claimed, covered


def _tf_dtype_of(value: np.ndarray) -> str:
    return {"int8": "qint8", "uint8": "quint8"}.get(value.dtype.name, value.dtype.name)


def _tensor_info(graph: Graph, ctx: Context, reference: str) -> TensorInfo:
    if reference in ctx.extra_tensors:
        return ctx.extra_tensors[reference]
    return graph.tensor(reference)


def _wildcard(node: Node, ctx: Context) -> OneDnnOp:
    """An untranslated op, so oneDNN knows which tensors are also produced/consumed outside."""
    def usable(r: str) -> bool:
        return not ctx.graph.is_constant(r) and opset.tensor_problem(ctx.graph.tensor(r)) is None
    outputs = [ref(node.name, i) for i in range(len(node.outputs))]
    return OneDnnOp(ctx.new_id(), "Wildcard", node.name, [normalize(r) for r in node.inputs if usable(r)],
                  [r for r in outputs if usable(r)])


