"""INT8 answers that are right on every CPU: cases built to make oneDNN's int8 kernels saturate
where they sum u8 x s8 pairs in int16 (no VNNI or AMX), checked against the QDQ graph on stock TF.

tests/test_isa_dispatch.py reruns this file, test_partition_execute.py and test_differential.py
under every ONEDNN_MAX_CPU_ISA this CPU can emulate, so each check here runs on VNNI and non-VNNI
kernels.
"""

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import assert_matches_tf, graph_of, oracle_graph, qdq, qdq_weights, run_itexlab, run_tf

from itexlab.backend import onednn
from itexlab.config import PartitionConfig, QuantConfig
from itexlab.quant.quantization import quantize

pytestmark = pytest.mark.numerics

RNG = np.random.default_rng(0)
# Conv 1: int8 input, random weights, a bias that puts most ReLU outputs in the upper half of their
# uint8 range (codes 128-255). Conv 2: per-channel int8 weights at their limit, all positive, so
# every pair of products is 2 * 255 * 127 > 32767 where oneDNN sums pairs in int16.
W1 = RNG.normal(0, 0.2, (3, 3, 8, 16)).astype(np.float32)
B1 = np.full(16, 3.0, np.float32)
W2 = RNG.uniform(0.9, 1.0, (3, 3, 16, 4)).astype(np.float32) * 0.05
X = RNG.uniform(-1, 1, (2, 12, 12, 8)).astype(np.float32)


def saturating_net(x):
    h = tf.nn.relu(tf.nn.bias_add(tf.nn.conv2d(qdq(x, -1.0, 1.0, tf.qint8), qdq_weights(W1), 1, "SAME"), B1))
    return tf.nn.conv2d(qdq(h, 0.0, 6.0), qdq_weights(W2), 1, "SAME")


def relative_error(expected, got):
    return float(np.abs(expected - got).max() / np.ptp(expected))


def test_the_saturating_case_matches_the_oracle_on_this_isa():
    graph = graph_of(saturating_net, (None, 12, 12, 8))
    h = np.maximum(run_tf(graph_of(lambda x: tf.nn.conv2d(x, W1, 1, "SAME") + B1, (None, 12, 12, 8)), X)[0], 0)
    assert np.mean(h > 3.0) > 0.4  # most of conv 2's uint8 inputs are codes of 128 and more
    plan, got = assert_matches_tf(graph, X, steps=2)
    saturates = onednn.int8_pairs_saturate()
    assert plan.weight_bits == (7 if saturates else 8)
    assert len(plan.seven_bit_ops) == (2 if saturates else 0)  # both convolutions (s8 and u8 data)
    # What 7-bit weights cost against the 8-bit QDQ graph INC would have given: under 1% of the range.
    assert relative_error(run_tf(graph, X)[0], got[0]) < 0.01


def test_eight_bit_weights_would_be_silently_wrong_where_pairs_saturate():
    """The case above really is the trap: forced to 8-bit weights, oneDNN's int16 pair sums clip
    (on VNNI/AMX kernels nothing clips and 8 bits are right)."""
    from itexlab.lower.partition import Int8SpeedWarning

    graph = graph_of(saturating_net, (None, 12, 12, 8))
    if onednn.int8_pairs_saturate():
        with pytest.warns(Int8SpeedWarning, match="may saturate and give wrong results"):
            plan, got = run_itexlab(graph, X, PartitionConfig(weight_bits=8))
        assert relative_error(run_tf(graph, X)[0], got[0]) > 0.1
    else:
        plan, got = run_itexlab(graph, X, PartitionConfig(weight_bits=8))
        assert relative_error(run_tf(graph, X)[0], got[0]) < 0.01


def test_seven_bit_weights_are_exact_on_every_isa():
    """Forced 7-bit weights give the oracle's values to the step on VNNI kernels too: the choice of
    kernels never changes an answer, only its speed."""
    graph = graph_of(saturating_net, (None, 12, 12, 8))
    plan, _ = assert_matches_tf(graph, X, PartitionConfig(weight_bits=7), steps=2)
    assert plan.weight_bits == 7 and len(plan.seven_bit_ops) == 2


@pytest.mark.parametrize("data", ["quint8", "qint8"])
def test_int8_matmul_with_weights_at_their_limit(data):
    """oneDNN 3.2's int8 matmul without VNNI adds 128 to s8 data but, unlike its convolution, does
    not halve the weights: s8 and u8 data alike need 7-bit weights."""
    w = RNG.uniform(0.9, 1.0, (256, 6)).astype(np.float32)
    lo = -4.0 if data == "qint8" else 0.0
    graph = graph_of(lambda x: tf.matmul(qdq(x, lo, 4.0, getattr(tf, data)), qdq_weights(w, axis=1)), (None, 256))
    x = RNG.uniform(2, 4, (4, 256)).astype(np.float32)
    plan, _ = assert_matches_tf(graph, x, steps=2)
    assert len(plan.seven_bit_ops) == int(onednn.int8_pairs_saturate())


def test_uint8_depthwise_keeps_eight_bit_weights():
    """A depthwise kernel pairs each product with a zero (one input channel per group): nothing to
    clip, so its weights keep all 8 bits; with int8 data oneDNN halves them, so those get 7."""
    w = RNG.uniform(0.9, 1.0, (3, 3, 8, 1)).astype(np.float32)
    for dtype, lo, narrowed in ((tf.quint8, 0.0, 0), (tf.qint8, -4.0, int(onednn.int8_pairs_saturate()))):
        graph = graph_of(lambda x: tf.nn.depthwise_conv2d(qdq(x, lo, 4.0, dtype), qdq_weights(w, axis=3),
                                                          [1, 1, 1, 1], "SAME"), (None, 6, 6, 8))
        plan, _ = assert_matches_tf(graph, RNG.uniform(2, 4, (2, 6, 6, 8)).astype(np.float32), steps=2)
        assert len(plan.seven_bit_ops) == narrowed, dtype


@pytest.mark.parametrize("seed", [0, 2])
def test_a_small_random_net_quantized_by_inc_matches_the_oracle(seed):
    """The net that gave one output 0.477 off (range 0.98) on an AVX-512 CPU without VNNI (seed 2),
    quantized by INC: every output within two steps of an 8-bit quantization of its range."""
    keras.utils.set_random_seed(seed)
    model = keras.Sequential([keras.Input((32, 32, 3)), keras.layers.Conv2D(8, 3, activation="relu"),
                              keras.layers.MaxPooling2D(), keras.layers.Conv2D(8, 3),
                              keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(4)])
    np.random.seed(0)
    calibration = np.random.rand(20, 32, 32, 3).astype(np.float32)
    x = np.random.rand(8, 32, 32, 3).astype(np.float32)
    qdq_graph = quantize(model, calibration, QuantConfig(calibration_batches=2), progress=False).qdq
    plan, got = assert_matches_tf(qdq_graph, x, steps=2)
    assert relative_error(run_tf(oracle_graph(qdq_graph, plan), x)[0], got[0]) < 0.02


def test_the_plan_names_the_isa_and_the_ops_with_seven_bit_weights(monkeypatch):
    from itexlab.lower import partition
    from itexlab.report import tables

    monkeypatch.setattr(partition, "_warned_isa", False)
    graph = graph_of(saturating_net, (None, 12, 12, 8))
    saturates = onednn.int8_pairs_saturate()
    if saturates:
        with pytest.warns(partition.Int8SpeedWarning, match="no VNNI or AMX"):
            plan = partition.make_plan(graph)
    else:
        plan = partition.make_plan(graph)
    assert plan.isa == onednn.effective_isa() and f"oneDNN ISA: {plan.isa}" in plan.summary()
    assert ("7-bit weights on 2 convolutions/matmuls" in plan.summary()) == saturates
    nodes = tables.nodes_frame(plan).set_index("name")
    assert list(nodes[nodes.seven_bit_weights].op) == (["Conv2D", "Conv2D"] if saturates else [])
    bits = tables.partitions_frame(plan).weight_bits.dropna()
    assert list(bits) == [7 if saturates else 8] * 2
    data = plan.to_dict()
    assert data["isa"] == plan.isa and data["seven_bit_ops"] == list(nodes[nodes.seven_bit_weights].index)
    forced = partition.make_plan(graph, PartitionConfig(weight_bits=7))
    assert "7-bit weights on 2 convolutions/matmuls" in forced.summary()


@pytest.mark.parametrize("data", ["quint8", "qint8"])
def test_transposed_convolution_with_weights_at_their_limit(data):
    """oneDNN's int8 transposed convolution without VNNI runs the convolution's kernels: 8-bit
    weights on u8 data near 255 clipped half of its output (126.8 of 253.5) under AVX2 and
    AVX512_CORE, silently; with 7-bit weights it matches the QDQ graph on every ISA."""
    w = np.where(np.arange(16) % 2, 0.99, 1.0).astype(np.float32) * np.ones((3, 3, 8, 16), np.float32)
    lo = -4.0 if data == "qint8" else 0.0

    def fn(t):
        y = qdq(t, lo, 4.0, getattr(tf, data))
        z = tf.nn.conv2d_transpose(y, qdq_weights(w, axis=2), [tf.shape(t)[0], 12, 12, 8], 2, "SAME")
        return qdq(z, -700.0, 700.0, tf.qint8)

    x = np.full((2, 6, 6, 16), 3.95, np.float32)
    plan, got = assert_matches_tf(graph_of(fn, (None, 6, 6, 16)), x)
    assert ("conv2d_transpose" in plan.seven_bit_ops) == onednn.int8_pairs_saturate()
    assert np.abs(got[0]).max() > 240  # nothing clipped: the sums are near 253 wherever the kernel is whole
