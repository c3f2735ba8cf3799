"""What happens on bad input (the README section of that name): a clear exception or warning
naming the problem, never numbers that look right, and nothing the user gave is changed."""

import warnings
import zipfile

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import graph_of, qdq_weights, run_tf
from test_partition_execute import X, conv_block, quantized_input

from itexlab.cli import main
from itexlab.config import ConfigWarning, QuantConfig
from itexlab.errors import CalibrationDataError, ConfigError, InputError, ModelError
from itexlab.frontend import tfgraph
from itexlab.lower.partition import make_plan
from itexlab.quant.quantization import CalibrationWarning, quantize
from itexlab.runtime.executor import CompiledModel, InputRangeWarning, ShapeFallbackWarning


@pytest.fixture(scope="module")
def model():
    return CompiledModel(make_plan(graph_of(lambda x: conv_block(quantized_input(x)), (None, 10, 10, 4))))


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
def test_nan_and_infinities_are_refused_not_turned_into_numbers(model, value):
    x = X.copy()
    x[0, 3, 3, 1] = value
    with pytest.raises(InputError, match="1 NaN or infinite value"):
        model(x)


def test_values_far_outside_the_calibrated_range_warn(model):
    with pytest.warns(InputRangeWarning, match=r"calibrated on \[-1, 1\]"):
        model(np.full_like(X, 1e30))
    with pytest.warns(InputRangeWarning, match="spans"):
        model(X * 255)  # the classic: 0..255 pixels into a model calibrated on 0..1


def test_the_value_check_can_be_turned_off_for_speed():
    unchecked = CompiledModel(make_plan(graph_of(lambda x: conv_block(quantized_input(x)), (None, 10, 10, 4))),
                              check_values=False)
    x = X.copy()
    x[0, 0, 0, 0] = np.nan
    assert unchecked(x)[0].shape == (2, 10, 10, 8)


def test_an_image_too_small_for_the_model_is_refused():
    """Unknown spatial dims: a 2x3 image under a 3x3 VALID convolution has no output (Keras raises)."""
    w = np.random.default_rng(0).normal(size=(3, 3, 4, 8)).astype(np.float32)
    graph = graph_of(lambda x: tf.nn.conv2d(quantized_input(x), tf.constant(w), 1, "VALID"), (None, None, None, 4))
    model = CompiledModel(make_plan(graph))
    assert model(X)[0].shape == (2, 8, 8, 8)
    with pytest.raises(InputError, match=r"inputs of shape \(1, 2, 3, 4\) do not fit the model: .*Negative dimension"):
        model(np.zeros((1, 2, 3, 4), np.float32))
    quantized_weights = graph_of(lambda x: tf.nn.conv2d(quantized_input(x), qdq_weights(w), 1, "VALID"),
                                 (None, None, None, 4))
    in_onednn = CompiledModel(make_plan(quantized_weights))  # the convolution runs in a oneDNN partition
    with pytest.raises(InputError, match="do not fit the model"):
        in_onednn(np.zeros((1, 2, 3, 4), np.float32))
    with pytest.raises(ValueError, match="too small for"):  # the native executor checks on its own too
        in_onednn._program.run([np.zeros((1, 2, 3, 4), np.float32)])


@pytest.fixture(scope="module")
def uint8_model():
    keras.utils.set_random_seed(0)
    inputs = keras.Input((8, 8, 3), dtype="uint8")
    x = keras.layers.Rescaling(1 / 255)(inputs)
    x = keras.layers.Conv2D(4, 3, activation="relu")(x)
    outputs = keras.layers.Dense(2)(keras.layers.Flatten()(x))
    return keras.Model(inputs, outputs)


def test_a_model_with_uint8_input_takes_uint8_data(uint8_model):
    images = np.random.default_rng(0).integers(0, 256, (8, 8, 8, 3), dtype=np.uint8)
    q = quantize(uint8_model, images, QuantConfig(calibration_batches=2), progress=False)  # uint8 calibration
    model = CompiledModel(make_plan(q.qdq))
    got = model(images)[0]
    expected = run_tf(q.qdq, images)[0]
    assert np.abs(got - expected).max() <= 0.05 * np.abs(expected).max()
    with pytest.raises(InputError, match="dtype float32; the model takes uint8 .*convert it yourself"):
        model(images.astype(np.float32) / 255)  # would silently become all zeros
    with pytest.raises(CalibrationDataError, match="dtype float64; the model takes uint8"):
        quantize(uint8_model, images / 255.0, progress=False)


def test_degenerate_calibration_data_warns():
    keras.utils.set_random_seed(0)
    net = keras.Sequential([keras.Input((6, 6, 1)), keras.layers.Conv2D(4, 3, activation="relu"),
                            keras.layers.Flatten(), keras.layers.Dense(2)])
    for constant in (0.0, 1e-30):
        with pytest.warns(CalibrationWarning, match="every calibration value is"):
            quantize(net, np.full((4, 6, 6, 1), constant, np.float32), QuantConfig(calibration_batches=1),
                     progress=False)


def test_quantizing_a_quantized_graph_says_so(tmp_path):
    graph = graph_of(lambda x: conv_block(quantized_input(x)), (None, 10, 10, 4))
    path = tmp_path / "qdq.pb"
    path.write_bytes(tfgraph.graph_def_from_graph(graph).SerializeToString())
    with pytest.raises(ModelError, match="already quantized .*QuantizeV2"):
        quantize(str(path), X, progress=False)


def small_keras_model():
    return keras.Sequential([keras.Input((6, 6, 1)), keras.layers.Conv2D(2, 3), keras.layers.Flatten(),
                             keras.layers.Dense(2)])


def test_a_damaged_keras_file_is_named_as_such(tmp_path):
    path = tmp_path / "model.keras"
    small_keras_model().save(path)
    path.write_bytes(path.read_bytes()[:200])  # truncated
    with pytest.raises(ModelError, match="damaged or truncated"):
        tfgraph.load(str(path))
    not_a_model = tmp_path / "other.keras"
    with zipfile.ZipFile(not_a_model, "w") as archive:
        archive.writestr("readme.txt", "hello")
    with pytest.raises(ModelError, match="is not a readable .keras file"):
        tfgraph.load(str(not_a_model))


def test_an_unregistered_custom_layer_is_named(tmp_path):
    @keras.saving.register_keras_serializable(package="itexlab_test")
    class Doubler(keras.layers.Layer):
        def call(self, x):
            return 2 * x

    path = tmp_path / "custom.keras"
    keras.Sequential([keras.Input((4,)), Doubler(), keras.layers.Dense(2)]).save(path)
    keras.saving.get_custom_objects().pop("itexlab_test>Doubler")
    with pytest.raises(ModelError, match="Keras cannot rebuild .*register_keras_serializable"):
        tfgraph.load(str(path))


@pytest.mark.parametrize("case", ["uint8 data", "model error", "single image"])
def test_the_command_line_prints_one_line_not_a_traceback(tmp_path, case, capsys):
    model_path, data_path = tmp_path / "model.keras", tmp_path / "calib.npy"
    small_keras_model().save(model_path)
    data = {"uint8 data": np.zeros((4, 6, 6, 1), np.uint8), "model error": np.zeros((4, 6, 6, 1), np.float32),
            "single image": np.zeros((6, 6, 1), np.float32)}[case]
    np.save(data_path, data)
    if case == "model error":
        model_path.write_bytes(b"not a zip")
    expected = {"uint8 data": "dtype uint8; the model takes float32", "model error": "damaged or truncated",
                "single image": r"one sample x is x\[None\]"}[case]
    with pytest.raises(SystemExit, match=f"^itexlab: .*{expected}"):
        main(["inspect", str(model_path), "--calibration", str(data_path)])


def test_keras_safe_mode_is_kept(tmp_path):
    path = tmp_path / "lambda.keras"
    keras.Sequential([keras.Input((4,)), keras.layers.Lambda(lambda x: x * 2)]).save(path)
    with pytest.raises(ModelError, match="Lambda"):  # no arbitrary code from a model file runs
        tfgraph.load(str(path))


def test_upsampling_quantizes_and_runs_as_tf_computes_it():
    """UpSampling2D's Repeat folded to a scalar constant that went back to TF as an int attribute, not a
    tensor: prepare() failed with 'AttrValue had value with type int when tensor expected'."""
    keras.utils.set_random_seed(0)
    net = keras.Sequential([keras.Input((6, 6, 3)), keras.layers.Conv2D(4, 3, padding="same", activation="relu"),
                            keras.layers.UpSampling2D(), keras.layers.Conv2D(4, 3, activation="relu"),
                            keras.layers.GlobalAveragePooling2D()])
    images = np.random.default_rng(0).random((8, 6, 6, 3), np.float32)
    q = quantize(net, images, QuantConfig(calibration_batches=2), progress=False)
    got = CompiledModel(make_plan(q.qdq))(images)[0]
    np.testing.assert_allclose(got, run_tf(q.qdq, images)[0], atol=0.02 * np.abs(got).max())


def test_a_shape_onednn_cannot_compile_runs_on_tf_with_a_warning():
    """Open spatial dims: a 5x5 image through two 3x3 convolutions leaves a height of 1 for the mean
    over the height, which oneDNN 3.2 cannot compile as a reduction. That shape runs the partition
    on TF, said once. (A mean over the whole image of unknown size stays on TF at any size.)"""
    keras.utils.set_random_seed(0)
    net = keras.Sequential([keras.Input((None, None, 3)), keras.layers.Conv2D(4, 3, activation="relu"),
                            keras.layers.Conv2D(4, 3, activation="relu"),
                            keras.layers.Lambda(lambda t: keras.ops.max(keras.ops.mean(t, axis=1), axis=1)),
                            keras.layers.Dense(2)])
    images = np.random.default_rng(0).random((8, 8, 8, 3), np.float32)
    q = quantize(net, images, QuantConfig(calibration_batches=2), progress=False)
    model = CompiledModel(make_plan(q.qdq))
    small = np.random.default_rng(1).random((2, 5, 5, 3), np.float32)
    with pytest.warns(ShapeFallbackWarning, match=r"cannot compile partition \d+ \(Mean\) for inputs of shape "
                                                  r"\(2, 5, 5, 3\): for that shape its 1 ops run on TensorFlow"):
        got = model(small)[0]
    expected = run_tf(q.qdq, small)[0]
    np.testing.assert_allclose(got, expected, atol=0.02 * np.abs(expected).max())
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # said once per shape
        np.testing.assert_array_equal(model(small)[0], got)
        assert model(images)[0].shape == (8, 2)  # other shapes still run in oneDNN


def test_float64_beyond_float32_is_named_as_such(model):
    with pytest.raises(InputError, match="1 value\\(s\\) out of float32 range"):
        model(np.where(np.arange(X.size).reshape(X.shape) == 7, 1e300, X.astype(np.float64)))
    with pytest.raises(CalibrationDataError, match="out of float32 range"):
        quantize(small_keras_model(), np.full((4, 6, 6, 1), 1e39), progress=False)


def test_calibration_dominated_by_outliers_warns_naming_the_input():
    images = np.random.default_rng(0).random((8, 6, 6, 1), np.float32)
    images[3, 2, 2, 0] = 1e30
    with pytest.warns(CalibrationWarning, match="calibration data of input '.*' spans .*1e\\+30.*a few outliers"):
        quantize(small_keras_model(), images, QuantConfig(calibration_batches=2), progress=False)
    one_hot = np.zeros((8, 6, 6, 1), np.float32)
    one_hot[0, 0, 0, 0] = 1.0  # all but a few values alike: nothing to lose, nothing to say
    with warnings.catch_warnings():
        warnings.simplefilter("error", CalibrationWarning)
        quantize(small_keras_model(), one_hot, QuantConfig(calibration_batches=2), progress=False)


def test_a_keep_fp32_pattern_that_matches_nothing_warns():
    images = np.random.default_rng(0).random((8, 6, 6, 1), np.float32)
    with pytest.warns(ConfigWarning, match="'conv_typo' matches no op of the model"):
        quantize(small_keras_model(), images, QuantConfig(calibration_batches=1, keep_fp32=("conv_typo",)),
                 progress=False)
    with pytest.raises(ConfigError, match="'\\[' is not a regular expression"):
        QuantConfig(keep_fp32=("[",))
