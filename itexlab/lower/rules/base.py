"""What every translation rule shares: the context a rule may ask about the graph, the tables
rules register in, and the attribute helpers several families use.

A rule turns one TF node into oneDNN op descriptions (plain `OneDnnOp` data) or refuses with a
reason in words (Untranslatable). A pattern turns a group of TF nodes that computes one oneDNN op
(Keras 3's LayerNormalization as eleven elementwise ops, say) into that op, anchored at the
group's last node; the nodes it covers join the anchor's partition.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from ...ir.graph import MATMUL_OPS, Graph, Node, TensorInfo, normalize, split_ref
from ...ir.plan import OneDnnOp
from ..qparams import non_vnni_weights


class Untranslatable(Exception):
    """This node cannot become a oneDNN Graph op; the message says why, for the plan."""


class Context:
    """What a rule may ask: the graph, constant values, fresh op ids; collects constants."""

    def __init__(self, graph: Graph, seven_bit_weights: bool, isa: str):
        self.graph = graph
        self.seven_bit_weights = seven_bit_weights
        self.isa = isa  # the oneDNN ISA planned for: some kernels are slow or clip on lesser ones
        self.halved: set[str] = set()
        self.constants: dict[str, np.ndarray] = {}
        self.absorbed: set[str] = set()
        self.extra_tensors: dict[str, TensorInfo] = {}
        self.consumers = graph.consumers()
        self.outputs = {normalize(r) for r in graph.outputs}
        self._next_id = 0

    def new_id(self) -> int:
        self._next_id += 1
        return self._next_id

    def rank(self, reference: str) -> int:
        shape = self.graph.tensor(reference).shape
        if shape is None:
            raise Untranslatable(f"the rank of {reference} is unknown")
        return len(shape)

    def const(self, reference: str, what: str) -> np.ndarray:
        value = self.graph.constant(reference)
        if value is None:
            raise Untranslatable(f"{what} ({reference}) is not a constant")
        return value

    def use_constant(self, reference: str) -> str:
        """Mark a constant input as a oneDNN constant tensor (e.g. a bias)."""
        self.constants[normalize(reference)] = np.ascontiguousarray(self.graph.constant(reference))
        return normalize(reference)

    def op(self, kind: str, node: Node, inputs: list[str], outputs: list[str] | None = None, **attrs) -> OneDnnOp:
        """A oneDNN op from a TF node; inputs that are graph constants (FP32 weights, biases,
        scalars) become oneDNN constant tensors."""
        inputs = [self.use_constant(i) if split_ref(i)[0] in self.graph and self.graph.is_constant(i) else i
                  for i in inputs]
        return OneDnnOp(self.new_id(), kind, node.name, [normalize(i) for i in inputs],
                        outputs if outputs is not None else [node.name], attrs)

    def feeds_depthwise_weights(self, node: Node) -> bool:
        users = self.consumers.get(node.name, [])
        return any(u.op == "DepthwiseConv2dNative" and normalize(u.inputs[1]) == node.name for u in users)

    def weights_meet_int16_pairs(self, node: Node) -> bool:
        """Whether this Dequantize gives weights that oneDNN without VNNI sums in int16 pairs."""
        return any(normalize(user.inputs[1]) == node.name and non_vnni_weights(self.graph, user) == "int16 pairs"
                   for user in self.consumers.get(node.name, []) if len(user.inputs) > 1)

    def output_channel_axis(self, user: Node, weights: str, rank: int) -> int | None:
        """The axis of `weights` (of this rank) along the output channels of the compute op `user`
        reading them as its weights, as oneDNN lays them out; None where `user` reads them otherwise."""
        if len(user.inputs) < 2 or normalize(user.inputs[1]) != weights:  # every such op's weights: input 1
            return None
        if user.op in ("Conv2D", "DepthwiseConv2dNative"):  # XIO (depthwise: grouped, by the Dequantize rule)
            return rank - 1
        if user.op == "Conv2DBackpropInput":  # XOI
            return rank - 2
        if user.op in MATMUL_OPS:
            transposed = user.attrs.get("transpose_b" if user.op == "MatMul" else "adj_y", False)
            return rank - 2 if transposed else rank - 1
        return None

    def read_outside(self, node: Node) -> OneDnnOp:
        """A Wildcard reading this node's output: oneDNN then keeps that output apart, unfused with
        its readers, as it does a tensor TF reads (nothing outside reads it: the plan drops it)."""
        return OneDnnOp(self.new_id(), "Wildcard", node.name, [node.name], [])

    def quantizer_of(self, dequantize: Node) -> Node:
        """The QuantizeV2 whose outputs a Dequantize reads, with constant min/max."""
        source = self.graph.node(dequantize.inputs[0])
        if source.op != "QuantizeV2":
            raise Untranslatable(f"its input comes from {source.op}, not QuantizeV2")
        return source

    def new_constant(self, name: str, value: np.ndarray) -> str:
        """A constant tensor of itexlab's own (a LayerNorm's unit scale, say), for oneDNN alone."""
        self.constants[name] = np.ascontiguousarray(value)
        self.extra_tensors[name] = TensorInfo(str(value.dtype), tuple(value.shape))
        return name

    def only_read_by(self, reference: str, readers: set[str]) -> bool:
        """Whether a tensor is read by these nodes alone (and is no graph output): a pattern may
        then keep it inside the one op it becomes."""
        reference = normalize(reference)
        return reference not in self.outputs and all(
            c.name in readers for c in self.consumers.get(reference, []))


Rule = Callable[[Node, Context], list[OneDnnOp]]
RULES: dict[str, Rule] = {}
# A pattern, tried at every node: the ops for the group of nodes ending at it, and the names of
# those nodes (itself included); None where the group is not there.
Pattern = Callable[[Node, Context], "tuple[list[OneDnnOp], list[str]] | None"]
PATTERNS: list[Pattern] = []


def rule(*ops: str):
    def register(fn: Rule) -> Rule:
        for op in ops:
            RULES[op] = fn
        return fn
    return register


def pattern(fn: Pattern) -> Pattern:
    PATTERNS.append(fn)
    return fn


def hw(values: list[int], data_format: str) -> list[int]:
    if data_format != "NHWC":
        raise Untranslatable(f"data_format {data_format} (only NHWC is translated)")
    return [int(values[1]), int(values[2])]


def padding(node: Node) -> dict:
    padding = node.attrs.get("padding", "VALID")
    if padding == "SAME":
        return {"auto_pad": "SAME_UPPER", "pads_begin": [0, 0], "pads_end": [0, 0]}
    if padding == "VALID":
        return {"auto_pad": "VALID", "pads_begin": [0, 0], "pads_end": [0, 0]}
    if padding == "EXPLICIT":
        p = node.attrs["explicit_paddings"]
        return {"auto_pad": "None", "pads_begin": [p[2], p[4]], "pads_end": [p[3], p[5]]}
    raise Untranslatable(f"padding {padding}")

