"""Rules for ops that move, join or reduce tensors: Identity, ConcatV2, Reshape and its kin,
Transpose, Softmax and reductions."""

from __future__ import annotations

import numpy as np

from ...backend import onednn
from ...ir.graph import Node
from ...ir.plan import OneDnnOp
from .. import views
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


@rule("Reshape", "ExpandDims", "Squeeze", "StridedSlice")
def _executor_only(node: Node, ctx: Context) -> list[OneDnnOp]:
    # oneDNN 3.2 reports [Dequantize, MaxPool, StaticReshape, Quantize] as a supported partition and
    # then fails to compile it, and has no slice op; the executor runs these itself where it can
    # (lower.views), and the reason here is for the ones it cannot.
    raise Untranslatable(views.explain(node, ctx.graph))


@rule("Transpose")
def _transpose(node: Node, ctx: Context) -> list[OneDnnOp]:
    order = [int(d) for d in ctx.const(node.inputs[1], "permutation")]
    return [ctx.op("StaticTranspose", node, node.inputs[:1], order=order)]


@rule("ResizeBilinear", "ResizeNearestNeighbor")
def _resize(node: Node, ctx: Context) -> list[OneDnnOp]:
    """Keras' Resizing and bilinear UpSampling2D: oneDNN's Interpolate, to a constant size."""
    size = [int(d) for d in np.atleast_1d(ctx.const(node.inputs[1], "output size"))]
    if node.attrs.get("align_corners"):
        mapping = "align_corners"
    elif node.attrs.get("half_pixel_centers"):
        mapping = "half_pixel"
    else:
        raise Untranslatable("TF 1's legacy pixel mapping (neither half-pixel centers nor aligned corners), "
                             "which oneDNN has not")
    if ctx.rank(node.inputs[0]) != 4 or len(size) != 2:
        raise Untranslatable("a resize of a tensor that is not an NHWC image")
    return [ctx.op("Interpolate", node, node.inputs[:1], mode="linear" if node.op == "ResizeBilinear" else "nearest",
                   sizes=size, coordinate_transformation_mode=mapping, data_format="NXC")]


@rule("Softmax")
def _softmax(node: Node, ctx: Context) -> list[OneDnnOp]:
    """Attention's softmax. Where oneDNN would fuse its output quantization into a reference kernel
    (before AVX-512: 117 of BERT-base's 220 ms under AVX2), it writes f32 and a Quantize of its own
    quantizes it, a JIT reorder."""
    ops = [ctx.op("SoftMax", node, node.inputs[:1], axis=ctx.rank(node.inputs[0]) - 1)]
    if onednn.int8_softmax_is_reference(ctx.isa) and any(
            user.op == "QuantizeV2" for user in ctx.consumers.get(node.name, [])):
        ops.append(ctx.read_outside(node))
    return ops


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

