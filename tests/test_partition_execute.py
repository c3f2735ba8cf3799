"""Each translated op and pattern, run by itexlab and checked against stock TF on the same graph."""

import json

import numpy as np
import pytest
import tensorflow as tf
from conftest import (assert_matches_tf, graph_of, oracle_graph, partition_with, qdq, qdq_weights, run_itexlab,
                      run_tf)

from itexlab.config import PartitionConfig
from itexlab.frontend import tfgraph
from itexlab.ir.graph import macs
from itexlab.lower.partition import make_plan
from itexlab.measure.probe import int8_conv_chain
from itexlab.runtime.executor import CompiledModel, InputError

pytestmark = pytest.mark.numerics

RNG = np.random.default_rng(0)
W1 = RNG.normal(size=(3, 3, 4, 8)).astype(np.float32) * 0.3
W2 = RNG.normal(size=(1, 1, 8, 8)).astype(np.float32) * 0.3
B1 = RNG.normal(size=8).astype(np.float32) * 0.1
X = RNG.uniform(-1, 1, (2, 10, 10, 4)).astype(np.float32)


def conv_block(x, w=W1, b=B1, out_max=4.0):
    """Dequantize -> Conv2D -> BiasAdd -> Relu -> QuantizeV2 -> Dequantize, INC's INT8 conv."""
    y = tf.nn.conv2d(x, qdq_weights(w), 1, "SAME")
    y = tf.nn.relu(tf.nn.bias_add(y, b))
    return qdq(y, 0.0, out_max)


def quantized_input(x):
    return qdq(x, -1.0, 1.0, tf.qint8)


def test_conv_bias_relu_qdq_is_one_partition():
    graph = graph_of(lambda x: conv_block(quantized_input(x)), (None, 10, 10, 4))
    plan, _ = assert_matches_tf(graph, X)
    p = partition_with(plan, "Conv2D", "BiasAdd", "Relu")
    assert p is not None and p.quantized
    assert {"Convolution", "BiasAdd", "ReLU", "Quantize", "Dequantize"} <= set(p.onednn_ops)
    assert sum(n.op == "QuantizeV2" for n in p.nodes) == 2  # weights (absorbed) and output
    assert any(t.constant and t.dtype == "qint8" for t in p.inputs)


def test_int8_conv_chain_runs_every_convolution_in_int8_and_matches_tf():
    graph = int8_conv_chain(size=8, channels=16, depth=3)
    x = RNG.uniform(0, 4, (2, 8, 8, 16)).astype(np.float32)
    plan, _ = assert_matches_tf(graph, x)
    convs = [p for p in plan.partitions if any(n.op == "Conv2D" for n in p.nodes)]
    assert len(convs) == 3 and all(p.quantized for p in convs)
    assert [f.op for f in plan.fallback] == ["Identity"]  # aliased, no kernel runs


def test_concat_is_inside_a_partition():
    def fn(x):
        x = quantized_input(x)
        a, b = conv_block(x), conv_block(x, out_max=3.0)
        return qdq(tf.concat([tf.nn.max_pool2d(a, 2, 2, "VALID"), tf.nn.avg_pool2d(b, 2, 2, "VALID")], -1),
                   0.0, 4.0)

    graph = graph_of(fn, (None, 10, 10, 4))
    plan, _ = assert_matches_tf(graph, X)
    concat = partition_with(plan, "ConcatV2")
    assert concat is not None and concat.quantized
    assert not plan.fallback_by_reason().keys() - {
        "Identity not translated: it only forwards its input; the executor aliases it, no kernel runs"}


def test_int8_concat_runs_as_a_plain_byte_concat():
    def fn(x):
        x = quantized_input(x)
        a, b = conv_block(x), conv_block(x, out_max=3.0)
        return qdq(tf.concat([a, tf.nn.relu(b)], -1), 0.0, 4.0)

    graph = graph_of(fn, (None, 10, 10, 4))
    plan, _ = assert_matches_tf(graph, X)
    concat = partition_with(plan, "ConcatV2")
    model = CompiledModel(plan)
    step = next(s for s in model.steps if s.label == concat.name)
    assert step.concat_axis == 3 and len(step.inputs) == 2  # the int8 inputs, not their scales
    # the convolutions' outputs are the concat's int8 inputs: bytes side by side, no requantization
    assert all(any(t.name in s.outputs for s in model.steps) for t in concat.inputs)


def test_fp32_concat_on_any_axis_matches_tf():
    def fn(x):
        a = conv_block(quantized_input(x))
        return tf.concat([a * 2.0, a[:, :3]], 1)  # FP32, height axis

    graph = graph_of(fn, (None, 10, 10, 4))
    plan, _ = assert_matches_tf(graph, X, PartitionConfig(offload_fp32=True))
    model = CompiledModel(plan)
    assert any(s.concat_axis == 1 for s in model.steps)


def test_maxpool_keeps_its_input_scale_and_requantizes_behind():
    """INC writes Dequantize(A) -> MaxPool -> QuantizeV2(B). oneDNN 3.2 has only a reference kernel
    for an int8 pool that rescales, so the pool keeps A (exact) and one int8 reorder goes A -> B."""
    def fn(x, pool_max):
        a = conv_block(quantized_input(x), out_max=4.0)
        return conv_block(qdq(tf.nn.max_pool2d(a, 2, 2, "VALID"), 0.0, pool_max), w=W2)

    graph = graph_of(lambda x: fn(x, 3.5), (None, 10, 10, 4))
    plan, _ = assert_matches_tf(graph, X)
    pool = partition_with(plan, "MaxPool")
    assert pool.onednn_ops == ["Dequantize", "MaxPool", "Quantize"]
    first_conv = plan.partitions[[p.id for p in plan.partitions].index(pool.id) - 1]
    assert [t.name for t in pool.inputs] == [t.name for t in first_conv.outputs]  # int8, straight in
    requantize = [p for p in plan.partitions if p.onednn_ops == ["Dequantize", "Reorder", "Quantize"]]
    assert [t.name for t in requantize[0].inputs] == [t.name for t in pool.outputs]
    assert len(requantize) == 1

    same_scale = make_plan(graph_of(lambda x: fn(x, 4.0), (None, 10, 10, 4)))
    assert not [p for p in same_scale.partitions if "Reorder" in p.onednn_ops]


@pytest.mark.parametrize("pads, runs_on_tf", [([[0, 0], [1, 1], [1, 1], [0, 0]], False),   # ResNet's stem
                                              ([[0, 0], [0, 2], [1, 0], [0, 0]], False),
                                              ([[0, 0], [2, 2], [1, 1], [0, 0]], True),    # a window of pads only
                                              ([[1, 0], [1, 1], [1, 1], [0, 0]], True)])   # pads the batch
def test_a_zero_pad_before_an_unsigned_max_pool_becomes_its_padding(pads, runs_on_tf):
    """Relu -> Pad -> QuantizeV2(quint8) -> Dequantize -> MaxPool: oneDNN has no Pad; the pool pads
    itself where that is the same (values >= 0, no window of padding only), else TF pads."""
    def fn(x):
        y = tf.nn.relu(tf.nn.conv2d(quantized_input(x), qdq_weights(W1), 1, "SAME"))
        pooled = tf.nn.max_pool2d(qdq(tf.pad(y, pads), 0.0, 4.0), 2 if runs_on_tf else 3, 2, "VALID")
        return conv_block(qdq(pooled, 0.0, 4.0), w=W2)

    graph = graph_of(fn, (None, 10, 10, 4))
    plan, _ = assert_matches_tf(graph, X)
    assert ("Pad" in [f.op for f in plan.fallback]) == runs_on_tf
    if not runs_on_tf:
        assert all(p.quantized for p in plan.partitions)


def test_requantization_is_one_int8_reorder():
    graph = graph_of(lambda x: conv_block(qdq(conv_block(quantized_input(x), out_max=4.0), 0.0, 2.5), w=W2),
                     (None, 10, 10, 4))
    plan, _ = assert_matches_tf(graph, X)
    requantize = [p for p in plan.partitions if "Reorder" in p.onednn_ops]
    assert [p.onednn_ops for p in requantize] == [["Dequantize", "Reorder", "Quantize"]]
    assert {n.op for n in requantize[0].nodes} == {"Dequantize", "QuantizeV2"}


def test_intermediate_buffers_are_reused():
    def fn(x):
        x = quantized_input(x)
        for _ in range(6):
            x = conv_block(x, w=W2 if x.shape[-1] == 8 else W1)
        return x

    graph = graph_of(fn, (None, 10, 10, 4))
    plan, _ = assert_matches_tf(graph, X)
    model = CompiledModel(plan)
    for batch in (X, np.concatenate([X] * 4), X):
        np.testing.assert_array_equal(model(batch)[0], model(batch)[0])
    # without reuse: the quantized input and five int8 activations (44 kB at batches 8 and 2);
    # with it, at most three of the larger batch's are live at once
    assert model.pool_bytes <= 3 * 8 * 10 * 10 * 8, model.pool_bytes


def test_residual_add():
    def fn(x):
        a = conv_block(quantized_input(x))
        b = tf.nn.conv2d(a, qdq_weights(W2), 1, "SAME") + B1
        return tf.nn.relu(b + a)

    graph = graph_of(fn, (None, 10, 10, 4))
    plan, _ = assert_matches_tf(graph, X)
    assert partition_with(plan, "Conv2D", "AddV2") is not None


def test_depthwise_convolution():
    w = RNG.normal(size=(3, 3, 4, 2)).astype(np.float32)

    def fn(x):
        y = tf.nn.depthwise_conv2d(quantized_input(x), qdq_weights(w, axis=3), [1, 1, 1, 1], "SAME")
        return tf.nn.relu6(y)

    graph = graph_of(fn, (None, 10, 10, 4))
    plan, _ = assert_matches_tf(graph, X)
    p = partition_with(plan, "DepthwiseConv2dNative")
    assert p is not None and "Convolution" in p.onednn_ops


def test_matmul_with_min_first_inputs():
    w = RNG.normal(size=(16, 5)).astype(np.float32)

    def fn(x):
        a = qdq(x, -0.5, 2.0, tf.quint8, mode="MIN_FIRST")
        y = tf.matmul(a, qdq_weights(w, axis=1)) + 0.25
        return tf.nn.softmax(y)

    graph = graph_of(fn, (None, 16))
    x = RNG.uniform(-0.5, 2.0, (3, 16)).astype(np.float32)
    plan, _ = assert_matches_tf(graph, x)
    assert partition_with(plan, "MatMul") is not None


def test_reduce_reshape_transpose_mul():
    def fn(x):
        a = conv_block(quantized_input(x))
        m = tf.reduce_mean(a, axis=[1, 2])
        t = tf.transpose(tf.reshape(a, [-1, 100, 8]), [0, 2, 1])
        return m * 2.0, t

    graph = graph_of(fn, (None, 10, 10, 4))
    assert_matches_tf(graph, X, PartitionConfig(offload_fp32=True))


def test_unsupported_op_in_the_middle_falls_back_to_tf():
    def fn(x):
        a = conv_block(quantized_input(x))
        a = tf.math.cumsum(a, axis=3) * 0.25  # no oneDNN translation
        return conv_block(qdq(a, 0.0, 8.0), w=W2)

    graph = graph_of(fn, (None, 10, 10, 4))
    # two quantized convolutions in a row: a rounding flip in the first moves the second by a step
    plan, _ = assert_matches_tf(graph, X, steps=3)
    reasons = {f.op: f.reason for f in plan.fallback}
    assert reasons["Cumsum"] == "op Cumsum has no oneDNN Graph translation"
    assert len([p for p in plan.partitions if "Conv2D" in {n.op for n in p.nodes}]) == 2


def test_bad_runtime_inputs_are_rejected_before_native_code():
    graph = graph_of(lambda x: conv_block(quantized_input(x)), (None, 10, 10, 4))
    model = CompiledModel(make_plan(graph))
    with pytest.raises(InputError, match="shape"):
        model(np.zeros((2, 10, 9, 4), np.float32))
    with pytest.raises(InputError, match="shape"):
        model(np.zeros((10, 10, 4), np.float32))
    with pytest.raises(InputError, match="dtype int64"):
        model(np.zeros((2, 10, 10, 4), np.int64))
    with pytest.raises(InputError, match="empty"):
        model(np.zeros((0, 10, 10, 4), np.float32))
    with pytest.raises(InputError, match="1 input"):
        model(X, X)
    with pytest.raises(InputError, match="dtype bool"):
        model(np.zeros((2, 10, 10, 4), bool))
    # any floating input is taken, as a contiguous float32 copy
    expected = model(X)[0]
    np.testing.assert_array_equal(model(X.astype(np.float64))[0], expected)
    np.testing.assert_array_equal(model(np.asfortranarray(X))[0], expected)


def test_any_batch_size_compiles_once_per_shape():
    graph = graph_of(lambda x: conv_block(quantized_input(x)), (None, 10, 10, 4))
    model = CompiledModel(make_plan(graph))
    model(X)
    first = model.compiled_partitions
    model(X)
    assert model.compiled_partitions == first  # cached, not recompiled per call
    out = model(np.concatenate([X, X, X]))[0]
    assert out.shape[0] == 6 and model.compiled_partitions == 2 * first
    np.testing.assert_allclose(model(X[:1])[0], run_tf(graph, X[:1])[0], atol=0.1)


def test_itex_onednn_graph_off_runs_the_qdq_graph_on_tf(monkeypatch):
    monkeypatch.setenv("ITEX_ONEDNN_GRAPH", "0")
    graph = graph_of(lambda x: conv_block(quantized_input(x)), (None, 10, 10, 4))
    plan = make_plan(graph)
    assert plan.partitions == []
    assert {f.reason for f in plan.fallback} == {"oneDNN Graph partitioning is off (ITEX_ONEDNN_GRAPH=0)"}
    np.testing.assert_array_equal(CompiledModel(plan)(X)[0], run_tf(graph, X)[0])


def test_constant_folding_breaks_the_weight_pattern_and_says_so():
    graph = graph_of(lambda x: conv_block(quantized_input(x)), (None, 10, 10, 4))
    plan = make_plan(graph, PartitionConfig(tf_constant_folding=True))
    conv = next(f for f in plan.fallback if f.op == "Conv2D")
    assert "constant-folded away (ITEX_TF_CONSTANT_FOLDING=1)" in conv.reason
    got = CompiledModel(plan)(X)[0]
    np.testing.assert_allclose(got, run_tf(graph, X)[0], atol=0.1)


def test_plan_as_data_json_and_rewritten_graph():
    graph = graph_of(lambda x: conv_block(quantized_input(x)), (None, 10, 10, 4))
    plan = make_plan(graph)
    data = json.loads(plan.to_json())
    assert {"id", "nodes", "ops", "inputs", "outputs"} <= set(data["partitions"][0])
    assert {"id", "kind", "node", "inputs", "outputs", "attrs"} == set(data["partitions"][0]["ops"][0])
    assert {"name", "op"} == set(data["partitions"][0]["nodes"][0])
    assert {"name", "op", "reason"} == set(data["fallback"][0])
    rewritten = plan.rewritten()
    assert rewritten.count("OneDnnGraph") == len(plan.partitions)
    fused = next(n for n in rewritten.nodes if n.op == "OneDnnGraph" and "Conv2D" in str(n.attrs["fused_ops"]))
    assert any("Conv2D" in name for name in fused.attrs["fused_ops"])
    assert "oneDNN partitions" in plan.summary()
    assert tfgraph.graph_def_from_graph(plan.rewritten()).node  # encodable as a GraphDef


def test_flatten_runs_as_a_zero_copy_view_and_global_mean_as_pooling():
    w = RNG.normal(size=(5 * 5 * 8, 3)).astype(np.float32)

    def fn(x):
        a = conv_block(quantized_input(x))
        pooled = tf.nn.max_pool2d(a, 2, 2, "VALID")
        flat = qdq(tf.reshape(pooled, [-1, 5 * 5 * 8]), 0.0, 4.0, mode="MIN_FIRST")
        return tf.matmul(flat, qdq_weights(w, axis=1)), tf.reduce_mean(a, axis=[1, 2])

    graph = graph_of(fn, (None, 10, 10, 4))
    plan, _ = assert_matches_tf(graph, X)
    assert [v.op for v in plan.views] == ["Reshape", "Reshape"]  # the flatten and the pooled mean
    assert not plan.fallback_by_reason().keys() - {
        "Identity not translated: it only forwards its input; the executor aliases it, no kernel runs"}
    kinds = {k for p in plan.partitions for k in p.onednn_ops}
    assert "ReduceMean" not in kinds and "AvgPool" in kinds


def test_constant_folding_also_folds_through_inc_host_constants():
    # INC pins quantization ranges as HostConst; TF's folding must see through them as ITEX's does.
    import dataclasses

    from itexlab.ir.graph import Graph

    graph = graph_of(lambda x: conv_block(quantized_input(x)), (None, 10, 10, 4))
    ranges = {r.split(":")[0] for n in graph.nodes if n.op == "QuantizeV2" for r in n.inputs[1:3]}
    nodes = [dataclasses.replace(n, op="HostConst") if n.name in ranges else n for n in graph.nodes]
    graph = Graph(nodes, graph.inputs, graph.outputs)
    plan = make_plan(graph, PartitionConfig(tf_constant_folding=True))
    conv = next(f for f in plan.fallback if f.op == "Conv2D")
    assert "constant-folded away" in conv.reason


def test_timed_run_splits_one_run_into_its_steps():
    graph = graph_of(lambda x: conv_block(quantized_input(x)), (None, 10, 10, 4))
    model = CompiledModel(make_plan(graph))
    wall, steps = model.timed_run(X)
    assert [label for label, _ in steps] == [s.label for s in model.steps]
    assert 0 < sum(t for _, t in steps) <= wall


def test_plan_repr_is_one_line_not_the_whole_graph():
    plan = make_plan(graph_of(lambda x: conv_block(quantized_input(x)), (None, 10, 10, 4)))
    assert repr(plan).startswith("<Plan: ") and "\n" not in repr(plan) and len(repr(plan)) < 200


def test_identities_in_the_middle_of_a_graph():
    """A QDQ graph that was never prepared (a qdq.pb from elsewhere) may hold Identities between
    ops; a partition reading one failed to compile (found by tests/test_graphdef_fuzz.py)."""
    def fn(x):
        a = tf.identity(tf.nn.bias_add(tf.nn.conv2d(quantized_input(x), qdq_weights(W1), 1, "SAME"), B1))
        return conv_block(tf.identity(qdq(a, -4.0, 4.0, tf.qint8)), w=W2)

    graph = graph_of(fn, (None, 10, 10, 4))
    assert graph.count("Identity") >= 3
    plan, _ = assert_matches_tf(graph, X)
    assert {f.op for f in plan.fallback} == {"Identity"}  # the output's, aliased


def test_a_partition_onednn_cannot_compile_runs_on_tf():
    """oneDNN 3.2 reports Dequantize(u8) -> AvgPool -> Quantize(s8) supported and fails to compile it:
    the plan leaves it to TF, whose Dequantize then reads the ranges of a QuantizeV2 that runs in
    oneDNN (constants of the segment). Found by tests/test_differential.py."""
    graph = graph_of(lambda x: qdq(tf.nn.avg_pool2d(qdq(x, 0.0, 1.0), 2, 1, "SAME"), -1.0, 1.0, tf.qint8),
                     (None, 6, 6, 1))
    x = np.abs(RNG.uniform(-1, 1, (1, 6, 6, 1))).astype(np.float32)
    plan, _ = assert_matches_tf(graph, x)
    pool = next(f for f in plan.fallback if f.op == "AvgPool")
    assert "supported but cannot compile it" in pool.reason
    assert any(p.onednn_ops == ["Quantize"] for p in plan.partitions)  # the input quantizer still in oneDNN


def test_a_range_narrower_than_tf_allows_is_widened_as_tf_does():
    """TF's QuantizeV2 widens a calibrated range to at least ensure_minimum_range (0.01): a softmax
    output calibrated on [0, 0.0078] is quantized on [0, 0.01]. itexlab clamped at 0.0078 (found by
    tests/test_differential.py: 74 steps off)."""
    graph = graph_of(lambda x: qdq(tf.nn.softmax(qdq(x, -1.0, 1.0, tf.qint8)), 0.0, 0.0078), (None, 80))
    x = RNG.uniform(-0.01, 0.01, (2, 80)).astype(np.float32)  # softmax outputs near 1/80 = 0.0125
    plan, got = assert_matches_tf(graph, x)
    assert got[0].max() > 0.0078


# ------------------------------------------------------------------ today's models' ops (#25)

def test_keras_activations_become_one_onednn_op_each_after_a_convolution():
    """GELU (Keras 3's erfc form), hard swish, hard sigmoid, swish: recognised by what they compute
    and fused after the convolution they follow; the int8 results are the QDQ graph's on TF."""
    forms = {"GELU": lambda y: 0.5 * y * tf.math.erfc(-y * 0.7071067811865476),
             "HardSwish": lambda y: y * (tf.nn.relu6(y + 3.0) / 6.0),
             "HardSigmoid": lambda y: tf.nn.relu6(y + 3.0) / 6.0,
             "Sigmoid": lambda y: y * tf.math.sigmoid(y)}  # swish: Sigmoid and Multiply, fused by oneDNN
    for kind, activation in forms.items():
        def fn(x, activation=activation):
            y = tf.nn.conv2d(quantized_input(x), qdq_weights(W1), 1, "SAME")
            return qdq(activation(tf.nn.bias_add(y, B1)), -4.0, 4.0, tf.qint8)
        plan, _ = assert_matches_tf(graph_of(fn, (None, 10, 10, 4)), X)
        conv = partition_with(plan, "Conv2D")
        assert conv.quantized and kind in conv.onednn_ops, (kind, conv.onednn_ops)
        assert [f.op for f in plan.fallback] == ["Identity"], plan.fallback


def test_keras_layer_normalization_is_one_onednn_op():
    gamma, beta = 1.0 + RNG.normal(size=8).astype(np.float32) * 0.1, RNG.normal(size=8).astype(np.float32) * 0.1

    def fn(x):
        y = conv_block(quantized_input(x))
        mean = tf.reduce_mean(y, -1, keepdims=True)  # Keras 3's LayerNormalization, op for op
        variance = tf.reduce_mean(tf.math.squared_difference(y, tf.stop_gradient(mean)), -1, keepdims=True)
        m = tf.math.rsqrt(variance + 1e-3) * gamma
        return qdq(y * m + (-mean * m + beta), -4.0, 4.0, tf.qint8)

    plan, _ = assert_matches_tf(graph_of(fn, (None, 10, 10, 4)), X, steps=3)
    norm = partition_with(plan, "Rsqrt", "SquaredDifference", "Mean")
    assert norm is not None and "LayerNorm" in norm.onednn_ops and len(norm.compute_nodes) >= 10


def test_batch_matmul_and_fp32_weights_in_an_offloaded_partition():
    """A rank-3 batch matmul (a Dense on a sequence) with FP32 weights, behind an int8 one: the FP32
    partition reads its weights as oneDNN constants (it once read them from nowhere)."""
    w = RNG.normal(size=(4, 6)).astype(np.float32)

    def fn(x):
        y = tf.reshape(conv_block(quantized_input(x)), [-1, 100, 8])
        return tf.linalg.matmul(y, tf.constant(RNG.normal(size=(8, 6)).astype(np.float32))) + w[0]

    plan, got = assert_matches_tf(graph_of(fn, (None, 10, 10, 4)), X)
    matmul = partition_with(plan, "BatchMatMulV2")
    assert matmul is not None and any(t.constant for t in matmul.inputs) and got[0].shape == (2, 100, 6)


def test_a_dense_on_a_sequence_is_one_int8_matmul_with_its_bias_activation_and_quantizer():
    """TF's tensordot (Keras' Dense on a sequence): Reshape -> QDQ -> MatMul -> Reshape -> BiasAdd ->
    GELU -> QDQ. Its reshapes once kept the bias, the GELU and the quantizer out of the matmul's
    partition (three more f32 passes each); as a batch matmul of the sequence they are all in it."""
    w, b = RNG.normal(size=(16, 32)).astype(np.float32) * 0.3, RNG.normal(size=32).astype(np.float32) * 0.1
    x = RNG.uniform(-1, 1, (2, 12, 16)).astype(np.float32)

    def fn(t):
        flat = qdq(tf.reshape(t, [-1, 16]), -1.0, 1.0, tf.qint8)
        y = tf.reshape(tf.linalg.matmul(flat, qdq_weights(w, axis=1)), [-1, 12, 32])
        return qdq(tf.nn.gelu(tf.nn.bias_add(y, b)), -1.0, 4.0, tf.qint8)

    plan, _ = assert_matches_tf(graph_of(fn, (None, 12, 16)), x)
    matmul = partition_with(plan, "BatchMatMulV2", "BiasAdd", "Erfc")
    assert matmul is not None and matmul.onednn_ops[-1] == "Quantize" and not plan.views, plan.partitions
    assert macs(plan.source.node(matmul.compute_nodes[0].name), plan.source) == 12 * 16 * 32  # per sequence, not per token


@pytest.mark.parametrize("bias_first", [False, True])
def test_a_bias_added_to_heads_is_added_in_the_projection(bias_first):
    """Keras' EinsumDense for attention heads: a batch matmul, a reshape into heads, a bias per head
    and depth. The bias, flattened, goes before the reshape and into the matmul's partition (written
    as b + y it once crashed the rewrite)."""
    w, b = RNG.normal(size=(16, 32)).astype(np.float32) * 0.3, RNG.normal(size=(4, 8)).astype(np.float32)
    x = RNG.uniform(-1, 1, (2, 12, 16)).astype(np.float32)

    def fn(t):
        y = tf.reshape(tf.linalg.matmul(qdq(t, -1.0, 1.0, tf.qint8), qdq_weights(w, axis=1)), [-1, 12, 4, 8])
        return qdq(b + y if bias_first else y + b, -6.0, 6.0, tf.qint8)

    plan, got = assert_matches_tf(graph_of(fn, (None, 12, 16)), x)
    assert partition_with(plan, "BatchMatMulV2", "AddV2") is not None, plan.partitions
    assert got[0].shape == (2, 12, 4, 8)


def test_a_matmul_of_two_activations_runs_in_int8_and_never_saturates():
    """Attention's Q·Kᵀ: both operands are activations. Built to saturate oneDNN's int16 pair sums
    without VNNI (u8 data near 255 against s8 codes near 127): the second operand's range is doubled
    there (codes of at most 64), and the result is the QDQ graph's on every ISA."""
    x = RNG.uniform(3.5, 4.0, (2, 4, 64)).astype(np.float32)

    def fn(t):
        a = qdq(t, 0.0, 4.0, tf.quint8)
        b = qdq(tf.transpose(t, [0, 2, 1]), -4.0, 4.0, tf.qint8)
        return tf.linalg.matmul(a, b)

    from itexlab.backend import onednn

    graph = graph_of(fn, (None, 4, 64))
    plan, got = assert_matches_tf(graph, x)
    matmul = partition_with(plan, "BatchMatMulV2")
    assert matmul.quantized and (matmul.compute_nodes[0].name in plan.seven_bit_ops) == onednn.int8_pairs_saturate()
    np.testing.assert_allclose(got[0], x @ x.transpose(0, 2, 1), rtol=0.03)  # not clipped at 32767
    if onednn.int8_pairs_saturate():  # the trap this avoids: 8-bit codes there clip, silently
        with pytest.warns(UserWarning, match="may saturate"):
            _, clipped = run_itexlab(graph, x, PartitionConfig(weight_bits=8))
        assert np.abs(clipped[0] - got[0]).max() > 0.3 * np.abs(got[0]).max()


def test_transposes_run_in_the_executor_as_onednn_reorders():
    """Attention's transposes, between int8 partitions: one oneDNN reorder each, no trip to TF."""
    def fn(x):
        y = tf.reshape(conv_block(quantized_input(x)), [-1, 10, 10, 2, 4])
        return qdq(tf.transpose(y, [0, 3, 1, 4, 2]) * 1.0, -4.0, 4.0, tf.qint8)

    plan, got = assert_matches_tf(graph_of(fn, (None, 10, 10, 4)), X)
    assert [v.op for v in plan.views].count("Transpose") == 1 and got[0].shape == (2, 2, 10, 4, 10)
    assert "Transpose" not in {f.op for f in plan.fallback}
    model = CompiledModel(plan)
    step = next(s for s in model.steps if s.kind == "transpose")
    assert step.view_shape == [0, 3, 1, 4, 2]


SLICES = {  # as users write them; TF turns each into one StridedSlice with its masks
    "first_row": lambda y: y[:, 0],                    # shrunk axis (a pooler's first token)
    "window": lambda y: y[:, 1:, ::2, :],
    "ellipsis": lambda y: y[..., 1:3],
    "new_axis": lambda y: y[:, tf.newaxis, 2:5, -3:],  # a new axis and negative bounds
    "strided_ends": lambda y: y[:, -3:, :, ::3],
    "two_shrunk": lambda y: y[:, :, 7, 1],
}


@pytest.mark.parametrize("name", SLICES)
def test_strided_slices_run_in_the_executor_as_strided_copies(name):
    """Between int8 partitions, each slice is a copy of a strided window of its input in the executor:
    the same values as TF's StridedSlice, bit for bit."""
    def fn(x):
        return SLICES[name](conv_block(quantized_input(x))) * 2.0

    graph = graph_of(fn, (None, 10, 10, 4))
    plan, got = assert_matches_tf(graph, X, steps=0)
    assert [v.op for v in plan.views] == ["StridedSlice"] and "StridedSlice" not in {f.op for f in plan.fallback}
    assert "slice" in [s.kind for s in CompiledModel(plan).steps]
    assert got[0].shape == run_tf(oracle_graph(graph, plan), X)[0].shape


@pytest.mark.parametrize("slicer, why", [
    (lambda y: y[:, ::-1], "a negative stride"),
    (lambda y: y[:, 3:3], "an empty result"),
    (lambda y: y[: tf.shape(y)[1] // 2], "bounds computed at run time"),
])
def test_slices_the_executor_cannot_take_stay_on_tf_and_say_why(slicer, why):
    graph = graph_of(lambda x: slicer(conv_block(quantized_input(x))) * 2.0, (None, 10, 10, 4))
    plan, got = run_itexlab(graph, X)
    np.testing.assert_array_equal(got[0], run_tf(oracle_graph(graph, plan), X)[0])
    reasons = {f.reason for f in plan.fallback if f.op == "StridedSlice"}
    assert len(reasons) == 1 and why in reasons.pop()


def test_expand_dims_and_squeeze_are_zero_copy_views():
    """Keras' Conv1D is ExpandDims -> Conv2D -> Squeeze: none of them needs TF."""
    def fn(x):
        y = tf.expand_dims(conv_block(quantized_input(x)), 1)
        return tf.squeeze(y * 2.0, [1])

    plan, _ = assert_matches_tf(graph_of(fn, (None, 10, 10, 4)), X, steps=0)
    assert sorted(v.op for v in plan.views) == ["ExpandDims", "Squeeze"]
    assert {s.kind for s in CompiledModel(plan).steps if s.label in {v.name for v in plan.views}} == {"view"}
    assert "zero-copy views" in plan.summary()


RESIZES = {
    "bilinear_up": lambda y: tf.image.resize(y, [14, 18]),
    "bilinear_down": lambda y: tf.image.resize(y, [7, 5]),
    "nearest_up": lambda y: tf.image.resize(y, [20, 15], method="nearest"),
    "nearest_down": lambda y: tf.image.resize(y, [5, 4], method="nearest"),
}


@pytest.mark.parametrize("name", RESIZES)
def test_resizes_run_in_onednn_as_interpolate(name):
    """Keras' Resizing and bilinear UpSampling2D (half-pixel centers): oneDNN's Interpolate."""
    plan, _ = assert_matches_tf(graph_of(lambda x: RESIZES[name](conv_block(quantized_input(x))) * 2.0,
                                         (None, 10, 10, 4)), X, steps=1)
    assert partition_with(plan, "ResizeBilinear" if "bilinear" in name else "ResizeNearestNeighbor")


def test_a_resize_with_aligned_corners_stays_on_tf_and_says_why():
    """oneDNN 3.2 has no kernel for it, and TF 1's legacy mapping no equivalent at all."""
    def fn(x):
        y = conv_block(quantized_input(x))
        return (tf.compat.v1.image.resize_bilinear(y, [13, 17], align_corners=True),
                tf.compat.v1.image.resize_nearest_neighbor(y, [13, 17]))

    plan, _ = assert_matches_tf(graph_of(fn, (None, 10, 10, 4)), X)
    reasons = {f.op: f.reason for f in plan.fallback if f.op.startswith("Resize")}
    assert "no kernel for this Interpolate partition" in reasons["ResizeBilinear"]
    assert "legacy pixel mapping" in reasons["ResizeNearestNeighbor"]


W_TRANSPOSED = RNG.normal(size=(3, 3, 6, 8)).astype(np.float32) * 0.3  # (H, W, out, in)


@pytest.mark.parametrize("padding, size, stride", [("SAME", 20, 2), ("VALID", 21, 2), ("VALID", 22, 2),
                                                   ("SAME", 10, 1)])
def test_transposed_convolutions_are_int8_partitions(padding, size, stride):
    """Keras' Conv2DTranspose: TF states its output size, computed from the batch on TF; oneDNN
    derives it from pads and an output padding, so that computation never runs."""
    def fn(x):
        y = conv_block(quantized_input(x))
        z = tf.nn.conv2d_transpose(y, qdq_weights(W_TRANSPOSED, axis=2), [tf.shape(y)[0], size, size, 6], stride,
                                   padding)
        return qdq(z, -4.0, 4.0, tf.qint8)

    plan, got = assert_matches_tf(graph_of(fn, (None, 10, 10, 4)), X)
    assert partition_with(plan, "Conv2DBackpropInput").quantized and got[0].shape == (2, size, size, 6)
    assert all(s.kind != "callback" for s in CompiledModel(plan).steps)


@pytest.mark.parametrize("op", ["conv", "matmul", "transposed"])
def test_weights_scaled_along_their_input_channels_stay_on_tf(op):
    """oneDNN's int8 kernels apply per-channel weight scales along the output channels, whatever
    axis the Dequantize names; weights scaled along their input channels gave results off by
    13 (conv) and 10 (matmul) quantization steps and more, silently. They now stay on TF."""
    def fn(x):
        y = quantized_input(x)
        if op == "conv":
            w = W1 * np.array([1, 5, 1, 1], np.float32)[:, None]  # one input channel 5x the others
            return qdq(tf.nn.conv2d(y, qdq_weights(w, axis=2), 1, "SAME"), -9.0, 9.0, tf.qint8)
        if op == "matmul":
            w = RNG.normal(size=(400, 5)).astype(np.float32) * np.linspace(0.2, 2.0, 400, dtype=np.float32)[:, None]
            return qdq(tf.matmul(tf.reshape(y, [-1, 400]), qdq_weights(w, axis=0)), -19.0, 19.0, tf.qint8)
        return qdq(tf.nn.conv2d_transpose(y, qdq_weights(W_TRANSPOSED[..., :4], axis=3), [tf.shape(y)[0], 10, 10, 6],
                                          1, "SAME"), -9.0, 9.0, tf.qint8)

    plan, _ = assert_matches_tf(graph_of(fn, (None, 10, 10, 4)), X)
    assert any("not along its output channels" in f.reason for f in plan.fallback if f.op == "Dequantize")


@pytest.mark.parametrize("spatial", [(10, 10), (None, None)])
def test_an_image_mean_is_a_pooling_when_its_size_is_known_and_stays_on_tf_when_not(spatial):
    """A squeeze-and-excite mean (keep_dims). Of an image of unknown size it cannot be a pooling, and
    oneDNN 3.2's ReduceMean is a reference kernel: MobileNetV3Large built for any input size spent
    170 of its 210 ms at batch 16 in them (1.99x slower than TF FP32; 1.93x faster on TF)."""
    def se_block(x):
        y = conv_block(quantized_input(x))
        return y * tf.sigmoid(tf.reduce_mean(y, axis=[1, 2], keepdims=True))

    plan, _ = assert_matches_tf(graph_of(se_block, (None, *spatial, 4)), X)
    means = [f for f in plan.fallback if f.op == "Mean"]
    if None in spatial:
        assert means and "a mean over an image of unknown size" in means[0].reason
    else:
        assert not means and partition_with(plan, "AvgPool") is not None
