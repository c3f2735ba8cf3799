"""Differential testing at scale: random small QDQ graphs from the translated op set, run by itexlab
and by stock TensorFlow (the oracle), must agree within quantization steps.

Each example draws a network (convolutions with any kernel, stride and padding and any activation
Keras writes (sigmoid, tanh, swish, hard swish and sigmoid, GELU in its erf and tanh forms, ELU,
leaky ReLU), depthwise and transposed convolutions, pooling, resizes, strided slices, residual adds,
concats, Keras 3's decomposed LayerNormalization, an op with no oneDNN translation in the middle, a
flatten + matmul or a global mean + softmax head), its weights, calibration ranges (sometimes too
narrow, as real calibration is), input signedness and batch size. The ranges are taken from an
eager FP32 pass over the input, scaled by a random factor, exactly as INC pins them: constants.

`make test` runs a fast, derandomized profile (and test_isa_dispatch.py reruns it under every ISA
the CPU can emulate); `pytest tests/test_differential.py --hypothesis-profile=long` runs 1000
random examples.
"""

import dataclasses

import numpy as np
import pytest
import tensorflow as tf
from conftest import assert_within_steps, graph_of, oracle_graph, qdq, qdq_weights, run_itexlab, run_tf
from hypothesis import given, reject
from hypothesis import strategies as st

pytestmark = pytest.mark.numerics

PADDING = st.sampled_from(["SAME", "VALID"])
ACTIVATION = st.sampled_from([None, "relu", "relu6", "sigmoid", "tanh", "swish", "hard_swish", "hard_sigmoid",
                              "gelu", "gelu_tanh", "elu", "leaky_relu"])
# Activations as Keras 3 writes them in TF ops (the patterns must recognise these forms)
ACTIVATIONS = {
    "sigmoid": tf.math.sigmoid, "tanh": tf.math.tanh, "swish": lambda y: y * tf.math.sigmoid(y),
    "hard_swish": lambda y: y * (tf.nn.relu6(y + 3.0) / 6.0), "hard_sigmoid": lambda y: tf.nn.relu6(y + 3.0) / 6.0,
    "gelu": lambda y: 0.5 * y * tf.math.erfc(-y * 0.7071067811865476),
    "gelu_tanh": lambda y: 0.5 * y * (1.0 + tf.math.tanh(0.7978845608028654 * (y + 0.044715 * tf.pow(y, 3.0)))),
    "elu": tf.nn.elu, "leaky_relu": lambda y: tf.nn.leaky_relu(y, 0.1)}
LAYERS = st.one_of(
    st.fixed_dictionaries({"kind": st.just("conv"), "kernel": st.integers(1, 3), "stride": st.integers(1, 2),
                           "padding": PADDING, "channels": st.integers(1, 12), "bias": st.booleans(),
                           "activation": ACTIVATION}),
    st.fixed_dictionaries({"kind": st.just("depthwise"), "kernel": st.sampled_from([1, 3]),
                           "stride": st.integers(1, 2), "padding": PADDING, "multiplier": st.integers(1, 2),
                           "axis": st.sampled_from([2, 3]), "activation": ACTIVATION}),
    st.fixed_dictionaries({"kind": st.sampled_from(["maxpool", "avgpool"]), "kernel": st.integers(2, 3),
                           "stride": st.integers(1, 2), "padding": PADDING}),
    st.fixed_dictionaries({"kind": st.just("residual"), "activation": ACTIVATION}),
    st.fixed_dictionaries({"kind": st.just("concat"), "channels": st.integers(1, 6)}),
    st.fixed_dictionaries({"kind": st.just("fallback")}),
    st.fixed_dictionaries({"kind": st.just("layernorm"), "scale": st.booleans(), "center": st.booleans()}),
    st.fixed_dictionaries({"kind": st.just("transposed"), "kernel": st.integers(1, 3), "stride": st.integers(1, 2),
                           "padding": PADDING, "channels": st.integers(1, 8), "activation": ACTIVATION}),
    st.fixed_dictionaries({"kind": st.just("resize"), "method": st.sampled_from(["bilinear", "nearest"]),
                           "scale": st.sampled_from([0.5, 0.75, 1.5, 2.0])}),
    st.fixed_dictionaries({"kind": st.just("slice"), "start": st.integers(0, 2), "step": st.integers(1, 3)}),
)


@dataclasses.dataclass
class Network:
    layers: list[dict]
    head: str
    size: int
    channels: int
    signed: bool
    batch: int
    seed: int


NETWORKS = st.builds(Network, layers=st.lists(LAYERS, min_size=1, max_size=4),
                     head=st.sampled_from(["none", "flatten_matmul", "mean_softmax"]), size=st.integers(6, 12),
                     channels=st.integers(1, 6), signed=st.booleans(), batch=st.integers(1, 3),
                     seed=st.integers(0, 2**16))


class Constants:
    """Weights and calibration ranges: drawn on an eager FP32 pass over the input, then replayed
    in the same order when the function is traced into a graph."""

    def __init__(self):
        self.values, self.position, self.quantizers = [], None, 0

    def take(self, make):
        if self.position is None:
            self.values.append(make())
            return self.values[-1]
        self.position += 1
        return self.values[self.position - 1]

    def replay(self):
        self.position = 0


def build(net: Network):
    """The network as a function of one tensor, a batch of inputs for it, and its quantizer count."""
    rng = np.random.default_rng(net.seed)
    constants = Constants()

    def weight(*shape):
        fan_in = int(np.prod(shape[:-1])) or 1
        return constants.take(lambda: rng.normal(0, 1 / np.sqrt(fan_in), shape).astype(np.float32))

    def measured_range(y, dtype, mode):
        """The range INC would pin, times 0.6-1.2: some values clip, as with real calibration."""
        values, factor = y.numpy(), float(rng.uniform(0.6, 1.2))
        constants.quantizers += 1
        if mode == "MIN_FIRST":
            return min(float(values.min()), 0.0) * factor, max(float(values.max()), 1e-2) * factor
        if dtype == tf.quint8:
            return 0.0, max(float(values.max()), 1e-2) * factor
        top = max(float(np.abs(values).max()), 1e-2) * factor
        return -top, top

    def q(y, dtype=tf.qint8, mode="SCALED"):
        lo, hi = constants.take(lambda: measured_range(y, dtype, mode))
        return qdq(y, lo, hi, dtype, mode=mode)

    def activate(y, activation):
        if activation == "relu":
            return q(tf.nn.relu(y), tf.quint8)
        if activation == "relu6":
            return q(tf.nn.relu6(y), tf.quint8)
        return q(ACTIVATIONS[activation](y) if activation else y)

    def layer_norm(x, layer):
        """Keras 3's LayerNormalization, op for op: x·m + (−mean·m + beta), m = gamma·rsqrt(var + eps)."""
        mean = tf.reduce_mean(x, -1, keepdims=True)
        variance = tf.reduce_mean(tf.math.squared_difference(x, tf.stop_gradient(mean)), -1, keepdims=True)
        m = tf.math.rsqrt(variance + 1e-3)
        if layer["scale"]:
            m = m * (1.0 + weight(x.shape[-1]))
        shift = -mean * m
        if layer["center"]:
            shift = shift + weight(x.shape[-1]) * 0.1
        return q(x * m + shift)

    def conv(x, layer):
        w = weight(layer["kernel"], layer["kernel"], x.shape[-1], layer["channels"])
        y = tf.nn.conv2d(x, qdq_weights(w), layer["stride"], layer["padding"])
        if layer["bias"]:
            y = tf.nn.bias_add(y, weight(layer["channels"]) * 0.1)
        return activate(y, layer["activation"])

    def forward(x):
        x = q(x, tf.qint8 if net.signed else tf.quint8)
        for layer in net.layers:
            kind = layer["kind"]
            if min(x.shape[1:3]) < 3 and kind in ("conv", "depthwise", "maxpool", "avgpool"):
                continue  # too small for another spatial layer
            if kind == "conv":
                x = conv(x, layer)
            elif kind == "depthwise":
                w = weight(layer["kernel"], layer["kernel"], x.shape[-1], layer["multiplier"])
                y = tf.nn.depthwise_conv2d(x, qdq_weights(w, axis=layer["axis"]),
                                           [1, layer["stride"], layer["stride"], 1], layer["padding"])
                x = activate(y, layer["activation"])
            elif kind in ("maxpool", "avgpool"):
                pool = tf.nn.max_pool2d if kind == "maxpool" else tf.nn.avg_pool2d
                x = q(pool(x, layer["kernel"], layer["stride"], layer["padding"]))
            elif kind == "residual":
                branch = conv(x, {"kernel": 1, "stride": 1, "padding": "SAME", "channels": x.shape[-1],
                                  "bias": True, "activation": None})
                x = activate(x + branch, layer["activation"])
            elif kind == "concat":
                branches = [conv(x, {"kernel": k, "stride": 1, "padding": "SAME", "channels": layer["channels"],
                                     "bias": k == 1, "activation": "relu"}) for k in (1, 3)]
                x = q(tf.concat(branches, -1), tf.quint8)
            elif kind == "fallback":
                x = q(tf.math.cumsum(x, axis=3) * 0.5)  # no oneDNN translation: runs on TF in the middle
            elif kind == "layernorm" and x.shape[-1] >= 4:  # over 2 channels, one step in is ~16 out
                x = layer_norm(x, layer)
            elif kind == "transposed" and max(x.shape[1:3]) <= 12:
                k, s = layer["kernel"], layer["stride"]
                size = [d * s if layer["padding"] == "SAME" else (d - 1) * s + k for d in x.shape[1:3]]
                w = weight(k, k, layer["channels"], x.shape[-1])
                y = tf.nn.conv2d_transpose(x, qdq_weights(w, axis=2), [tf.shape(x)[0], *size, layer["channels"]], s,
                                           layer["padding"])
                x = activate(y, layer["activation"])
            elif kind == "resize" and max(x.shape[1:3]) <= 12:
                size = [max(1, round(d * layer["scale"])) for d in x.shape[1:3]]
                x = q(tf.image.resize(x, size, method=layer["method"]))
            elif kind == "slice" and min(x.shape[1:3]) > layer["start"]:
                x = q(x[:, layer["start"]::layer["step"], layer["start"]::layer["step"], :])
        if net.head == "flatten_matmul":
            flat = q(tf.reshape(x, [-1, int(np.prod(x.shape[1:]))]), tf.quint8, mode="MIN_FIRST")
            x = q(tf.matmul(flat, qdq_weights(weight(flat.shape[-1], 5), axis=1)) + weight(5) * 0.1)
        elif net.head == "mean_softmax":
            x = q(tf.nn.softmax(tf.reduce_mean(x, axis=[1, 2])), tf.quint8)
        return x

    signed = rng.uniform(-1, 1, (net.batch, net.size, net.size, net.channels))
    x = (signed if net.signed else np.abs(signed)).astype(np.float32)
    forward(tf.constant(x))

    def traced(t):
        constants.replay()
        return forward(t)

    return traced, x, constants.quantizers


@given(NETWORKS)
def test_random_networks_match_the_qdq_graph_on_tf(net):
    fn, x, quantizers = build(net)
    graph = graph_of(fn, (None, net.size, net.size, net.channels))
    plan, got = run_itexlab(graph, x)
    oracle = oracle_graph(graph, plan)
    try:
        expected = run_tf(oracle, x)
    except (tf.errors.OpError, TypeError):  # no oracle: TF's own oneDNN kernels fail, now and then,
        reject()                            # on a 1x1 convolution of one channel with a bias
    # Where a sum lands near a rounding boundary, a quantizer may round it the other way (float
    # sums in another order): one step at its own scale, which later layers pass on. One output
    # step per quantizer bounds that (98% of 400 examples were within one step, the worst 5 of 7),
    # far below what a clipped int16 sum gives.
    assert_within_steps(oracle, expected, got, steps=max(2, quantizers))
