"""Quantization parameters as TF's reference kernels define them, and what oneDNN's int8 kernels do
with weights on CPUs without VNNI. Plain numpy: the translation rules, the QDQ rewrites and the
per-layer error measurements share these."""

from __future__ import annotations

import numpy as np

from ..ir.graph import Graph, Node

# What oneDNN 3.2's int8 kernels do with the weights of an op without VNNI or AMX, by the op and its
# data's type (read off ONEDNN_VERBOSE under ONEDNN_MAX_CPU_ISA=AVX512_CORE and =AVX2, and measured):
#   "int16 pairs": two products of 0..255 data and the weights as they are go into a saturating
#       int16 (vpmaddubsw): 255 * 127 * 2 > 32767 clips, silently;
#   "halved": the kernel adds 128 to s8 data and halves the weights itself, rounding odd codes.
# uint8 depthwise is neither: one input channel per group, so a pair is one product and a zero.
NON_VNNI_WEIGHTS = {
    ("Conv2D", "quint8"): "int16 pairs", ("Conv2D", "qint8"): "halved",
    **{(op, dtype): "int16 pairs" for op in ("MatMul", "BatchMatMul", "BatchMatMulV2", "BatchMatMulV3")
       for dtype in ("quint8", "qint8")},  # batch matmuls too, both of whose operands may be activations
    ("DepthwiseConv2dNative", "qint8"): "halved",
    # a transposed convolution's int8 kernels are the convolution's (measured: 8-bit weights on u8 data
    # near 255 clipped half its output under AVX2 and AVX512_CORE)
    ("Conv2DBackpropInput", "quint8"): "int16 pairs", ("Conv2DBackpropInput", "qint8"): "halved",
}
DATA_INPUT = {"Conv2DBackpropInput": 2}  # the data input of a weighted op, where it is not input 0


def non_vnni_weights(graph: Graph, op: Node) -> str | None:
    """NON_VNNI_WEIGHTS for a weighted op, from the int8 type its data input is dequantized from."""
    data = DATA_INPUT.get(op.op, 0)
    source = graph.producer(op.inputs[data]) if len(op.inputs) > data else None
    if source is None or source.op != "Dequantize":
        return None  # f32 data: oneDNN dequantizes the weights and computes in f32
    return NON_VNNI_WEIGHTS.get((op.op, graph.node(source.inputs[0]).attrs.get("T")))


def tf_range(node: Node, lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The range TF's QuantizeV2 really quantizes to: it always holds 0, and it is at least
    ensure_minimum_range (default 0.01) times max(1, |range|) wide. A calibrated range of
    [0, 0.0078] is [0, 0.01] to TF."""
    lo, hi = np.atleast_1d(lo).astype(np.float64), np.atleast_1d(hi).astype(np.float64)
    if node.op != "QuantizeV2":
        return lo, hi
    epsilon = np.maximum(1.0, np.maximum(np.abs(lo), np.abs(hi))) * float(node.attrs.get("ensure_minimum_range", 0.01))
    low = np.minimum(0.0, lo)
    return low, np.maximum(0.0, np.maximum(hi, low + epsilon))


def quant_params(node: Node, lo: np.ndarray, hi: np.ndarray) -> tuple[list[float], list[int]]:
    """Scales and zero points of a QuantizeV2/Dequantize (dst = (q - zp) * scale), as TF's reference
    kernels define them."""
    dtype, mode = node.attrs["T"], node.attrs.get("mode", "MIN_COMBINED")
    lo, hi = tf_range(node, lo, hi)
    if mode == "SCALED":
        if dtype == "qint8":  # the scale that fits both ends: -128 (-127 narrow) * scale <= lo, 127 * scale >= hi
            lowest = 127.0 if node.attrs.get("narrow_range", False) else 128.0
            scale = np.maximum(np.where(lo < 0, -lo / lowest, 0.0), np.where(hi > 0, hi / 127.0, 0.0))
        else:
            scale = np.maximum(hi, 0.0) / 255.0
        zps = np.zeros(len(scale), np.int64)
    elif mode == "MIN_FIRST":
        scale = (hi - lo) / 255.0
        safe = np.where(scale > 0, scale, 1.0)
        zps = np.round(-lo / safe).astype(np.int64) - (128 if dtype == "qint8" else 0)
    else:
        raise ValueError(f"quantization mode {mode} has no oneDNN equivalent")
    scale = np.where(scale > 0, scale, 1.0)  # a constant-zero channel: any scale represents it
    return [float(s) for s in scale], [int(z) for z in zps]


def qtype_attrs(node: Node, scales: list[float]) -> dict:
    axis = node.attrs.get("axis", -1)
    if axis is None or axis < 0 or len(scales) == 1:
        return {"qtype": "per_tensor"}
    return {"qtype": "per_channel", "axis": int(axis)}


def broadcast_params(node: Node, value: np.ndarray, scales: list[float], zps: list[int]):
    """Scales and zero points shaped to broadcast against the constant a QuantizeV2 quantizes."""
    info = qtype_attrs(node, scales)
    scale, zp = np.asarray(scales, np.float64), np.asarray(zps, np.float64)
    if info["qtype"] == "per_channel":
        shape = [1] * value.ndim
        shape[info["axis"]] = -1
        scale, zp = scale.reshape(shape), zp.reshape(shape)
    return scale, zp


def quantize_constant(node: Node, value: np.ndarray, scales: list[float], zps: list[int]) -> np.ndarray:
    """What TF's QuantizeV2 computes for a constant, with the scales oneDNN will dequantize by."""
    scale, zp = broadcast_params(node, value, scales, zps)
    q = np.rint(value / scale) + zp
    lo, hi, dtype = (-128, 127, np.int8) if node.attrs["T"] == "qint8" else (0, 255, np.uint8)
    return np.clip(q, lo, hi).astype(dtype)

