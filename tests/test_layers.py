"""Per-layer INT8 error, its drawing, and keeping ops in FP32 with the history of attempts."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import graph_of, qdq
from test_partition_execute import W2, X, conv_block, quantized_input

import itexlab
from itexlab.lower.partition import make_plan
from itexlab.quant import inc
from itexlab.measure.layers import activation_quantizers
from itexlab.report import plots, tables, views, widgets


def chain(first_max=4.0, second_max=4.0, third_max=4.0):
    def fn(x):
        a = conv_block(quantized_input(x), out_max=first_max)
        b = conv_block(a, w=W2, out_max=second_max)
        return conv_block(b, w=W2, out_max=third_max)
    return make_plan(graph_of(fn, (None, 10, 10, 4)))


def test_every_quantized_tensor_gets_a_row_and_a_sane_model_is_accurate():
    plan = chain()
    frame = itexlab.compare_layers(plan, X)
    assert sorted(frame.quantizer) == sorted(activation_quantizers(plan.source))
    assert (frame.cosine > 0.99).all() and (frame.own_sqnr_db > 20).all()
    assert (frame.max_diff_steps < 3).all()  # FP32 and INT8 set side by side: a few steps at most


def test_a_broken_scale_makes_its_layer_the_worst_and_the_drawing_marks_it():
    plan = chain(second_max=0.4)  # clips most of the second block's output
    frame = itexlab.compare_layers(plan, X)
    worst = frame.iloc[0]
    broken = [q for q in activation_quantizers(plan.source)
              if np.isclose(plan.source.constant(plan.source.node(q).inputs[2]), 0.4)]
    assert worst.quantizer in broken and worst.own_sqnr_db < frame.own_sqnr_db.iloc[1] - 10
    errors = tables.layer_errors(frame)
    dot = views.to_dot(plan, errors=errors, worst=1)
    assert "error enters here" in dot and dot.count("error enters here") == 1 and " dB" in dot
    details = tables.partition_details(plan, worst.partition, layers=frame)
    assert details["layer_error"][0]["tensor"] == worst.tensor
    assert "INT8 error" in views.details_html(details)


@pytest.fixture(scope="module")
def session():
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((12, 12, 3)), keras.layers.Conv2D(8, 3, activation="relu"),
                              keras.layers.Conv2D(8, 3, activation="relu"), keras.layers.Flatten(),
                              keras.layers.Dense(4)])
    x = np.random.default_rng(0).random((32, 12, 12, 3), np.float32)
    labels = model.predict(x, verbose=0).argmax(1)
    quantized = itexlab.quantize(model, x[:16], progress=False)
    evaluate = lambda run: float(np.mean(np.asarray(run(x)[0]).argmax(1) == labels))  # noqa: E731
    return itexlab.FallbackSession(quantized, evaluate, x[:4], repeats=3)


def test_keeping_a_partition_in_fp32_replans_without_calibrating_and_is_measured(session, monkeypatch):
    first = session.attempts[0]
    assert first.keep_fp32 == () and first.fp32_accuracy == 1.0 and first.int8_ops >= 3
    conv = next(p.id for p in session.plan.partitions if p.quantized and any(n.op == "Conv2D" for n in p.nodes))
    def no_calibration(*args, **kwargs):
        raise AssertionError("keeping an op in FP32 must not calibrate again")

    monkeypatch.setattr(inc, "quantize", no_calibration)
    kept = session.attempt(session.partition_ops(conv))
    assert kept.int8_ops < first.int8_ops and kept.latency_ms > 0 and 0 <= kept.accuracy <= 1
    history = session.history()
    assert list(history.keep_fp32)[0] == "(all INT8)" and len(history) == 2
    plots.fallback_figure(history)
    with pytest.raises(ValueError, match="no node named"):
        session.attempt(["nowhere"])


def test_the_fallback_widget_keeps_the_selection_in_fp32(session):
    box = widgets.fallback_widget(session)
    viewer, (keep, status), history = box.children[0], box.children[1].children, box.children[2]
    pick = viewer.children[2]
    pick.value = next(v for _, v in pick.options if v[0] == "partition" and session.partition_ops(v[1]))
    before = len(session.attempts)
    keep.click()
    assert len(session.attempts) == before + 1 and "over FP32" in status.value
    assert history.value.count("<tr") == len(session.attempts) + 1
