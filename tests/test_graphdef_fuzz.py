"""The doors from disk, fuzzed. The GraphDef importer: mutated node attributes, dangling inputs,
cycles, wrong dtypes and unknown ops give a ModelError (or a plan that runs), never another exception
or a dead process. Saved folders as a stranger could forge them (the plan's JSON, its arrays, the
.npz headers, the manifest, checksums recomputed): a ModelError or a model that runs, never anything
else, and never a crash of oneDNN.

The fast profile runs in `make test`; `pytest tests/test_graphdef_fuzz.py --hypothesis-profile=long`
runs 1000 mutations.
"""

import json
import pathlib

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


# ------------------------------------------------------------------------ saved folders, forged

def _saved_base():
    """A saved model's files as data: the plan's JSON, its arrays and the manifest."""
    import tempfile

    from test_plan import branchy_plan

    import itexlab

    with tempfile.TemporaryDirectory() as folder:
        path = itexlab.save(branchy_plan(), pathlib.Path(folder) / "model")
        with np.load(path / "weights.npz") as saved:
            arrays = {name: saved[name] for name in saved.files}
        return (json.loads((path / "plan.json").read_text()), arrays,
                json.loads((path / "itexlab.json").read_text()), (path / "fallback.pb").read_bytes())


SAVED = _saved_base()

JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-3, 2**33) | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=6) | st.sampled_from(["Convolution", "MatMul", "Wildcard", "per_channel", "NXC", "qint8",
                                             "quint8", "float32", "int64", "Identity", "ReadFile", "../plan.json",
                                             "Conv2D", "QuantizeV2", "Placeholder"]),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=5), children, max_size=3),
    max_leaves=6)


def _paths(data, prefix=()):
    """Every place in a JSON document: (path, value)."""
    yield prefix, data
    items = data.items() if isinstance(data, dict) else enumerate(data) if isinstance(data, list) else ()
    for key, value in items:
        yield from _paths(value, prefix + (key,))


def _near(draw, value):
    """A value like the one it replaces (an off-by-one, a sign, a shorter list) or anything else."""
    if isinstance(value, bool):
        return not value
    if isinstance(value, int):
        return draw(st.sampled_from([value + 1, value - 1, 0, -value, 2 * value, 2**31]))
    if isinstance(value, float):
        return draw(st.sampled_from([-value, 0.0, value * 1e30, float("nan"), float("inf")]))
    if isinstance(value, list) and value:
        return draw(st.sampled_from([value[:-1], value + value[-1:], value[::-1], []]))
    return draw(JSON_VALUES)


class Forged(tuple):
    """A forged folder's (plan, arrays, manifest, fallback.pb, npz edit), shown as its changes."""

    changes: list

    def __repr__(self):
        return "Forged(" + "; ".join(self.changes) + ")"


@st.composite
def forged_folders(draw):
    """A saved folder's plan, arrays and manifest with one to three changes an author could make."""
    plan, arrays, manifest, fallback = json.loads(json.dumps(SAVED[0])), dict(SAVED[1]), json.loads(json.dumps(
        SAVED[2])), SAVED[3]
    npz_edit, changes = None, []
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(st.sampled_from(["plan", "plan", "plan", "plan", "array", "npz", "manifest"]))
        if kind == "plan":
            places = [p for p in _paths(plan) if p[0]]
            path, value = places[draw(st.integers(0, len(places) - 1))]
            parent = plan
            for key in path[:-1]:
                parent = parent[key]
            action = draw(st.sampled_from(["near", "near", "any", "delete"]))
            if action == "delete":
                del parent[path[-1]]
                changes.append(f"plan{list(path)} deleted")
            else:
                parent[path[-1]] = _near(draw, value) if action == "near" else draw(JSON_VALUES)
                changes.append(f"plan{list(path)} = {parent[path[-1]]!r:.80}")
        elif kind == "array":
            name = draw(st.sampled_from(sorted(arrays)))
            value = arrays[name]
            arrays[name] = draw(st.sampled_from([value.reshape(-1), value.reshape(-1)[:1], value.astype(np.float64),
                                                 value.astype(np.int8), np.zeros((0,), value.dtype), value.T]))
            changes.append(f"array {name} as {arrays[name].dtype}{arrays[name].shape}")
        elif kind == "npz":
            npz_edit = (draw(st.integers(0, 200)), draw(st.integers(0, 255)))
            changes.append(f"npz byte {npz_edit}")
        else:
            key = draw(st.sampled_from(["format", "version", "files", "add"]))
            if key == "add" and isinstance(manifest["files"], dict):
                manifest["files"][draw(st.sampled_from(["../x", "/etc/hostname", "qdq.pb", "a/b"]))] = "0" * 64
            elif key != "add":
                manifest[key] = draw(JSON_VALUES)
            changes.append(f"manifest {key}")
    forged = Forged((plan, arrays, manifest, fallback, npz_edit))
    forged.changes = changes
    return forged


def _write_forged(folder: pathlib.Path, forged) -> None:
    import hashlib
    import io

    plan, arrays, manifest, fallback, npz_edit = forged
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    weights = bytearray(buffer.getvalue())
    if npz_edit:  # a byte of the first member's header (a forged shape or dtype) or of its data
        weights[30 + npz_edit[0]] = npz_edit[1]
    files = {"plan.json": json.dumps(plan).encode(), "weights.npz": bytes(weights), "fallback.pb": fallback}
    folder.mkdir()
    for name, content in files.items():
        (folder / name).write_bytes(content)
    if isinstance(manifest.get("files"), dict):  # the author signs what they forged
        manifest["files"].update({name: hashlib.sha256(content).hexdigest() for name, content in files.items()
                                  if name in manifest["files"]})
    (folder / "itexlab.json").write_text(json.dumps(manifest))


@given(forged_folders())
def test_a_forged_saved_folder_gives_a_model_error_or_a_model_that_runs(forged):
    import tempfile

    import itexlab

    with tempfile.TemporaryDirectory() as tmp:
        folder = pathlib.Path(tmp) / "model"
        _write_forged(folder, forged)
        try:
            model = itexlab.load(folder)
        except ItexlabError as e:
            event(f"refused: {type(e).__name__}")
            return
    try:
        outputs = model(X)
        event("loaded and ran")
    except ItexlabError as e:
        event(f"refused at run time: {type(e).__name__}")
        return
    assert all(isinstance(o, np.ndarray) for o in outputs)


def test_the_unforged_saved_folder_runs(tmp_path):
    import itexlab

    _write_forged(tmp_path / "model", (*SAVED, None))
    assert itexlab.load(tmp_path / "model")(X)[0].shape == (2, 1600)
