"""Rules for the quantization nodes of a QDQ graph: QuantizeV2 and Dequantize become oneDNN
Quantize/Dequantize with static scales and zero points (TF's min/max inputs must be constants).
Constant weights behind a QuantizeV2 are quantized here, once, into int8 constants, so oneDNN sees
the int8 pattern Dequantize(weights) -> Convolution and caches the packed weights."""

from __future__ import annotations

import numpy as np

from ...ir.graph import Node, TensorInfo
from ...ir.plan import OneDnnOp
from ..qparams import qtype_attrs, quant_params, quantize_constant
from .base import Context, Untranslatable, rule


def _params(node: Node, lo: np.ndarray, hi: np.ndarray) -> tuple[list[float], list[int]]:
    try:
        return quant_params(node, lo, hi)
    except ValueError as e:  # a quantization mode oneDNN has no equivalent of
        raise Untranslatable(str(e)) from None


@rule("QuantizeV2")
def _quantize(node: Node, ctx: Context) -> list[OneDnnOp]:
    lo, hi = ctx.const(node.inputs[1], "min"), ctx.const(node.inputs[2], "max")
    scales, zps = _params(node, lo, hi)
    value = ctx.graph.constant(node.inputs[0])
    if value is not None:
        # Weights: quantized once here; their Dequantize consumer reads an int8 constant.
        ctx.constants[node.name] = quantize_constant(node, value, scales, zps)
        ctx.absorbed.add(node.name)
        return []
    ops, source = [], node.inputs[0]
    if ctx.graph.node(source).op == "Dequantize":
        # A requantization. oneDNN fuses Dequantize -> Reorder -> Quantize into one int8 reorder;
        # Dequantize -> Quantize it leaves as two partitions, two passes through FP32.
        step = f"{node.name}/itexlab_requantize"
        ctx.extra_tensors[step] = ctx.graph.tensor(source)
        ops.append(ctx.op("Reorder", node, [source], [step]))
        source = step
    return ops + [ctx.op("Quantize", node, [source], scales=scales, zps=zps, **qtype_attrs(node, scales))]


@rule("Dequantize")
def _dequantize(node: Node, ctx: Context) -> list[OneDnnOp]:
    quantizer = ctx.quantizer_of(node)
    lo, hi = ctx.const(quantizer.inputs[1], "min"), ctx.const(quantizer.inputs[2], "max")
    scales, zps = _params(quantizer, lo, hi)
    qtype = qtype_attrs(quantizer, scales)
    if quantizer.name in ctx.constants and ctx.feeds_depthwise_weights(node):
        scales, zps, qtype = _grouped_weights(ctx, node, quantizer, scales, zps, qtype)
    if quantizer.name in ctx.constants and ctx.seven_bit_weights and ctx.weights_meet_int16_pairs(node):
        scales = _halved_codes(ctx, quantizer, scales)
    if qtype["qtype"] == "per_channel":
        _require_output_channel_scales(ctx, node, qtype["axis"])
    return [ctx.op("Dequantize", node, [quantizer.name], scales=scales, zps=zps, **qtype)]


def _require_output_channel_scales(ctx: Context, node: Node, axis: int) -> None:
    """oneDNN's int8 convolutions and matmuls apply per-channel weight scales along their output
    channels, whatever axis the Dequantize names: weights scaled along another axis (per input
    channel, say) would give a wrong result without an error. They stay on TF."""
    rank = len(ctx.extra_tensors.get(node.name, ctx.graph.tensor(node.name)).shape)
    for user in ctx.consumers.get(node.name, []):
        expected = ctx.output_channel_axis(user, node.name, rank)
        if expected is not None and axis % rank != expected:
            raise Untranslatable(f"weights of {user.name} scaled per channel along axis {axis}, not along its output "
                                 f"channels (axis {expected}), which oneDNN's int8 {user.op} assumes")


def _halved_codes(ctx: Context, quantizer: Node, scales: list[float]) -> list[float]:
    """7-bit weights on the 8-bit grid (even codes, see qdq.seven_bit_weights) as codes of at most
    63 at twice the scale: the same values, and a pair sums to at most 255 * 63 * 2 = 32130."""
    if quantizer.name not in ctx.halved:  # weights shared by two Dequantize copies: halve once
        codes = ctx.constants[quantizer.name]
        if (codes % 2).any():
            raise ValueError(f"weights of {quantizer.name} are not 7-bit: odd int8 codes")
        ctx.constants[quantizer.name] = codes // 2
        ctx.halved.add(quantizer.name)
    return [2 * s for s in scales]


def _grouped_weights(ctx: Context, node: Node, quantizer: Node, scales, zps, qtype):
    """Depthwise weights (H, W, C, M) become grouped-convolution weights (H, W, 1, C*M); output
    channel c*M+m takes the scale of channel c (axis 2) or multiplier m (axis 3)."""
    h, w, c, m = ctx.constants[quantizer.name].shape
    ctx.constants[quantizer.name] = ctx.constants[quantizer.name].reshape(h, w, 1, c * m)
    ctx.extra_tensors[node.name] = TensorInfo("float32", (h, w, 1, c * m))
    if qtype["qtype"] == "per_channel":
        expand = (lambda v: list(np.repeat(v, m))) if qtype["axis"] == 2 else (lambda v: list(np.tile(v, c)))
        scales, zps = [float(s) for s in expand(scales)], [int(z) for z in expand(zps)]
        qtype = {"qtype": "per_channel", "axis": 3}
    return scales, zps, qtype

