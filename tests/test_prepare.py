import keras
import numpy as np
import tensorflow as tf
from conftest import graph_of, run_tf

from itexlab.frontend import tfgraph
from itexlab.quant.prepare import prepare


def bn_model(depthwise=False):
    inputs = keras.Input((12, 12, 3))
    conv = keras.layers.DepthwiseConv2D(3, depth_multiplier=2, use_bias=False) if depthwise else \
        keras.layers.Conv2D(8, 3, use_bias=True)
    x = keras.layers.BatchNormalization()(conv(inputs))
    x = keras.layers.ReLU()(x)
    x = keras.layers.Flatten()(x)
    x = keras.layers.Dense(5)(x)
    x = keras.layers.BatchNormalization()(x)
    model = keras.Model(inputs, x)
    rng = np.random.default_rng(1)
    for layer in model.layers:  # non-trivial BN statistics
        if isinstance(layer, keras.layers.BatchNormalization):
            gamma, beta, mean, var = layer.get_weights()
            layer.set_weights([rng.uniform(0.5, 2, gamma.shape), rng.normal(size=beta.shape),
                               rng.normal(size=mean.shape), rng.uniform(0.5, 2, var.shape)])
    return model


def test_keras3_batchnorm_is_folded_into_weights():
    for depthwise in (False, True):
        model = bn_model(depthwise)
        original = tfgraph.load(model)
        before = [(n.name, n.op, list(n.inputs)) for n in original.nodes]
        prepared = prepare(original)
        ops = {n.op for n in prepared.nodes}
        assert not ops & {"Mul", "Sub", "Rsqrt", "AddV2", "Shape", "StridedSlice", "Pack"}
        assert prepared.count("BiasAdd") == 2
        x = np.random.default_rng(0).random((3, 12, 12, 3), np.float32)
        np.testing.assert_allclose(run_tf(prepared, x)[0], model(x).numpy(), rtol=1e-4, atol=1e-4)
        # the caller's graph is untouched
        assert [(n.name, n.op, list(n.inputs)) for n in original.nodes] == before


def test_fused_batch_norm_v3_is_folded():
    rng = np.random.default_rng(2)
    w = rng.normal(size=(3, 3, 2, 4)).astype(np.float32)
    scale, offset, mean, var = (rng.uniform(0.5, 2, 4).astype(np.float32) for _ in range(4))

    def fn(x):
        y = tf.nn.conv2d(x, w, 1, "SAME")
        y, *_ = tf.raw_ops.FusedBatchNormV3(x=y, scale=scale, offset=offset, mean=mean, variance=var,
                                            epsilon=0.001, is_training=False)
        return tf.nn.relu(y)

    graph = graph_of(fn, (None, 6, 6, 2))
    assert graph.count("FusedBatchNormV3") == 1
    prepared = prepare(graph)
    assert prepared.count("FusedBatchNormV3") == 0 and prepared.count("Mul") == 0
    x = rng.random((2, 6, 6, 2), np.float32)
    np.testing.assert_allclose(run_tf(prepared, x)[0], run_tf(graph, x)[0], rtol=1e-4, atol=1e-4)


def test_flatten_gets_a_static_shape():
    model = keras.Sequential([keras.Input((4, 4, 2)), keras.layers.Flatten(), keras.layers.Dense(3)])
    prepared = prepare(tfgraph.load(model))
    reshape = next(n for n in prepared.nodes if n.op == "Reshape")
    assert list(prepared.constant(reshape.inputs[1])) == [-1, 32]
    x = np.ones((5, 4, 4, 2), np.float32)
    np.testing.assert_allclose(run_tf(prepared, x)[0], model(x).numpy(), rtol=1e-5)


def test_folding_evaluates_no_file_or_python_op(tmp_path):
    """Constant subgraphs are evaluated on TF to fold them: a model from a stranger must not read or
    write files that way (a SavedModel folder may hold any graph)."""
    secret = tmp_path / "secret.txt"
    secret.write_text("3")

    def fn(x):
        leaked = tf.strings.to_number(tf.io.read_file(str(secret)))
        return x * leaked + tf.constant(2.0) * tf.constant(3.0)

    graph = prepare(graph_of(fn, (None, 4)))
    assert {"ReadFile", "StringToNumber"} <= {n.op for n in graph.nodes}  # left as they are, not evaluated
    assert not any(n.op == "Const" and n.attrs.get("value") is not None and n.attrs["value"].dtype == np.float32
                   and float(np.asarray(n.attrs["value"]).reshape(-1)[0]) == 3.0 for n in graph.nodes)


def transformer_block(mask=False):
    """Keras' MultiHeadAttention (Einsum attention, a masked softmax when given a mask), a Dense on a
    sequence (Tensordot with shapes computed from the input's), LayerNormalization, GELU."""
    keras.utils.set_random_seed(0)
    x_in = keras.Input((6, 16))
    inputs = [x_in]
    kwargs = {}
    if mask:
        mask_in = keras.Input((6,), dtype="int32")
        inputs.append(mask_in)
        kwargs["attention_mask"] = keras.ops.cast(keras.ops.expand_dims(mask_in, 1), "bool")
    x = keras.layers.LayerNormalization()(x_in)
    x = x + keras.layers.MultiHeadAttention(2, 8)(x, x, **kwargs)
    h = keras.layers.EinsumDense("abc,cde->abde", output_shape=(6, 4, 8), bias_axes="de")(
        keras.layers.Dense(32, activation="gelu")(x))
    return keras.Model(inputs, h)


def test_shapes_einsum_and_masks_become_static_batch_matmuls_and_arithmetic():
    model = transformer_block(mask=True)
    graph = prepare(tfgraph.load(model))
    ops = {n.op for n in graph.nodes}
    assert not ops & {"Einsum", "Shape", "Fill", "LogicalAnd", "SelectV2", "Pack", "GatherV2", "StopGradient"}, ops
    assert "BatchMatMulV2" in ops
    rng = np.random.default_rng(0)
    for batch in (1, 5):  # the batch stays open: -1 in the static shapes
        x = rng.standard_normal((batch, 6, 16)).astype(np.float32)
        mask = (rng.random((batch, 6)) > 0.3).astype(np.int32)
        got = tfgraph.GraphFunction(graph, graph.inputs, graph.outputs)([x, mask])[0]
        np.testing.assert_allclose(got, model([x, mask]).numpy(), rtol=1e-5, atol=1e-5)
