"""Rules for ops that move, join or reduce tensors: Identity, ConcatV2, Reshape, Transpose,
Softmax and reductions."""

from __future__ import annotations

import numpy as np

from ...ir.graph import Node
from ...ir.plan import OneDnnOp
from .base import Context, Untranslatable, rule


@rule("Identity")
def _identity(node: Node, ctx: Context) -> list[OneDnnOp]:
    raise Untranslatable("it only forwards its input; the executor aliases it, no kernel runs")



@rule("ConcatV2")
def _concat(node: Node, ctx: Context) -> list[OneDnnOp]:
    axis = int(ctx.const(node.inputs[-1], "concat axis"))
    values = node.inputs[:-1]
    if any(ctx.graph.is_constant(v) for v in values):
        raise Untranslatable("concatenates a constant")
    if axis < 0:
        axis += ctx.rank(values[0])
    return [ctx.op("Concat", node, values, axis=axis)]


@rule("Reshape")
def _reshape(node: Node, ctx: Context) -> list[OneDnnOp]:
    # oneDNN 3.2 reports [Dequantize, MaxPool, StaticReshape, Quantize] as a supported partition and
    # then fails to compile it; a reshape of a plain tensor is free anyway: the executor runs it
    # as a zero-copy view (see partition.runs_as_view).
    ctx.const(node.inputs[1], "target shape")
    raise Untranslatable("a Reshape runs as a zero-copy view in the executor, outside oneDNN")


@rule("Transpose")
def _transpose(node: Node, ctx: Context) -> list[OneDnnOp]:
    order = [int(d) for d in ctx.const(node.inputs[1], "permutation")]
    return [ctx.op("StaticTranspose", node, node.inputs[:1], order=order)]


@rule("Softmax")
def _softmax(node: Node, ctx: Context) -> list[OneDnnOp]:
    return [ctx.op("SoftMax", node, node.inputs[:1], axis=ctx.rank(node.inputs[0]) - 1)]


@rule("Mean", "Sum", "Max", "Min")
def _reduce(node: Node, ctx: Context) -> list[OneDnnOp]:
    axes = np.atleast_1d(ctx.const(node.inputs[1], "reduction axes")).astype(int)
    rank = ctx.rank(node.inputs[0])
    if node.op == "Mean" and rank == 4 and sorted(int(a % rank) for a in axes) == [1, 2]:
        # lower.qdq.global_mean_as_pooling made a pooling of every image mean of known size
        raise Untranslatable("a mean over an image of unknown size (the model takes any): oneDNN 3.2 reduces it "
                             "with a reference kernel (~17 ms at batch 16 for 672 channels), TF in well under "
                             "1 ms; with a fixed input size it runs in oneDNN as a pooling")
    kind = {"Mean": "ReduceMean", "Sum": "ReduceSum", "Max": "ReduceMax", "Min": "ReduceMin"}[node.op]
    return [ctx.op(kind, node, node.inputs[:1], axes=[int(a % rank) for a in axes],
                   keep_dims=bool(node.attrs.get("keep_dims", False)))]

