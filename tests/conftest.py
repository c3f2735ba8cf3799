"""Shared helpers: tiny graphs built in code, and stock TensorFlow as the numerical oracle."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import pytest
import tensorflow as tf

from itexlab import tfgraph
from itexlab.execute import CompiledModel
from itexlab.partition import make_plan
from itexlab.qdq import seven_bit_weights
from itexlab.translate import quant_params
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


def oracle_graph(graph, plan):
    """The QDQ graph stock TF runs as the oracle for a plan: the user's graph, with the 7-bit weights
    the plan chose for this CPU (the values oneDNN computes with; see qdq.seven_bit_weights)."""
    return seven_bit_weights(graph)[0] if plan.weight_bits == 7 else graph


def output_step(graph, reference, expected) -> float:
    """One quantization step of an output: the scale of the Dequantize that produces it (through
    Identities), else one step of an 8-bit quantization of the range the oracle's output spans."""
    node = graph.node(reference)
    while node.op == "Identity":
        node = graph.node(node.inputs[0])
    if node.op == "Dequantize":
        quantizer = graph.node(node.inputs[0])
        scales, _ = quant_params(quantizer, graph.constant(quantizer.inputs[1]), graph.constant(quantizer.inputs[2]))
        return max(scales)
    return max(float(np.abs(expected).max()), 1e-6) / 127


def assert_matches_tf(graph, x, config=None, steps=2):
    """itexlab's result agrees with the same QDQ graph on stock TF within `steps` quantization steps
    of each output (`output_step`), and has every output the oracle has.

    Two steps cover one step of rounding where TF and oneDNN round a tie or an accumulated sum
    differently, and TF's QDQ emulation quirk: per-tensor qint8 SCALED quantizes by 128/m but
    dequantizes by m/127 (a 0.8% gain, itexlab uses 127/m both ways), at most 2 steps of a uint8
    output. Chains of quantized layers may pass on a flipped step and ask for more.
    """
    plan, got = run_itexlab(graph, x, config)
    oracle = oracle_graph(graph, plan)
    expected = run_tf(oracle, x)
    assert len(got) == len(expected), f"{len(got)} outputs, the oracle has {len(expected)}"
    for reference, e, g in zip(oracle.outputs, expected, got):
        assert e.shape == g.shape and e.dtype == g.dtype
        step = output_step(oracle, reference, e)
        worst = float(np.abs(e - g).max())
        assert worst <= steps * step * (1 + 1e-5), f"output {reference}: max diff {worst:.4g} = {worst / step:.2f} steps of {step:.4g}"
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
