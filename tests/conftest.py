"""Shared helpers: tiny graphs built in code, and stock TensorFlow as the numerical oracle."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import pytest
import tensorflow as tf

from itexlab import tfgraph
from itexlab.execute import CompiledModel
from itexlab.partition import make_plan
from itexlab.tfgraph import quantize_dequantize as qdq  # noqa: F401  (QDQ pairs, as INC writes them)
from itexlab.tfgraph import quantize_dequantize_weights as qdq_weights  # noqa: F401


def graph_of(fn, shape, dtype=tf.float32):
    """Freeze a Python function of one tensor into a neutral graph."""
    return tfgraph.from_concrete_function(tf.function(fn).get_concrete_function(tf.TensorSpec(shape, dtype)))


def run_tf(graph, *inputs):
    return tfgraph.GraphFunction(graph, graph.inputs, graph.outputs)(*inputs)


def run_itexlab(graph, x, config=None):
    plan = make_plan(graph, config)
    return plan, CompiledModel(plan)(x)


def assert_matches_tf(graph, x, config=None, rel=0.02):
    """itexlab's result agrees with the same graph on stock TF to within `rel` of the output range.

    The tolerance covers TF's QDQ emulation quirk (qint8 SCALED quantizes by 128/m but dequantizes
    by m/127, a 0.8% gain) and one quantization step of rounding differences.
    """
    expected = run_tf(graph, x)
    plan, got = run_itexlab(graph, x, config)
    for e, g in zip(expected, got):
        assert e.shape == g.shape
        scale = max(float(np.abs(e).max()), 1e-6)
        assert float(np.abs(e - g).max()) <= rel * scale, f"max diff {np.abs(e - g).max()} vs range {scale}"
    return plan, got


def partition_with(plan, *ops):
    """The partition containing TF ops of all these types, or None."""
    for p in plan.partitions:
        kinds = {n.op for n in p.nodes}
        if set(ops) <= kinds:
            return p
    return None


@pytest.fixture
def rng():
    return np.random.default_rng(0)
