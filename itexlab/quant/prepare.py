"""FP32 preparation before calibration: the graph INC sees should already have its final structure.

Keras 3 exports BatchNormalization as elementwise Mul/AddV2 chains on constants, and Flatten as a
Shape/StridedSlice/Pack computation; INC matches neither, so each conv would keep FP32 arithmetic
between it and its ReLU. We fold all of that away here. Every rewrite keeps the graph's outputs
numerically the same (checked against TF in the tests).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from ..frontend import tfgraph
from ..ir.graph import CONSTANT_OPS, PURE_TF_OPS, DType, Graph, Node, normalize, split_ref
from .einsum import einsum_as_matmul
from .masks import select_as_arithmetic
from .shapes import static_shapes

# Folding evaluates subgraphs on TF: only pure tensor ops (no files, I/O, Python, state or randomness:
# a model may come from a stranger), and not the constants and inputs themselves.
_FOLDABLE = PURE_TF_OPS - {"Placeholder", "PlaceholderWithDefault", "NoOp", *CONSTANT_OPS}
_WEIGHTED_OPS = ("Conv2D", "DepthwiseConv2dNative", "MatMul")


def prepare(graph: Graph) -> Graph:
    """Identity removal, static shapes, constant folding, BatchNorm/affine folding, attention masks
    as arithmetic, Einsum as batch matmuls."""
    graph = drop_identities(graph)
    graph = fold_flatten_shapes(graph)
    graph = static_shapes(graph)
    graph = fold_constants(graph)
    graph = drop_identities(graph)  # Transposes whose permutation only now is a constant
    graph = fold_batch_norms(graph)
    graph = fold_affine_into_weights(graph)
    graph = select_as_arithmetic(graph)
    graph = einsum_as_matmul(graph)
    return tfgraph.reannotate(graph)


def _rewire(nodes: list[Node], mapping: dict[str, str]) -> list[Node]:
    """Copies of the nodes reading mapping's keys, reading its values instead (graphs are shared)."""
    return [dataclasses.replace(n, inputs=[mapping.get(normalize(r), r) for r in n.inputs])
            if any(normalize(r) in mapping for r in n.inputs) else n for n in nodes]


# Ops that forward their first input unchanged in a frozen graph (gradients are of no concern here).
_FORWARDING = ("Identity", "StopGradient", "PreventGradient", "Snapshot")


def _forwards(node: Node, graph: Graph) -> bool:
    """Whether a node's output is its first input: an Identity and its kin, a one-input IdentityN,
    a Transpose by the identity permutation (Keras' Tensordot writes one)."""
    if node.op in _FORWARDING or (node.op == "IdentityN" and len(node.inputs) == 1):
        return True
    if node.op == "Transpose":
        order = graph.constant(node.inputs[1])
        return order is not None and list(np.atleast_1d(order)) == list(range(np.size(order)))
    return False


def drop_identities(graph: Graph) -> Graph:
    """Identity/NoOp nodes (and other forwarding ops) are noise in a frozen graph: every reader
    reads the source instead; one that is a graph output stays, for the output alone."""
    outputs = {split_ref(r)[0] for r in graph.outputs}
    mapping: dict[str, str] = {}
    kept = []
    for node in graph.nodes:
        if _forwards(node, graph):
            source = normalize(node.inputs[0])
            mapping[node.name] = mapping.get(source, source)
            if node.name in outputs:
                kept.append(dataclasses.replace(node, inputs=[mapping[node.name], *node.inputs[1:]]))
        elif node.op != "NoOp":
            kept.append(node)
    return graph.replace(_rewire(kept, mapping))


def fold_flatten_shapes(graph: Graph) -> Graph:
    """Reshape(x, Pack(StridedSlice(Shape(x))[0], c...)) -> Reshape(x, [-1, c...]).

    Keras computes the batch size at run time to flatten; a static -1 says the same and lets the
    Reshape become a oneDNN StaticReshape.
    """
    nodes = []
    for node in graph.nodes:
        nodes.append(node)
        if node.op != "Reshape" or graph.node(node.inputs[1]).op != "Pack":
            continue
        pack = graph.node(node.inputs[1])
        first = graph.node(pack.inputs[0])
        if first.op != "StridedSlice" or graph.node(first.inputs[0]).op != "Shape":
            continue
        shape_of = graph.node(first.inputs[0])
        begin, end = (graph.constant(r) for r in first.inputs[1:3])
        rest = [graph.constant(r) for r in pack.inputs[1:]]
        if (normalize(shape_of.inputs[0]) != normalize(node.inputs[0]) or begin is None or end is None
                or list(begin) != [0] or list(end) != [1] or any(r is None for r in rest)):
            continue
        target = np.array([-1] + [int(r) for r in rest], dtype=np.int32)
        const = Node(f"{node.name}/static_shape", "Const", [], {"dtype": DType("int32"), "value": target})
        nodes[-1] = dataclasses.replace(node, inputs=[node.inputs[0], const.name])
        nodes.append(const)
    return graph.replace(nodes)


def fold_constants(graph: Graph) -> Graph:
    """Replace every subgraph that depends on no graph input by its value (computed by TF)."""
    constant = {n.name for n in graph.nodes if n.op in CONSTANT_OPS}
    for node in graph.nodes:
        if node.op in _FOLDABLE and node.inputs and all(split_ref(r)[0] in constant for r in node.inputs):
            constant.add(node.name)
    consumers = graph.consumers()
    outputs = {normalize(r) for r in graph.outputs}
    frontier = []
    for node in graph.nodes:
        if node.name in constant and node.op not in CONSTANT_OPS:
            for index in range(len(node.outputs)):
                r = normalize(f"{node.name}:{index}")
                if r in outputs or any(c.name not in constant for c in consumers.get(r, [])):
                    frontier.append(r)
    if not frontier:
        return graph
    values = tfgraph.evaluate(graph, frontier)
    mapping, nodes = {}, [n for n in graph.nodes if n.name not in constant or n.op in CONSTANT_OPS]
    for r, value in zip(frontier, values):
        name = r.replace(":", "/output_")
        nodes.append(Node(name + "/folded" if name in graph else name, "Const", [],
                          {"dtype": DType(value.dtype.name), "value": value}))
        mapping[r] = nodes[-1].name
    return graph.replace(_rewire(nodes, mapping))


def fold_batch_norms(graph: Graph) -> Graph:
    """Inference-mode FusedBatchNorm(V3) with constant parameters -> Mul + AddV2 on constants."""
    nodes, changed = [], False
    for node in graph.nodes:
        if not node.op.startswith("FusedBatchNorm") or node.attrs.get("is_training", False):
            nodes.append(node)
            continue
        params = [graph.constant(r) for r in node.inputs[1:5]]
        if any(p is None for p in params) or node.attrs.get("data_format", "NHWC") != "NHWC":
            nodes.append(node)
            continue
        scale, offset, mean, variance = params
        multiplier = (scale / np.sqrt(variance + node.attrs.get("epsilon", 1e-3))).astype(np.float32)
        shift = (offset - mean * multiplier).astype(np.float32)
        mul_c = Node(f"{node.name}/multiplier", "Const", [], {"dtype": DType("float32"), "value": multiplier})
        add_c = Node(f"{node.name}/shift", "Const", [], {"dtype": DType("float32"), "value": shift})
        mul = Node(f"{node.name}/mul", "Mul", [node.inputs[0], mul_c.name], {"T": DType("float32")})
        add = Node(node.name, "AddV2", [mul.name, add_c.name], {"T": DType("float32")})
        nodes += [mul_c, add_c, mul, add]
        changed = True
    return graph.replace(nodes) if changed else graph


def _channel_vector(value: np.ndarray | None, channels: int) -> np.ndarray | None:
    """A constant that broadcasts along the last (channel) axis only, as a (channels,) vector."""
    if value is None or value.dtype != np.float32:
        return None
    if value.size == 1:
        return np.full(channels, value.reshape(()), np.float32)
    if value.shape[-1] == channels and value.size == channels:
        return value.reshape(channels)
    return None


def _scale_weights(op: Node, weights: np.ndarray, scale: np.ndarray) -> np.ndarray:
    if op.op == "Conv2D":
        return weights * scale  # HWIO: output channels last
    if op.op == "DepthwiseConv2dNative":
        h, w, c, m = weights.shape
        return weights * scale.reshape(c, m)
    return weights * (scale[:, None] if op.attrs.get("transpose_b") else scale)


def fold_affine_into_weights(graph: Graph) -> Graph:
    """Conv/Depthwise/MatMul [-> BiasAdd c] -> (Mul c | Add c | Sub c)* becomes one op + BiasAdd.

    Applies only where each intermediate result has a single consumer and every constant is a
    per-output-channel vector (or a scalar), which is exactly what BatchNorm leaves behind.
    """
    consumers = graph.consumers()
    outputs = {normalize(r) for r in graph.outputs}
    removed: set[str] = set()
    new_nodes: list[Node] = []
    for op in graph.nodes:
        if op.op not in _WEIGHTED_OPS or graph.constant(op.inputs[1]) is None or op.name in removed:
            continue
        shape = op.outputs[0].shape
        if shape is None or shape[-1] is None:
            continue
        channels = shape[-1]
        weights = graph.constant(op.inputs[1]).astype(np.float32)
        bias = np.zeros(channels, np.float32)
        chain, tail = [], op
        while True:
            users = consumers.get(tail.name, [])
            if len(users) != 1 or tail.name in outputs:
                break
            user = users[0]
            others = [r for r in user.inputs if split_ref(r)[0] != tail.name]
            if len(others) != 1:
                break
            vector = _channel_vector(graph.constant(others[0]), channels)
            tail_first = split_ref(user.inputs[0])[0] == tail.name
            if vector is None:
                break
            if user.op == "BiasAdd" or user.op in ("Add", "AddV2"):
                bias = bias + vector
            elif user.op == "Sub" and tail_first:
                bias = bias - vector
            elif user.op == "Mul":
                weights, bias = _scale_weights(op, weights, vector), bias * vector
            else:
                break
            chain.append(user)
            tail = user
        if not chain or (len(chain) == 1 and chain[0].op == "BiasAdd"):
            continue
        w_const = Node(f"{op.name}/folded_weights", "Const", [], {"dtype": DType("float32"), "value": weights})
        b_const = Node(f"{op.name}/folded_bias", "Const", [], {"dtype": DType("float32"), "value": bias})
        conv = Node(op.name, op.op, [op.inputs[0], w_const.name], dict(op.attrs))
        bias_add = Node(tail.name, "BiasAdd", [conv.name, b_const.name],
                        {"T": DType("float32"), "data_format": "NHWC"})
        removed |= {op.name} | {n.name for n in chain}
        new_nodes += [w_const, b_const, conv, bias_add]
    if not removed:
        return graph
    return graph.replace([n for n in graph.nodes if n.name not in removed] + new_nodes)
