import numpy as np
import pytest
import tensorflow as tf

from itexlab.ir.graph import DType, Node
from itexlab.lower.qparams import quant_params, quantize_constant


def quantizer(dtype, mode, axis=-1):
    return Node("q", "QuantizeV2", ["x", "lo", "hi"], {"T": DType(dtype), "mode": mode, "axis": axis})


def test_scaled_parameters():
    scales, zps = quant_params(quantizer("quint8", "SCALED"), np.float32(0), np.float32(5.1))
    assert np.isclose(scales[0], 0.02) and zps == [0]
    scales, zps = quant_params(quantizer("qint8", "SCALED"), np.float32(-2.56), np.float32(1.0))
    assert np.isclose(scales[0], 0.02) and zps == [0]  # -128 * 0.02 reaches -2.56


@pytest.mark.parametrize("dtype, lo, hi", [
    ("qint8", -1.0, 1.0), ("qint8", -1.0, 0.5), ("qint8", -0.2, 3.0), ("qint8", -0.002, 0.002),
    ("quint8", 0.0, 0.00775), ("quint8", 0.0, 5.1), ("qint8", 0.0, 0.0),
])
def test_scaled_scales_are_tfs_own(dtype, lo, hi):
    """The scale TF's reference QuantizeV2 -> Dequantize uses (the per-channel form reaches it),
    ensure_minimum_range and all: a quantizer calibrated on [0, 0.00775] quantizes to [0, 0.01]."""
    x = np.random.default_rng(0).uniform(min(lo, 0) - 0.01, hi + 0.01, (41, 1)).astype(np.float32)
    q, out_lo, out_hi = tf.raw_ops.QuantizeV2(input=x, min_range=np.array([lo], np.float32),
                                              max_range=np.array([hi], np.float32), T=getattr(tf, dtype),
                                              mode="SCALED", round_mode="HALF_TO_EVEN", axis=1)
    tf_values = tf.raw_ops.Dequantize(input=q, min_range=out_lo, max_range=out_hi, mode="SCALED", axis=1).numpy()
    scales, _ = quant_params(quantizer(dtype, "SCALED"), np.float32(lo), np.float32(hi))
    codes = np.clip(np.rint(x / scales[0]), *((-128, 127) if dtype == "qint8" else (0, 255)))
    np.testing.assert_allclose(codes * scales[0], tf_values, rtol=1e-5, atol=1e-7)


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
