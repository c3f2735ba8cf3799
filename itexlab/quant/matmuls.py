"""Quantizers of itexlab's own for the matmuls INC leaves in FP32.

INC 3.10 quantizes MatMul, but not BatchMatMulV2 (a Keras Dense on a sequence, MultiHeadAttention's
projections) nor attention's Q·Kᵀ and weights·V (Einsum, batch matmuls once prepared): nearly all
of a transformer's multiply-accumulates. Here each such operand gets a QuantizeV2 -> Dequantize
pair like INC's: constant weights per output channel (symmetric int8), activations per tensor with
the range measured on the calibration batches (min/max, as INC's minmax), unsigned where the tensor
never goes below zero (a softmax). The pairs are named "<tensor>/itexlab_quantize" and ".../itexlab_
dequantize", so the plan shows which quantizers are INC's and which are itexlab's.
"""

from __future__ import annotations

import re

import numpy as np

from ..frontend import tfgraph
from ..ir.graph import MATMUL_OPS, DType, Graph, Node, TensorInfo, normalize

OWN = "itexlab_quantize"


def quantize_matmuls(graph: Graph, batches: list[list[np.ndarray]], keep_fp32: tuple[str, ...] = ()) -> Graph:
    """The QDQ graph with every float matmul operand that no Dequantize gives quantized by a pair
    of itexlab's own, calibrated on `batches`; matmuls whose names match a keep_fp32 pattern (as
    INC matches them: from the start) stay FP32."""
    wanted: dict[str, list[tuple[Node, int]]] = {}  # operand tensor -> (matmul, input position)
    for node in graph.nodes:
        if node.op not in MATMUL_OPS or node.attrs.get("T") != "float32" or any(
                re.match(p, node.name) for p in keep_fp32):
            continue
        if all(graph.producer(r).op == "Dequantize" for r in node.inputs[:2]):
            continue  # INC's
        for position, r in enumerate(node.inputs[:2]):
            if graph.producer(r).op != "Dequantize":
                wanted.setdefault(normalize(r), []).append((node, position))
    if not wanted:
        return graph
    activations = [r for r in wanted if not graph.is_constant(r)]
    ranges = _measured_ranges(graph, activations, batches) if activations else {}
    added: list[Node] = []
    mapping: dict[str, str] = {}
    for r, users in wanted.items():
        value = graph.constant(r)
        if value is not None:
            node, position = users[0]
            lo, hi, axis = _weight_range(value, node, position)
            added += _pair(r, lo, hi, "qint8", axis, graph)
        else:  # unsigned where never negative, but always signed as the second operand: oneDNN takes
            lo, hi = ranges[r]  # signed weights, and without VNNI they must fit 7 bits (lower.qdq.seven_bit_weights)
            unsigned = lo >= 0 and all(position == 0 for _, position in users)
            added += _pair(r, 0.0 if unsigned else -max(abs(lo), abs(hi)), hi if unsigned else max(abs(lo), abs(hi)),
                           "quint8" if unsigned else "qint8", -1, graph)
        mapping[r] = added[-1].name
    reads = {(node.name, position) for users in wanted.values() for node, position in users}
    rewired = [Node(n.name, n.op, [mapping[normalize(r)] if (n.name, i) in reads else r for i, r in enumerate(n.inputs)],
                    dict(n.attrs), n.outputs) if any((n.name, i) in reads for i in range(2)) else n
               for n in graph.nodes]
    return graph.replace(rewired + added)


def _measured_ranges(graph: Graph, tensors: list[str], batches) -> dict[str, tuple[float, float]]:
    measure = tfgraph.GraphFunction(graph, graph.inputs, tensors)
    lows, highs = np.full(len(tensors), np.inf), np.full(len(tensors), -np.inf)
    for batch in batches:
        for i, value in enumerate(measure(*batch)):
            lows[i], highs[i] = min(lows[i], float(value.min())), max(highs[i], float(value.max()))
    return {r: (lo, hi) for r, lo, hi in zip(tensors, lows, highs)}


def _weight_range(value: np.ndarray, node: Node, position: int):
    """Symmetric per-output-channel ranges of constant weights (per tensor for batched weights)."""
    if position == 1 and value.ndim == 2:
        axis = 0 if node.attrs.get("adj_y") or node.attrs.get("transpose_b") else 1
        top = np.abs(value).max(axis=1 - axis).astype(np.float32)
        return -top, top, axis
    top = np.float32(np.abs(value).max())
    return -top, top, -1


def _pair(source: str, lo, hi, dtype: str, axis: int, graph: Graph) -> list[Node]:
    """QuantizeV2 -> Dequantize of `source` with constant ranges, as INC writes them."""
    name = f"{source.replace(':', '/output_')}/{OWN}"
    info = graph.tensor(source)
    lo, hi = np.asarray(lo, np.float32), np.asarray(hi, np.float32)
    low = Node(f"{name}/min", "Const", [], {"dtype": DType("float32"), "value": lo}, [TensorInfo("float32", lo.shape)])
    high = Node(f"{name}/max", "Const", [], {"dtype": DType("float32"), "value": hi}, [TensorInfo("float32", hi.shape)])
    q = Node(name, "QuantizeV2", [source, low.name, high.name],
             {"T": DType(dtype), "mode": "SCALED", "round_mode": "HALF_TO_EVEN", "narrow_range": False, "axis": axis,
              "ensure_minimum_range": 0.01},
             [TensorInfo(dtype, info.shape), TensorInfo("float32", lo.shape), TensorInfo("float32", hi.shape)])
    dq = Node(f"{name.removesuffix(OWN)}itexlab_dequantize", "Dequantize", [q.name, f"{q.name}:1", f"{q.name}:2"],
              {"T": DType(dtype), "mode": "SCALED", "dtype": DType("float32"), "axis": axis, "narrow_range": False},
              [TensorInfo("float32", info.shape)])
    return [low, high, q, dq]
