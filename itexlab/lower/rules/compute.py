"""Rules for the ops that hold a model's multiply-accumulates, and pooling: Conv2D, depthwise and
transposed convolution, MatMul and batch matmuls, BiasAdd, max and average pooling."""

from __future__ import annotations

import numpy as np

from ...ir.graph import Node, TensorInfo, normalize
from ...ir.plan import OneDnnOp
from .base import Context, Untranslatable, hw, padding, rule


@rule("Conv2D")
def _conv2d(node: Node, ctx: Context) -> list[OneDnnOp]:
    fmt = node.attrs.get("data_format", "NHWC")
    return [ctx.op("Convolution", node, node.inputs[:2], strides=hw(node.attrs["strides"], fmt),
                   dilations=hw(node.attrs.get("dilations", [1, 1, 1, 1]), fmt), groups=1,
                   data_format="NXC", weights_format="XIO", **padding(node))]


@rule("DepthwiseConv2dNative")
def _depthwise(node: Node, ctx: Context) -> list[OneDnnOp]:
    """Depthwise = grouped convolution with groups = C and XIO weights of shape (H, W, 1, C*M)."""
    fmt = node.attrs.get("data_format", "NHWC")
    weights_ref = normalize(node.inputs[1])
    source = ctx.graph.node(weights_ref)
    if source.op == "Dequantize":
        if ctx.quantizer_of(source).name not in ctx.constants:
            raise Untranslatable("depthwise weights are not quantized constants")
        c = ctx.graph.tensor(weights_ref).shape[2]  # the Dequantize rule regrouped them already
        weights = weights_ref
    else:
        value = ctx.const(weights_ref, "depthwise weights")
        h, w, c, m = value.shape
        weights = f"{node.name}/grouped_weights"
        ctx.constants[weights] = np.ascontiguousarray(value.reshape(h, w, 1, c * m))
        ctx.extra_tensors[weights] = TensorInfo(str(value.dtype), (h, w, 1, c * m))
    return [ctx.op("Convolution", node, [node.inputs[0], weights], strides=hw(node.attrs["strides"], fmt),
                   dilations=hw(node.attrs.get("dilations", [1, 1, 1, 1]), fmt), groups=int(c),
                   data_format="NXC", weights_format="XIO", **padding(node))]


@rule("Conv2DBackpropInput")
def _conv_transpose(node: Node, ctx: Context) -> list[OneDnnOp]:
    """A transposed convolution (Keras Conv2DTranspose): TF's filter (H, W, out, in) is oneDNN's
    XOI ConvTranspose weights (oneDNN 3.2 refuses "XIO", its documented name for them). TF states
    the output size (input_sizes, computed from the batch at run time); oneDNN derives it from the
    pads and an output padding, worked out here from the spatial sizes, which must be known at plan
    time."""
    fmt = node.attrs.get("data_format", "NHWC")
    strides, dilations = hw(node.attrs["strides"], fmt), hw(node.attrs.get("dilations", [1, 1, 1, 1]), fmt)
    source, weights = node.inputs[2], node.inputs[1]
    shapes = [ctx.graph.tensor(r).shape for r in (source, node.name, weights)]
    if any(shape is None or len(shape) != 4 for shape in shapes) or None in (
            *shapes[0][1:3], *shapes[1][1:3], *shapes[2][:2]):
        raise Untranslatable("its spatial sizes are not known at plan time")
    inputs, outputs, kernel = shapes[0][1:3], shapes[1][1:3], shapes[2][:2]
    pads = padding(node)
    begins, ends, extra = [], [], []
    for i, o, k, s, d, axis in zip(inputs, outputs, kernel, strides, dilations, range(2)):
        full = (i - 1) * s + (k - 1) * d + 1  # the output size with no padding
        if pads["auto_pad"] == "SAME_UPPER":
            total = max(full - o, 0)
            begin, end = total // 2, total - total // 2
        else:
            begin, end = pads["pads_begin"][axis], pads["pads_end"][axis]
        if not 0 <= o - (full - begin - end) < s:
            raise Untranslatable(f"an output size of {o} that no padding of a {i}-long input gives")
        begins.append(begin)
        ends.append(end)
        extra.append(o - (full - begin - end))
    return [ctx.op("ConvTranspose", node, [source, weights], strides=strides, dilations=dilations, groups=1,
                   pads_begin=begins, pads_end=ends, output_padding=extra, auto_pad="None",
                   data_format="NXC", weights_format="XOI")]


@rule("MatMul")
def _matmul(node: Node, ctx: Context) -> list[OneDnnOp]:
    return [ctx.op("MatMul", node, node.inputs[:2], transpose_a=bool(node.attrs.get("transpose_a", False)),
                   transpose_b=bool(node.attrs.get("transpose_b", False)))]


@rule("BatchMatMul", "BatchMatMulV2", "BatchMatMulV3")
def _batch_matmul(node: Node, ctx: Context) -> list[OneDnnOp]:
    """A batch matmul is oneDNN's MatMul: batch dimensions broadcast numpy-style in both."""
    return [ctx.op("MatMul", node, node.inputs[:2], transpose_a=bool(node.attrs.get("adj_x", False)),
                   transpose_b=bool(node.attrs.get("adj_y", False)))]


@rule("BiasAdd")
def _bias_add(node: Node, ctx: Context) -> list[OneDnnOp]:
    bias = node.inputs[1]
    if ctx.graph.is_constant(bias):
        bias = ctx.use_constant(bias)
    return [ctx.op("BiasAdd", node, [node.inputs[0], bias],
                   data_format="NXC" if node.attrs.get("data_format", "NHWC") == "NHWC" else "NCX")]



@rule("MaxPool", "AvgPool")
def _pool(node: Node, ctx: Context) -> list[OneDnnOp]:
    fmt = node.attrs.get("data_format", "NHWC")
    attrs = dict(kernel=hw(node.attrs["ksize"], fmt), strides=hw(node.attrs["strides"], fmt),
                 data_format="NXC", rounding_type="floor", **padding(node))
    if node.op == "AvgPool":
        attrs["exclude_pad"] = True  # TF averages SAME-padded windows over their valid elements only
    else:
        attrs["dilations"] = [1, 1]
    return [ctx.op(node.op, node, node.inputs[:1], **attrs)]

