"""Ops the executor runs itself, outside oneDNN partitions, with no trip to TF.

oneDNN Graph 3.2 makes no partition of a lone StaticReshape or StaticTranspose and has no slice op,
yet attention's transposes, a BERT pooler's first-token slice and the ExpandDims/Squeeze pairs
Keras writes around 1-D convolutions would each be a round trip to TF. With shapes known at plan
time they are mechanism, not computation:
- Reshape, ExpandDims, Squeeze: a view, the same buffer read in another shape (no copy);
- Transpose by a constant order: one oneDNN reorder reading through permuted strides;
- StridedSlice with constant bounds and positive strides: a copy of a strided window of its input.
"""

from __future__ import annotations

import numpy as np

from ..backend import onednn
from ..ir.graph import Graph, Node

ExecutorStep = tuple[str, list[int]]  # the executor's step kind and its numbers (runtime.schedule.Step.view_shape)
WHOLE = -1  # a slice's size along an axis it takes whole (its length known only at run time)


def executor_step(node: Node, graph: Graph) -> ExecutorStep | None:
    """How the executor runs this node itself, or None where it cannot (TF then runs it):
    ("view", shape with at most one -1), ("transpose", order), or ("slice", begins + steps + sizes
    + the output shape), begins, steps and sizes one per input axis (a size WHOLE for an axis taken
    whole)."""
    if node.op not in ("Reshape", "ExpandDims", "Squeeze", "Transpose", "StridedSlice"):
        return None
    source = graph.tensor(node.inputs[0])
    if source.dtype not in onednn.ONEDNN_DTYPES:
        return None
    if node.op == "Reshape":
        shape = graph.constant(node.inputs[1])
        return None if shape is None else ("view", [int(d) for d in np.atleast_1d(shape)])
    if node.op in ("ExpandDims", "Squeeze"):
        shape = _output_shape(graph, node)
        return None if shape is None else ("view", shape)
    if source.shape is None:
        return None
    if node.op == "Transpose":
        order = graph.constant(node.inputs[1])
        return None if order is None else ("transpose", [int(d) for d in np.atleast_1d(order)])
    return _slice(node, graph, source.shape)


def explain(node: Node, graph: Graph) -> str:
    """Why a node that could run in the executor stays on TF."""
    if graph.tensor(node.inputs[0]).dtype not in onednn.ONEDNN_DTYPES:
        return f"a {node.op} of {graph.tensor(node.inputs[0]).dtype} tensors (the executor moves oneDNN's dtypes only)"
    if node.op == "StridedSlice":
        return ("a StridedSlice the executor does not take: bounds computed at run time, a negative stride, an "
                "empty result or a sliced axis of unknown length")
    return f"a {node.op} whose result shape is not known at plan time"


def _output_shape(graph: Graph, node: Node) -> list[int] | None:
    """The node's output shape with its unknown dimension (the batch) as -1; None if more than one
    is unknown."""
    shape = graph.tensor(node.name).shape
    if shape is None or sum(d is None for d in shape) > 1:
        return None
    return [-1 if d is None else int(d) for d in shape]


def _slice(node: Node, graph: Graph, shape: tuple) -> ExecutorStep | None:
    """TF's StridedSlice semantics (masks, ellipsis, new and shrunk axes) resolved against the known
    input shape into a window per input axis."""
    bounds = [graph.constant(r) for r in node.inputs[1:4]]
    if any(b is None for b in bounds):
        return None
    begin, end, strides = (np.atleast_1d(b).astype(np.int64) for b in bounds)
    mask = {k: int(node.attrs.get(k, 0)) for k in
            ("begin_mask", "end_mask", "ellipsis_mask", "new_axis_mask", "shrink_axis_mask")}
    rank, specs = len(shape), len(begin)
    begins, steps, sizes, out = [], [], [], []

    def take(start: int, step: int, size: int, kept: bool = True):
        begins.append(start)
        steps.append(step)
        sizes.append(size)
        if kept:
            out.append(size)

    def whole(axis: int):
        take(0, 1, WHOLE if shape[axis] is None else int(shape[axis]))

    axis = 0
    for i in range(specs):
        bit = 1 << i
        if mask["ellipsis_mask"] & bit:
            later = sum(not mask["new_axis_mask"] & (1 << j) for j in range(i + 1, specs))
            for _ in range(rank - axis - later):
                whole(axis)
                axis += 1
            continue
        if mask["new_axis_mask"] & bit:
            out.append(1)
            continue
        if axis >= rank:
            return None
        dim = shape[axis]
        if mask["shrink_axis_mask"] & bit:
            index = int(begin[i])
            if dim is None or not -dim <= index < dim:
                return None
            take(index % dim, 1, 1, kept=False)
        elif strides[i] <= 0:
            return None
        elif dim is None:
            if not (mask["begin_mask"] & bit or begin[i] == 0) or not mask["end_mask"] & bit or strides[i] != 1:
                return None
            whole(axis)
        else:
            start, stop, step = slice(None if mask["begin_mask"] & bit else int(begin[i]),
                                      None if mask["end_mask"] & bit else int(end[i]), int(strides[i])).indices(dim)
            size = len(range(start, stop, step))
            if size == 0:
                return None
            take(start, step, size)
        axis += 1
    while axis < rank:
        whole(axis)
        axis += 1
    if sum(d == WHOLE for d in out) > 1:
        return None
    return "slice", begins + steps + sizes + out
