"""Shapes computed at run time that are known at plan time, as constants.

With an open batch dimension, TF graphs compute the shapes of their Reshapes (and of Tile,
BroadcastTo, Fill, ...) from the input's shape: Shape -> GatherV2/StridedSlice/Prod -> Pack ->
ConcatV2 -> Reshape, as Keras' Dense on a rank-3 input (Tensordot) and MultiHeadAttention write
them. Every such value depends on the input only through its shape, and only its batch size is
open: evaluated at two batch sizes, a value that does not move is a constant, and a Reshape
target that moves in one place (linearly) is the same constant with -1 there. The rest of the
graph then sees static shapes (oneDNN partitions, zero-copy views) instead of a TF round trip.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from ..frontend import tfgraph
from ..ir.graph import CONSTANT_OPS, DType, Graph, Node, normalize, split_ref

# Ops whose output depends on their input's shape, not its values.
SHAPE_OPS = ("Shape", "ShapeN", "Size", "Rank")
# The batch sizes the shape computations are evaluated at.
PROBE_BATCHES = (2, 3)


def static_shapes(graph: Graph) -> Graph:
    """Shape tensors computed from the inputs' shapes become constants (-1 for the batch in a
    Reshape's target). Needs every input dimension but the batch to be known."""
    infos = [graph.tensor(r) for r in graph.inputs]
    if any(i.shape is None or not i.shape or None in i.shape[1:] for i in infos):
        return graph
    candidates = _shape_tensors(graph)
    if not candidates:
        return graph
    probe = tfgraph.GraphFunction(graph, graph.inputs, candidates)
    values = [probe(*[np.zeros((batch, *i.shape[1:]), _numpy(i.dtype)) for i in infos]) for batch in PROBE_BATCHES]
    constants: dict[str, np.ndarray] = {}
    for r, small, large in zip(candidates, *values):
        if small.shape == large.shape and np.array_equal(small, large):
            constants[r] = small
    reshapes = {}
    for node in graph.nodes:
        shape = normalize(node.inputs[1]) if node.op == "Reshape" else None
        if shape in candidates and shape not in constants:
            small, large = (v[candidates.index(shape)] for v in values)
            moved = np.flatnonzero(small != large) if small.shape == large.shape and small.ndim == 1 else []
            if len(moved) == 1 and small[moved[0]] * PROBE_BATCHES[1] == large[moved[0]] * PROBE_BATCHES[0]:
                target = small.copy()
                target[moved[0]] = -1
                reshapes[node.name] = target
    if not constants and not reshapes:
        return graph
    nodes, mapping = list(graph.nodes), {}
    for r, value in constants.items():
        const = Node(f"{r.replace(':', '/output_')}/static", "Const", [], {"dtype": DType(value.dtype.name),
                                                                              "value": value})
        nodes.append(const)
        mapping[r] = const.name
    for name, target in reshapes.items():
        const = Node(f"{name}/static_shape", "Const", [], {"dtype": DType(target.dtype.name), "value": target})
        nodes.append(const)
        index = next(i for i, n in enumerate(nodes) if n.name == name)
        nodes[index] = dataclasses.replace(nodes[index], inputs=[nodes[index].inputs[0], const.name])
    nodes = [dataclasses.replace(n, inputs=[mapping.get(normalize(r), r) for r in n.inputs]) for n in nodes]
    return graph.replace(nodes)


def _shape_tensors(graph: Graph) -> list[str]:
    """The computed (non-constant) tensors that depend on the graph's inputs only through shape ops
    and feed an op that takes a shape-like input (a Reshape's target, a Tile's multiples, ...)."""
    through_shape: dict[str, bool] = {}

    def shape_only(name: str) -> bool:
        """Whether a node's value depends on the inputs only through their shapes."""
        if name not in through_shape:
            node = graph.node(name)
            if node.op in CONSTANT_OPS or node.op in SHAPE_OPS:
                through_shape[name] = True
            elif node.op == "Placeholder" or not node.inputs:
                through_shape[name] = False
            else:
                through_shape[name] = all(shape_only(split_ref(r)[0]) for r in node.inputs)
        return through_shape[name]

    found = []
    for node in graph.nodes:
        if node.op not in _SHAPE_INPUTS:
            continue
        for position in _SHAPE_INPUTS[node.op]:
            if position < len(node.inputs):
                r = normalize(node.inputs[position])
                source = graph.node(r)
                if source.op not in CONSTANT_OPS and shape_only(source.name) and r not in found:
                    found.append(r)
    return found


# The inputs (by position) of ops that take shapes, sizes or indices rather than data.
_SHAPE_INPUTS = {"Reshape": (1,), "Tile": (1,), "BroadcastTo": (1,), "Fill": (0,), "Slice": (1, 2),
                 "StridedSlice": (1, 2, 3), "ExpandDims": (1,), "Transpose": (1,), "Range": (0, 1, 2),
                 "ConcatV2": (), "Pad": (1,), "PadV2": (1,), "MirrorPad": (1,), "GatherV2": (1, 2),
                 "ResizeBilinear": (1,), "ResizeNearestNeighbor": (1,), "Sum": (1,), "Mean": (1,), "Max": (1,),
                 "Min": (1,), "Prod": (1,), "OneHot": (1,), "SplitV": (1, 2), "Split": (0,)}


def _numpy(dtype: str) -> np.dtype:
    return np.dtype({"qint8": "int8", "quint8": "uint8"}.get(dtype, dtype))
