"""Shared helpers: tiny graphs built in code, and stock TensorFlow as the numerical oracle."""

import dataclasses
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# A CompiledModel's first run times itself against FP32 (seconds on the larger models): tests/test_speed.py
# turns it on where it is what is tested.
os.environ.setdefault("ITEXLAB_CHECK_SPEED", "0")
# Before TensorFlow or Keras, as a user's script should: TF decides at import whether its oneDNN
# kernels (INC's legacy INT8 graph needs them) are on, and without VNNI only itexlab asks for them.
# Tests that compare with TF's oneDNN kernels ask tfgraph.onednn_kernels_on(), so the suite also
# passes with TF_ENABLE_ONEDNN_OPTS=0 (test_tfgraph.py tests both states).
import itexlab  # noqa: F401, E402

import numpy as np  # noqa: E402
import pytest
import tensorflow as tf
from hypothesis import settings

from itexlab.frontend import tfgraph
from itexlab.ir.graph import DType, Node
from itexlab.lower.partition import make_plan
from itexlab.lower.qdq import seven_bit_weights
from itexlab.lower.qparams import quant_params
from itexlab.measure.probe import quantize_dequantize as qdq  # noqa: F401  (QDQ pairs, as INC writes them)
from itexlab.measure.probe import quantize_dequantize_weights as qdq_weights  # noqa: F401
from itexlab.runtime.executor import CompiledModel


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
    the plan chose for this CPU (the values oneDNN computes with; see qdq.seven_bit_weights), and
    its per-tensor int8 quantizers in their per-channel form (`exact_int8_ranges`) where oneDNN
    runs them; those the plan leaves to TF quantize as TF's kernel does there too."""
    on_tf = {f.name for f in plan.fallback if f.op == "QuantizeV2"}
    return exact_int8_ranges(seven_bit_weights(graph)[0] if plan.weight_bits == 7 else graph, on_tf)


def exact_int8_ranges(graph, keep=frozenset()):
    """Per-tensor qint8 SCALED QuantizeV2 -> Dequantize pairs as per-channel pairs with the same range
    in every channel: the same quantization by definition (scale m/127), which stock TF computes as
    defined. TF's oneDNN kernel for the per-tensor form quantizes by 128/m but dequantizes by m/127,
    a 0.8% gain that a subtraction (a residual add, say) can magnify into many output steps."""
    replaced, added = {}, []
    consumers = graph.consumers()
    for node in graph.nodes:
        shape = graph.tensor(node.inputs[0]).shape if node.op == "QuantizeV2" else None
        if (node.op != "QuantizeV2" or node.attrs.get("T") != "qint8" or node.attrs.get("mode") != "SCALED"
                or node.attrs.get("axis", -1) != -1 or not shape or shape[-1] is None
                or graph.is_constant(node.inputs[0]) or node.name in keep):
            continue
        axis, ranges = len(shape) - 1, []
        for end, r in zip(("min", "max"), node.inputs[1:3]):
            value = np.full(shape[-1], float(np.asarray(graph.constant(r)).reshape(-1)[0]), np.float32)
            added.append(Node(f"{node.name}/per_channel_{end}", "Const", [], {"dtype": DType("float32"), "value": value}))
            ranges.append(added[-1].name)
        replaced[node.name] = dataclasses.replace(node, inputs=[node.inputs[0], *ranges],
                                                  attrs={**node.attrs, "axis": axis})
        for user in consumers.get(node.name, []):
            if user.op == "Dequantize":
                replaced[user.name] = dataclasses.replace(user, attrs={**user.attrs, "axis": axis})
    if not replaced:
        return graph
    return tfgraph.reannotate(graph.replace([replaced.get(n.name, n) for n in graph.nodes] + added))


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

    Two steps cover a step of rounding where TF and oneDNN sum in another order and round a value
    near a boundary the other way; chains of quantized layers may pass a flipped step on and ask
    for more. The oracle has no quirk of its own to allow for (`exact_int8_ranges`).
    """
    plan, got = run_itexlab(graph, x, config)
    oracle = oracle_graph(graph, plan)
    assert_within_steps(oracle, run_tf(oracle, x), got, steps)
    return plan, got


def assert_within_steps(oracle, expected, got, steps):
    """Every output of itexlab within `steps` quantization steps of the oracle's (see above)."""
    assert len(got) == len(expected), f"{len(got)} outputs, the oracle has {len(expected)}"
    for reference, e, g in zip(oracle.outputs, expected, got):
        assert e.shape == g.shape and e.dtype == g.dtype
        step = output_step(oracle, reference, e)
        worst = float(np.abs(e - g).max())
        assert worst <= steps * step * (1 + 1e-5), f"output {reference}: max diff {worst:.4g} = {worst / step:.2f} steps of {step:.4g}"


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


# Property-based tests (tests/test_differential.py, tests/test_graphdef_fuzz.py): a fast,
# reproducible profile for `make test`; `--hypothesis-profile=long` for a long random search.
settings.register_profile("fast", max_examples=25, deadline=None, derandomize=True, print_blob=True)
settings.register_profile("long", max_examples=1000, deadline=None, print_blob=True)
settings.load_profile("fast")
