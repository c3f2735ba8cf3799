"""Models with several inputs (an image and features, token ids and a mask): calibrated, planned,
run, saved and compared with their inputs in any form the model takes, and clear errors naming
the input when they do not fit."""

import json

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import oracle_graph, run_tf

import itexlab
from itexlab.cli import main
from itexlab.config import QuantConfig
from itexlab.errors import CalibrationDataError, InputError
from itexlab.measure import timing
from itexlab.measure.layers import compare_layers
from itexlab.quant.quantization import calibration_batches

RNG = np.random.default_rng(0)


def image_and_features():
    """A functional model taking a dict: an image through a convolution, features through a Dense."""
    keras.utils.set_random_seed(0)
    image, features = keras.Input((8, 8, 3), name="image"), keras.Input((5,), name="features")
    x = keras.layers.Flatten()(keras.layers.Conv2D(4, 3, activation="relu")(image))
    x = keras.layers.Concatenate()([x, keras.layers.Dense(4, activation="relu")(features)])
    return keras.Model({"image": image, "features": features}, keras.layers.Dense(3)(x))


DATA = {"image": RNG.random((16, 8, 8, 3), np.float32), "features": RNG.random((16, 5), np.float32)}


@pytest.fixture(scope="module")
def quantized():
    return itexlab.quantize(image_and_features(), DATA, QuantConfig(calibration_batches=2), progress=False)


def test_several_inputs_quantize_plan_and_run_as_tf_computes_them(quantized):
    graph = quantized.qdq
    assert graph.inputs == ["features", "image"]  # tf.nest's order: a dict's keys sorted
    assert graph.input_structure == {"dict": {"features": "features", "image": "image"}}
    plan = itexlab.make_plan(graph)
    model = itexlab.CompiledModel(plan)
    got = model(DATA)[0]
    oracle = oracle_graph(graph, plan)
    expected = run_tf(oracle, DATA["features"], DATA["image"])[0]
    assert np.abs(got - expected).max() <= 3 * np.abs(expected).max() / 127
    keras_model = image_and_features()
    keras_model.set_weights(image_and_features().get_weights())
    assert np.abs(got - keras_model.predict(DATA, verbose=0)).max() < 0.05 * np.abs(expected).max() + 0.02
    # the same inputs in every form the model takes them
    np.testing.assert_array_equal(model(DATA["features"], DATA["image"])[0], got)   # one per input, in order
    np.testing.assert_array_equal(model([DATA["features"], DATA["image"]])[0], got)  # a flat list
    assert sum(p.quantized for p in plan.partitions) >= 3


def test_calibration_takes_the_inputs_in_every_form():
    graph = itexlab.quantize(image_and_features(), DATA, QuantConfig(calibration_batches=1), progress=False).fp32
    as_dict = calibration_batches(DATA, graph, 2)
    as_list = calibration_batches([DATA["features"], DATA["image"]], graph, 2)
    dataset = tf.data.Dataset.from_tensor_slices((DATA, np.zeros(16))).batch(8)  # (inputs, labels) pairs
    from_dataset = calibration_batches(dataset, graph, 2)
    batches_of_dicts = calibration_batches([{k: v[:8] for k, v in DATA.items()}, {k: v[8:] for k, v in DATA.items()}],
                                           graph, 2)
    for batches in (as_list, from_dataset, batches_of_dicts):
        assert len(batches) == 2
        for mine, theirs in zip(batches, as_dict):
            for a, b in zip(mine, theirs):
                np.testing.assert_array_equal(a, b)
    assert [a.shape for a in as_dict[0]] == [(8, 5), (8, 8, 8, 3)]


@pytest.mark.parametrize("data, message", [
    ({"image": DATA["image"]}, "a dict with keys 'image'; the model takes a dict with keys 'features', 'image' .*no 'features'"),
    ({"image": DATA["image"], "features": DATA["features"], "extra": DATA["features"]}, "unknown 'extra'"),
    ({"image": DATA["image"], "features": DATA["features"][:4]}, "16 samples of 'image', 4 samples of 'features'"
                                                                  "|4 samples of 'features', 16 samples of 'image'"),
    ({"image": DATA["image"], "features": DATA["features"].astype(np.int32)},
     "calibration data for input 'features' has dtype int32; the model takes float32"),
    ({"image": DATA["image"][..., :2], "features": DATA["features"]}, "for input 'image' has shape \\(16, 8, 8, 2\\)"),
])
def test_calibration_data_that_does_not_fit_names_the_input(data, message):
    with pytest.raises(CalibrationDataError, match=message):
        itexlab.quantize(image_and_features(), data, QuantConfig(calibration_batches=1), progress=False)


def test_run_time_inputs_that_do_not_fit_name_the_input(quantized):
    model = itexlab.CompiledModel(itexlab.make_plan(quantized.qdq))
    with pytest.raises(InputError, match="takes 2 input\\(s\\) \\('features', 'image'\\) as a dict with keys 'features', "
                                         "'image', got a dict with keys 'image'"):
        model({"image": DATA["image"]})
    with pytest.raises(InputError, match="different batch sizes \\('features': 3, 'image': 16\\)"):
        model({"image": DATA["image"], "features": DATA["features"][:3]})
    with pytest.raises(InputError, match="input 0 \\('features'\\) has shape"):
        model({"image": DATA["image"], "features": DATA["image"]})


def token_model():
    """Token ids and a mask, both int32: an embedding (a gather, left to TF) and dense layers."""
    keras.utils.set_random_seed(0)
    ids, mask = keras.Input((12,), dtype="int32", name="input_ids"), keras.Input((12,), dtype="int32",
                                                                                   name="attention_mask")
    x = keras.layers.Embedding(50, 16)(ids) * keras.ops.expand_dims(keras.ops.cast(mask, "float32"), -1)
    x = keras.layers.Dense(16, activation="relu")(keras.layers.Flatten()(x))
    return keras.Model([ids, mask], keras.layers.Dense(3)(x))


TOKENS = {"input_ids": RNG.integers(0, 50, (16, 12)),  # int64, as numpy makes them: taken where values fit
          "attention_mask": (RNG.random((16, 12)) > 0.2).astype(np.int64)}


def test_integer_inputs_are_first_class(tmp_path):
    quantized = itexlab.quantize(token_model(), TOKENS, QuantConfig(calibration_batches=2), progress=False)
    plan = itexlab.make_plan(quantized.qdq)
    gather = [f for f in plan.fallback if f.op == "GatherV2"]
    assert gather and "embedding lookup" in gather[0].reason
    model = itexlab.CompiledModel(plan)
    got = model(TOKENS)[0]
    expected = run_tf(oracle_graph(quantized.qdq, plan), *[t.astype(np.int32) for t in TOKENS.values()])[0]
    assert np.abs(got - expected).max() <= 3 * np.abs(expected).max() / 127
    with pytest.raises(InputError, match="input 0 \\('input_ids'\\) has dtype float32; the model takes int32"):
        model({"input_ids": TOKENS["input_ids"].astype(np.float32), "attention_mask": TOKENS["attention_mask"]})
    with pytest.raises(InputError, match="'input_ids'\\) has dtype int64; the model takes int32"):
        model({"input_ids": TOKENS["input_ids"] + 2**40, "attention_mask": TOKENS["attention_mask"]})
    # saved and loaded with its structure; the command line takes an .npz with one array per input name
    itexlab.save(model, tmp_path / "saved", qdq=quantized.qdq)
    loaded = itexlab.load(tmp_path / "saved")
    assert loaded.plan.source.input_structure == {"list": ["input_ids", "attention_mask"]}
    np.testing.assert_array_equal(loaded(TOKENS)[0], got)
    np.savez(tmp_path / "tokens.npz", **TOKENS)
    main(["run", str(tmp_path / "saved"), "--input", str(tmp_path / "tokens.npz"), "--output", str(tmp_path / "y.npy")])
    np.testing.assert_array_equal(np.load(tmp_path / "y.npy"), got)
    main(["bench", str(tmp_path / "saved"), "--input", str(tmp_path / "tokens.npz"), "--batch", "1", "2",
          "--repeats", "2", "--json", str(tmp_path / "bench.json")])
    rows = json.loads((tmp_path / "bench.json").read_text())["results"]
    assert {(r["system"], r["batch"]) for r in rows} == {(s, b) for s in ("itexlab-int8", "tf-qdq", "tf-fp32")
                                                        for b in (1, 2)}


def test_per_layer_error_and_timing_take_several_inputs(quantized):
    layers = compare_layers(quantized, DATA, samples=4)
    assert len(layers) >= 3 and (layers.sqnr_db > 10).all()
    batch = timing.batch_of(DATA, 3)
    assert [a.shape[0] for a in batch.values()] == [3, 3]
    model = itexlab.CompiledModel(itexlab.make_plan(quantized.qdq))
    results = timing.measure({"int8": model}, "two inputs", batch, repeats=2, warmup=1, progress=None)
    assert results[0].batch == 3
