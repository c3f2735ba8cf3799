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
