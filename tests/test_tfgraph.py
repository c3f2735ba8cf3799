import keras
import numpy as np
import pytest

from itexlab.frontend import tfgraph
from itexlab.frontend.tfgraph import ModelError


def small_model():
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(4, 3, activation="relu")(inputs)
    outputs = keras.layers.Dense(2)(keras.layers.Flatten()(x))
    return keras.Model(inputs, outputs)


def check(graph, model):
    x = np.random.default_rng(0).random((2, 8, 8, 3), np.float32)
    got = tfgraph.GraphFunction(graph, graph.inputs, graph.outputs)(x)[0]
    np.testing.assert_allclose(got, model(x).numpy(), rtol=1e-5, atol=1e-6)


def test_keras_model_object():
    model = small_model()
    graph = tfgraph.load(model)
    assert graph.tensor(graph.inputs[0]).shape == (None, 8, 8, 3)
    check(graph, model)


def test_keras_file_saved_model_and_pb(tmp_path):
    model = small_model()
    model.save(tmp_path / "m.keras")
    check(tfgraph.load(tmp_path / "m.keras"), model)

    model.export(tmp_path / "saved")
    check(tfgraph.load(tmp_path / "saved"), model)

    graph = tfgraph.load(model)
    pb = tmp_path / "m.pb"
    pb.write_bytes(tfgraph.graph_def_from_graph(graph).SerializeToString())
    check(tfgraph.load(str(pb)), model)
    check(tfgraph.load(tfgraph.graph_def_from_graph(graph)), model)


def test_bad_models_get_clear_errors(tmp_path):
    with pytest.raises(ModelError, match="does not exist"):
        tfgraph.load(tmp_path / "nope.pb")
    (tmp_path / "junk.pb").write_bytes(b"\x00\x01 this is no graph")
    with pytest.raises(ModelError, match="not a frozen GraphDef|malformed"):
        tfgraph.load(tmp_path / "junk.pb")
    (tmp_path / "model.txt").write_text("x")
    with pytest.raises(ModelError, match="expected a .keras file"):
        tfgraph.load(tmp_path / "model.txt")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelError, match="SavedModel"):
        tfgraph.load(tmp_path / "empty")
    with pytest.raises(ModelError, match="cannot read a model"):
        tfgraph.load(42)


def test_graph_def_round_trip_keeps_attributes():
    graph = tfgraph.load(small_model())
    again = tfgraph.graph_from_graph_def(tfgraph.graph_def_from_graph(graph), graph.inputs, graph.outputs)
    assert [(n.name, n.op) for n in again.nodes] == [(n.name, n.op) for n in graph.nodes]
    conv = next(n for n in again.nodes if n.op == "Conv2D")
    assert conv.attrs["padding"] == "VALID" and conv.attrs["strides"] == [1, 1, 1, 1]


def tensorflow_state(code_before_itexlab: str, env: dict) -> dict:
    """In a fresh process: `code_before_itexlab`, then itexlab's TF boundary; whether TF's oneDNN
    kernels are on, the warnings itexlab gave, and why INC's legacy graph could not run (if not)."""
    import json
    import os
    import subprocess
    import sys

    code = (code_before_itexlab + "\nimport json, warnings\nwarnings.simplefilter('always')\n"
            "with warnings.catch_warnings(record=True) as caught:\n"
            "    from itexlab.frontend import tfgraph\n"
            "try:\n"
            "    tfgraph.legacy_int8_function(None, None)\n"
            "    reason = None\n"
            "except tfgraph.KernelsMissing as e:\n"
            "    reason = str(e)\n"
            "except Exception:\n"
            "    reason = None\n"
            "print(json.dumps({'on': tfgraph.onednn_kernels_on(), 'reason': reason,\n"
            "                  'warnings': [type(w.message).__name__ + ': ' + str(w.message) for w in caught]}))")
    clean = {k: v for k, v in os.environ.items() if k != "TF_ENABLE_ONEDNN_OPTS"}
    done = subprocess.run([sys.executable, "-c", code], env={**clean, **env}, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_itexlab_imported_first_turns_tensorflows_onednn_kernels_on_on_every_cpu():
    state = tensorflow_state("import itexlab\nimport tensorflow", {})
    assert state["on"] and not state["warnings"]


def test_tensorflow_imported_first_without_its_onednn_kernels_is_said_once_with_the_remedy():
    """A CPU without VNNI, BF16 or AMX where the notebook imported TF first: TF read the variable
    before itexlab could set it (TF reads it once, at import). This CPU may have VNNI, so TF is
    started with the variable at 0, which TF reads as such a CPU's default, and then it is unset."""
    state = tensorflow_state("import os\nos.environ['TF_ENABLE_ONEDNN_OPTS'] = '0'\nimport tensorflow\n"
                             "del os.environ['TF_ENABLE_ONEDNN_OPTS']\nimport itexlab", {})
    assert not state["on"] and "import itexlab first" in state["reason"]
    [warning] = state["warnings"]
    assert warning.startswith("TensorFlowSetupWarning: TensorFlow (or Keras) was imported before itexlab")
    assert "Import itexlab first" in warning


def test_a_users_choice_to_turn_the_kernels_off_is_kept_and_not_warned_about():
    state = tensorflow_state("import itexlab\nimport tensorflow", {"TF_ENABLE_ONEDNN_OPTS": "0"})
    assert not state["on"] and state["reason"] and not state["warnings"]


def test_a_graph_run_op_by_op_computes_what_its_function_computes():
    """Several outputs (Split), a list input (ConcatV2), shape attributes (Reshape's output), int8
    bytes bitcast to qint8 and back, constants: the eager path gives the function's numbers."""
    import tensorflow as tf
    from conftest import graph_of

    def segment(x):
        a, b = tf.split(tf.nn.relu(x), 2, axis=-1)
        q = tf.bitcast(tf.cast(tf.clip_by_value(a * 10, -127, 127), tf.int8), tf.qint8)
        d = tf.raw_ops.Dequantize(input=q, min_range=-12.7, max_range=12.7, mode="SCALED")
        return tf.reshape(tf.concat([d, b * 2.0], 0), [-1, 4])

    graph = graph_of(segment, (2, 4))
    x = np.random.default_rng(0).normal(size=(2, 4)).astype(np.float32)
    expected = tfgraph.GraphFunction(graph, graph.inputs, graph.outputs)(x)
    got = tfgraph.OpByOp(graph, graph.inputs, graph.outputs)(x)
    assert [g.shape for g in got] == [e.shape for e in expected] == [(2, 4)]
    np.testing.assert_array_equal(got[0], expected[0])


def test_attributes_eager_execution_does_not_take_keep_a_graph_a_function():
    from tensorflow.core.framework import attr_value_pb2

    from itexlab.ir.graph import Node

    value = attr_value_pb2.AttrValue(func=attr_value_pb2.NameAttrList(name="branch"))
    with pytest.raises(tfgraph.NotEagerRunnable, match="If cond: attribute then_branch"):
        tfgraph._eager_attr(Node("cond", "If", [], {}), "then_branch", value)


def test_a_depthwise_convolution_with_padding_folded_in_runs_on_tf_as_pad_and_valid():
    """INC folds ZeroPadding2D into a depthwise convolution (padding EXPLICIT); TF 2.21's remapper
    ends the process fusing that with a BiasAdd (MobileNetV2's FP32 stand-in did so on a first
    run's speed check). GraphFunction runs it as Pad + VALID, the same numbers, in this process."""
    import tensorflow as tf
    from conftest import graph_of

    rng = np.random.default_rng(0)
    w, b = rng.normal(size=(3, 3, 4, 1)).astype(np.float32), rng.normal(size=4).astype(np.float32)
    x = rng.normal(size=(2, 8, 8, 4)).astype(np.float32)

    def folded(t):
        y = tf.raw_ops.DepthwiseConv2dNative(input=tf.nn.relu6(t), filter=w, strides=[1, 2, 2, 1], padding="EXPLICIT",
                                             explicit_paddings=[0, 0, 0, 1, 0, 1, 0, 0])
        return tf.nn.relu6(tf.nn.bias_add(y, b))

    graph = graph_of(folded, (None, 8, 8, 4))
    with pytest.raises(tfgraph.TensorFlowAborted, match="Invalid index from the dimension"):
        tfgraph.run_isolated(graph, [x])  # the graph as it is: if TF stops aborting, _padded_depthwise can go
    padded = tf.pad(tf.nn.relu6(x), [[0, 0], [0, 1], [0, 1], [0, 0]])
    expected = tf.nn.relu6(tf.nn.bias_add(tf.nn.depthwise_conv2d(padded, w, [1, 2, 2, 1], "VALID"), b)).numpy()
    got = tfgraph.GraphFunction(graph, graph.inputs, graph.outputs)(x)[0]
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)
