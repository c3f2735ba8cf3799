"""The GraphDef importer, fuzzed: mutated node attributes, dangling inputs, cycles, wrong dtypes and
unknown ops give a ModelError (or a plan that runs), never another exception or a dead process.

The fast profile runs in `make test`; `pytest tests/test_graphdef_fuzz.py --hypothesis-profile=long`
runs 1000 mutations.
"""

import numpy as np
import pytest
import tensorflow as tf
from conftest import graph_of
from hypothesis import event, given
from hypothesis import strategies as st
from tensorflow.core.framework import attr_value_pb2, graph_pb2
from test_partition_execute import W2, X, conv_block, quantized_input

from itexlab.errors import ItexlabError
from itexlab.frontend import tfgraph
from itexlab.lower.partition import make_plan
from itexlab.runtime.executor import CompiledModel


def base_graph_def() -> graph_pb2.GraphDef:
    def fn(x):
        a = conv_block(quantized_input(x))
        pooled = tf.nn.max_pool2d(a, 2, 2, "VALID")
        return conv_block(pooled, w=W2)

    return tfgraph.graph_def_from_graph(graph_of(fn, (None, 10, 10, 4)))


BASE = base_graph_def()

ATTR_VALUES = st.one_of(
    st.builds(lambda i: attr_value_pb2.AttrValue(i=i), st.integers(-2**40, 2**40)),
    st.builds(lambda f: attr_value_pb2.AttrValue(f=f), st.floats(allow_nan=True, allow_infinity=True)),
    st.builds(lambda s: attr_value_pb2.AttrValue(s=s.encode()), st.sampled_from(["", "SAME", "NCHW", "FOO", "x" * 50])),
    st.builds(lambda t: attr_value_pb2.AttrValue(type=t), st.sampled_from([0, 1, 3, 9, 11, 12, 13, 99, 12345])),
    st.builds(lambda v: attr_value_pb2.AttrValue(list=attr_value_pb2.AttrValue.ListValue(i=v)),
              st.lists(st.integers(-3, 5), max_size=6)),
    st.builds(lambda b: attr_value_pb2.AttrValue(b=b), st.booleans()),
)


@st.composite
def mutations(draw):
    """The base graph with one to three random mutations."""
    graph_def = graph_pb2.GraphDef()
    graph_def.CopyFrom(BASE)
    for _ in range(draw(st.integers(1, 3))):
        nodes = graph_def.node
        node = nodes[draw(st.integers(0, len(nodes) - 1))]
        kind = draw(st.sampled_from(["attr", "drop_attr", "dangling", "cycle", "dtype", "op", "duplicate"]))
        keys = sorted(node.attr)
        if kind == "attr" and keys:
            node.attr[draw(st.sampled_from(keys))].CopyFrom(draw(ATTR_VALUES))
        elif kind == "drop_attr" and keys:
            del node.attr[draw(st.sampled_from(keys))]
        elif kind == "dangling":
            target = draw(st.sampled_from(["missing_node", f"{node.name}:7", "^missing_control", ""]))
            if node.input:
                node.input[draw(st.integers(0, len(node.input) - 1))] = target
            else:
                node.input.append(target)
        elif kind == "cycle" and node.input:
            consumers = [n for n in nodes if any(i.split(":")[0] == node.name for i in n.input)]
            if consumers:
                node.input[0] = draw(st.sampled_from(consumers)).name
        elif kind == "dtype" and any(k in node.attr for k in ("T", "dtype")):
            key = "T" if "T" in node.attr else "dtype"
            node.attr[key].type = draw(st.sampled_from([1, 2, 3, 4, 6, 9, 10, 11, 12, 14, 200]))
        elif kind == "op":
            node.op = draw(st.sampled_from(["Frobnicate", "Conv2D", "Relu", "Identity", "Const", "NoOp"]))
        elif kind == "duplicate":
            nodes.add().CopyFrom(node)
    return graph_def


@given(mutations())
def test_a_mutated_graph_def_gives_a_model_error_or_a_plan_that_runs(graph_def):
    try:
        plan = make_plan(tfgraph.load(graph_def))
        model = CompiledModel(plan)
    except ItexlabError as e:
        event(f"refused: {type(e).__name__}")
        return
    try:
        model(X)
        event("planned and ran")
    except ItexlabError as e:
        event(f"refused at run time: {type(e).__name__}")
    except tf.errors.OpError:
        event("TF's own kernel failed")  # a graph TF imports but cannot run: its own error


def test_the_unmutated_base_graph_runs():
    out = CompiledModel(make_plan(tfgraph.load(BASE)))(X)[0]
    assert out.shape == (2, 5, 5, 8) and np.isfinite(out).all()


def _first_op(graph_def: graph_pb2.GraphDef):
    return next(n for n in graph_def.node if n.input)


@pytest.mark.parametrize("mutate, message", [
    (lambda g: _first_op(g).input.__setitem__(0, "missing_node"), "missing_node"),
    (lambda g: g.node.add().CopyFrom(_first_op(g)), "is not unique"),
])
def test_known_mutations_name_the_problem(mutate, message):
    graph_def = graph_pb2.GraphDef()
    graph_def.CopyFrom(BASE)
    mutate(graph_def)
    with pytest.raises(ItexlabError, match=message):
        make_plan(tfgraph.load(graph_def))
