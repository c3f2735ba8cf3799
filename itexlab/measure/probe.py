"""The INT8-floor probe: dense int8 convolutions at shapes where oneDNN's kernels reach their best
rate, compiled and run by itexlab, to measure what this CPU's INT8 convolutions can do. With the
QDQ graph builders it (and the tests) use: TF ops in QDQ form, as INC writes them.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import tensorflow as tf

from ..frontend.tfgraph import from_concrete_function
from ..ir.graph import Graph, total_macs
from ..lower.partition import make_plan
from ..runtime.executor import CompiledModel

# The probe for this CPU's INT8 convolution rate: four 3x3 convolutions, 256 channels on 28x28
# maps (3.7 GOP), where oneDNN 3.2's int8 kernels run near their best: 800-870 GOPS on this
# project's 2-core machine, whose VNNI instructions alone peak at ~900.
PROBE = {"size": 28, "channels": 256, "depth": 4}
PROBE_SYSTEM = "int8-conv-probe"


def quantize_dequantize(x, lo, hi, dtype=tf.quint8, mode="SCALED", axis=None):
    """QuantizeV2 -> Dequantize with constant ranges, as INC writes them."""
    round_mode = "HALF_TO_EVEN" if mode == "SCALED" else "HALF_AWAY_FROM_ZERO"  # TF allows no other
    axis = -1 if axis is None else axis  # TF's "per tensor"
    q, qmin, qmax = tf.raw_ops.QuantizeV2(input=x, min_range=lo, max_range=hi, T=dtype, mode=mode,
                                          round_mode=round_mode, axis=axis)
    return tf.raw_ops.Dequantize(input=q, min_range=qmin, max_range=qmax, mode=mode, axis=axis)


def quantize_dequantize_weights(w: np.ndarray, axis: int = 3):
    """Per-channel symmetric int8 weights, as INC quantizes conv weights."""
    w = np.asarray(w, np.float32)
    m = np.abs(w).max(axis=tuple(i for i in range(w.ndim) if i != axis))
    return quantize_dequantize(tf.constant(w), -m, m, tf.qint8, axis=axis)


def int8_conv_chain(size: int, channels: int, depth: int, seed: int = 0) -> Graph:
    """`depth` 3x3 convolutions with ReLU on size x size maps, in QDQ form (uint8 activations in
    [0, 4], per-channel int8 weights): dense int8 work at shapes where oneDNN's kernels reach
    their best rate, to measure this CPU's INT8 convolution rate with itexlab's own kernels."""
    rng = np.random.default_rng(seed)
    weights = [rng.normal(0, 0.05, (3, 3, channels, channels)).astype(np.float32) for _ in range(depth)]

    def chain(x):
        for w in weights:
            x = tf.nn.relu(tf.nn.conv2d(quantize_dequantize(x, 0.0, 4.0), quantize_dequantize_weights(w), 1, "SAME"))
        return quantize_dequantize(x, 0.0, 4.0)

    spec = tf.TensorSpec((None, size, size, channels), tf.float32)
    return from_concrete_function(tf.function(chain).get_concrete_function(spec))


def int8_probe() -> tuple[Callable[[], object], float]:
    """The INT8 rate probe compiled by itexlab, as a call on a fixed input, and its work in GOP."""
    graph = int8_conv_chain(**PROBE)
    plan = make_plan(graph)
    model = CompiledModel(plan, check_speed=False)
    size, channels = PROBE["size"], PROBE["channels"]
    x = np.random.default_rng(0).uniform(0, 4, (1, size, size, channels)).astype(np.float32)
    return (lambda: model(x)), giga_ops(plan.source)


def giga_ops(graph: Graph) -> float:
    """A graph's convolution/matmul work per image in GOP (2 ops per multiply-accumulate)."""
    return 2 * total_macs(graph) / 1e9
