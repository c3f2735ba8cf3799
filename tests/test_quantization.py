import os

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import run_tf

from itexlab.config import ConfigError, PartitionConfig, QuantConfig
from itexlab.frontend import tfgraph
from itexlab.quant.quantization import CalibrationDataError, calibration_batches, quantize


@pytest.fixture(scope="module")
def cnn():
    keras.utils.set_random_seed(0)
    inputs = keras.Input((16, 16, 1))
    x = keras.layers.Conv2D(8, 3, padding="same", use_bias=False)(inputs)
    x = keras.layers.BatchNormalization()(x)
    x = keras.layers.ReLU()(x)
    x = keras.layers.MaxPooling2D()(x)
    x = keras.layers.Flatten()(x)
    outputs = keras.layers.Dense(4)(x)
    return keras.Model(inputs, outputs)


@pytest.fixture(scope="module")
def graph(cnn):
    return tfgraph.load(cnn)


def test_config_is_validated():
    with pytest.raises(ConfigError, match="weight_granularity"):
        QuantConfig(weight_granularity="per_row")
    with pytest.raises(ConfigError, match="algorithm"):
        QuantConfig(algorithm="entropy")
    with pytest.raises(ConfigError, match="calibration_batches"):
        QuantConfig(calibration_batches=0)
    with pytest.raises(ConfigError, match="weight_bits"):
        PartitionConfig(weight_bits=4)


def test_itex_switches_are_read_from_the_environment(monkeypatch):
    monkeypatch.setenv("ITEX_ONEDNN_GRAPH", "0")
    monkeypatch.setenv("ITEX_TF_CONSTANT_FOLDING", "1")
    config = PartitionConfig()
    assert not config.onednn_graph and config.tf_constant_folding
    monkeypatch.delenv("ITEX_ONEDNN_GRAPH")
    monkeypatch.delenv("ITEX_TF_CONSTANT_FOLDING")
    config = PartitionConfig()
    assert config.onednn_graph and not config.tf_constant_folding
    monkeypatch.setenv("ITEX_ONEDNN_GRAPH", "maybe")
    with pytest.raises(ConfigError, match="ITEX_ONEDNN_GRAPH"):
        PartitionConfig()


@pytest.mark.parametrize("data, message", [
    (np.zeros((0, 16, 16, 1), np.float32), "empty"),
    (np.zeros((4, 16, 16), np.float32), r"calibration data has shape \(4, 16, 16\); the model input is \(None, 16, 16, 1\)$"),
    (np.zeros((16, 16, 1), np.float32), r"data has shape \(16, 16, 1\).*one sample x is x\[None\]"),
    ("calib.npy", "is a path"),
    (np.zeros((4, 16, 16, 1), np.uint8), "dtype uint8; the model takes float32"),
    (np.zeros((4, 16, 15, 1), np.float32), "axis 2 differs"),
    (np.zeros((4, 16, 16, 1), np.int32), "dtype int32"),
    (np.full((4, 16, 16, 1), np.nan, np.float32), "NaN or Inf"),
    (np.full((4, 16, 16, 1), np.inf, np.float32), "NaN or Inf"),
    ([], "empty"),
    (42, "an array, .* a tf.data.Dataset or an iterable of batches, not int"),
])
def test_bad_calibration_data_is_rejected(graph, data, message):
    with pytest.raises(CalibrationDataError, match=message):
        calibration_batches(data, graph, 4)


def test_calibration_data_forms(graph):
    x = np.random.default_rng(0).random((10, 16, 16, 1))
    # each batch: one array per model input
    assert [[len(a) for a in b] for b in calibration_batches(x, graph, 3)] == [[4], [3], [3]]
    assert calibration_batches(x, graph, 3)[0][0].dtype == np.float32
    dataset = tf.data.Dataset.from_tensor_slices((x, np.zeros(10))).batch(4)
    assert [len(b[0]) for b in calibration_batches(dataset, graph, 5)] == [4, 4, 2]
    assert len(calibration_batches([x[:2]] * 9, graph, 5)) == 5


def test_quantize_contains_inc_side_effects(cnn, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    x = np.random.default_rng(0).random((8, 16, 16, 1), np.float32)
    result = quantize(cnn, x, QuantConfig(calibration_batches=2), legacy=True, progress=False)
    assert list(tmp_path.iterdir()) == []
    assert "CUDA_VISIBLE_DEVICES" not in os.environ
    assert result.qdq.count("QuantizeV2") >= 3 and result.qdq.count("Dequantize") >= 3
    assert any(n.op.startswith("Quantized") for n in result.legacy.nodes)
    # the QDQ graph still computes the model, within quantization error
    expected = cnn(x).numpy()
    got = run_tf(result.qdq, x)[0]
    assert np.abs(got - expected).max() < 0.05 * np.abs(expected).max()


def test_keep_fp32_leaves_the_named_op_alone(cnn):
    x = np.random.default_rng(0).random((4, 16, 16, 1), np.float32)
    result = quantize(cnn, x, QuantConfig(calibration_batches=1, keep_fp32=(".*MatMul.*",)), progress=False)
    matmul = next(n for n in result.qdq.nodes if n.op == "MatMul")
    assert all(result.qdq.node(r).op != "Dequantize" for r in matmul.inputs)
    conv = next(n for n in result.qdq.nodes if n.op == "Conv2D")
    assert result.qdq.node(conv.inputs[0]).op == "Dequantize"


def test_ranges_inc_left_dynamic_are_measured_on_the_calibration_data():
    from conftest import graph_of

    from itexlab.quant.quantization import freeze_dynamic_ranges

    def fn(x):
        flat = tf.reshape(x, [-1])
        q, lo, hi = tf.quantization.quantize(x, tf.reduce_min(flat), tf.reduce_max(flat), tf.qint8, mode="SCALED")
        return tf.quantization.dequantize(q, lo, hi, mode="SCALED")

    graph = graph_of(fn, (None, 3))
    batches = [np.array([[0.5, -2.0, 1.0]], np.float32), np.array([[3.0, 0.0, -1.0]], np.float32)]
    frozen = freeze_dynamic_ranges(graph, batches)
    quantizer = next(n for n in frozen.nodes if n.op == "QuantizeV2")
    assert frozen.constant(quantizer.inputs[1]) == -2.0 and frozen.constant(quantizer.inputs[2]) == 3.0
    assert freeze_dynamic_ranges(frozen, batches) is frozen
