import numpy as np
import tensorflow as tf

from itexlab.graph import DType, Node
from itexlab.translate import quant_params, quantize_constant


def quantizer(dtype, mode, axis=-1):
    return Node("q", "QuantizeV2", ["x", "lo", "hi"], {"T": DType(dtype), "mode": mode, "axis": axis})


def test_scaled_parameters():
    scales, zps = quant_params(quantizer("quint8", "SCALED"), np.float32(0), np.float32(5.1))
    assert np.isclose(scales[0], 0.02) and zps == [0]
    scales, zps = quant_params(quantizer("qint8", "SCALED"), np.float32(-2.54), np.float32(1.0))
    assert np.isclose(scales[0], 0.02) and zps == [0]


def test_min_first_parameters_are_asymmetric():
    scales, zps = quant_params(quantizer("quint8", "MIN_FIRST"), np.float32(-1.0), np.float32(4.1))
    assert np.isclose(scales[0], 0.02) and zps == [50]


def test_per_channel_weights_quantize_like_tf():
    rng = np.random.default_rng(0)
    w = rng.normal(size=(3, 3, 4, 8)).astype(np.float32)
    m = np.abs(w).max(axis=(0, 1, 2))
    node = quantizer("qint8", "SCALED", axis=3)
    scales, zps = quant_params(node, -m, m)
    q = quantize_constant(node, w, scales, zps)
    assert q.dtype == np.int8 and q.shape == w.shape
    expected = tf.quantization.quantize(w, -m, m, tf.qint8, mode="SCALED", round_mode="HALF_TO_EVEN",
                                        axis=3).output.numpy().view(np.int8)
    # TF quantizes symmetric int8 by 127/m per channel too: at most one step apart
    assert np.abs(q.astype(int) - expected.astype(int)).max() <= 1
    np.testing.assert_allclose(q * np.asarray(scales), w, atol=max(scales) / 2 + 1e-6)


def test_constant_zero_channel_gets_a_valid_scale():
    scales, _ = quant_params(quantizer("qint8", "SCALED", axis=3), np.zeros(2), np.array([0.0, 1.27]))
    assert scales[0] > 0 and np.isclose(scales[1], 0.01)
