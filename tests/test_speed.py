"""The first run's check of INT8 against FP32 (runtime/speed.py) and the words for it (ir/speed.py).
No wall-clock thresholds: verdicts are checked on times given to them, the measurement on what it
measured (every step once, the FP32 graph computing what TF computes without quantizers)."""

import logging
import warnings

import numpy as np
import pytest
import tensorflow as tf
from conftest import graph_of, qdq, qdq_weights

from itexlab.errors import ConfigError
from itexlab.ir.speed import SpeedCheck, StepTime
from itexlab.lower.partition import make_plan
from itexlab.measure import timing
from itexlab.report import views
from itexlab.runtime import speed
from itexlab.runtime.executor import CompiledModel
from itexlab.runtime.speed import SlowerThanFP32Warning

RNG = np.random.default_rng(0)
W = [RNG.normal(0, 0.3, (3, 3, c, 8)).astype(np.float32) for c in (3, 8)]
X = RNG.uniform(-1, 1, (2, 8, 8, 3)).astype(np.float32)


def net(x, quantized: bool):
    """Two convolutions, each followed by a Cumsum (no oneDNN translation): INT8 partitions with
    TF segments between them, the plan shape that can lose to FP32."""
    for w in W:
        if quantized:
            x = tf.nn.conv2d(qdq(x, -4.0, 4.0, tf.qint8), qdq_weights(w), 1, "SAME")
        else:
            x = tf.nn.conv2d(x, w, 1, "SAME")
        x = tf.math.cumsum(tf.nn.relu(x), axis=-1)
    return x


@pytest.fixture(autouse=True)
def checked_by_default(monkeypatch):
    monkeypatch.setenv("ITEXLAB_CHECK_SPEED", "1")  # conftest turns the check off for other tests


@pytest.fixture(scope="module")
def graph():
    return graph_of(lambda x: net(x, quantized=True), (None, 8, 8, 3))


def compiled(graph, **options):
    return CompiledModel(make_plan(graph), **options)


def given_times(model, int8_ms, fp32_ms):
    """A check with these medians and the model's real step profile: a verdict independent of the clock."""
    model(X)
    return speed.verdict(model, len(X), int8_ms, fp32_ms, 3, [model.timed_run(X)[1]])


def test_the_fp32_graph_is_the_plan_without_its_quantizers(graph):
    model = compiled(graph, check_speed=False)
    np.testing.assert_allclose(speed.fp32_function(model)(X)[0], net(tf.constant(X), quantized=False).numpy(),
                               rtol=1e-5, atol=1e-5)


def test_the_check_times_every_step_and_names_the_ops_left_on_tf(graph):
    model = compiled(graph, check_speed=False)
    result = speed.check(model, [np.concatenate([X] * 10)], turns=2)
    assert result.batch == speed.MAX_BATCH and result.runs == 2 and result.int8_ms > 0 and result.fp32_ms > 0
    assert len(result.steps) == len(model.steps)
    assert [s.ms for s in result.steps] == sorted((s.ms for s in result.steps), reverse=True)
    tf_steps = [s for s in result.steps if s.kind == "tf"]
    assert sorted(op for s in tf_steps for op in s.ops) == ["Cumsum", "Cumsum"]
    assert all("Cumsum has no oneDNN Graph translation" in s.why for s in tf_steps if "Cumsum" in s.ops)
    assert result.count("int8") == sum(p.quantized for p in model.plan.partitions) >= 2 and "oneDNN ISA" in result.where


def test_a_slower_first_run_warns_once_naming_the_ops_and_the_plan_says_so(graph, monkeypatch):
    model = compiled(graph)
    slower = given_times(compiled(graph, check_speed=False), 10.0, 5.0)
    calls = []
    monkeypatch.setattr(speed, "check", lambda m, arrays: calls.append(len(arrays[0])) or slower)
    with pytest.warns(SlowerThanFP32Warning, match=r"2\.00x SLOWER") as record:
        model(X)
    assert record[0].filename == __file__  # points at the user's call
    assert "Cumsum x2" in str(record[0].message) and "TF segment(s)" in str(record[0].message)
    assert model.speed is slower and model.plan.speed is slower
    assert "INT8 10.00 ms vs FP32 on TF 5.00 ms at batch 2: 2.00x SLOWER" in model.plan.summary()
    assert "Cumsum x2" in views.speed_html(model.plan.speed) and "#ffebee" in views.speed_html(model.plan.speed)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model(X)
    assert calls == [2]


def test_a_faster_first_run_is_recorded_without_a_warning(graph, monkeypatch):
    model = compiled(graph)
    monkeypatch.setattr(speed, "check", lambda m, arrays: given_times(m, 5.0, 10.0))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model(X)
    assert "2.00x faster" in model.plan.summary() and model.speed.causes() == []
    assert "ffebee" not in views.speed_html(model.plan.speed) and views.speed_html(None) == ""


def test_the_check_is_skipped_when_asked(graph, monkeypatch):
    monkeypatch.setattr(speed, "check", lambda *a: pytest.fail("checked"))
    compiled(graph, check_speed=False)(X)
    monkeypatch.setenv("ITEXLAB_CHECK_SPEED", "0")
    model = compiled(graph)
    model(X)
    assert model.speed is None and model.plan.speed is None
    monkeypatch.setenv("ITEXLAB_CHECK_SPEED", "sometimes")
    with pytest.raises(ConfigError, match="ITEXLAB_CHECK_SPEED='sometimes': expected 0 or 1"):
        compiled(graph)


def test_a_check_that_fails_is_logged_and_the_run_still_answers(graph, monkeypatch, caplog):
    def refuse(*_):
        raise RuntimeError("TF cannot run this graph")

    monkeypatch.setattr(speed, "check", refuse)
    model = compiled(graph)
    with caplog.at_level(logging.WARNING, logger="itexlab.runtime.speed"):
        got = model(X)[0]
    assert "could not compare INT8 with FP32" in caplog.text and "TF cannot run this graph" in caplog.text
    np.testing.assert_array_equal(got, model(X)[0])
    assert model.speed is None


def step(kind, ms, ops=()):
    return StepTime(kind, f"{kind} step", ms, "", list(ops))


@pytest.mark.parametrize("int8_ms, fp32_ms, words", [(10.0, 10.3, "about as fast"), (10.0, 9.6, "about as fast"),
                                                    (10.0, 12.0, "1.20x faster"), (10.0, 8.0, "1.25x SLOWER")])
def test_ratios_within_the_noise_are_about_as_fast(int8_ms, fp32_ms, words):
    check = SpeedCheck(1, int8_ms, fp32_ms, 5, "here", [step("int8", 1.0)])
    assert words in check.headline() and check.slower == ("SLOWER" in words)
    assert bool(check.causes()) == check.slower


def test_causes_say_where_the_time_went():
    partitions_alone = SpeedCheck(1, 10.0, 4.0, 5, "here", [step("int8", 6.0), step("tf", 1.0, ["Erf"])],
                                  outside_ms=3.0)
    causes = "\n".join(partitions_alone.causes())
    assert "its 1 INT8 partitions alone take 6.00 ms, more than all of FP32" in causes
    assert "1.00 ms (10%) go to 1 TF segment(s)" in causes and "ops on TF between partitions: Erf x1" in causes
    assert "3.00 ms per run outside every step" in causes
    segments = SpeedCheck(1, 10.0, 8.0, 5, "here", [step("tf", 4.0, ["Cumsum"] * 2), step("executor", 1.0),
                                                    step("int8", 2.0)] + [step("tf", 0.5, ["Sort"])] * 3)
    lines = segments.causes()
    assert not any("alone" in line for line in lines)
    assert sum(line.startswith("  ") for line in lines) == 3  # the slowest steps outside INT8, named
    assert "Cumsum x2, Sort x3" not in lines[-1] and "Sort x3, Cumsum x2" in lines[-1]


def test_a_benchmark_explains_where_int8_lost(graph):
    model = compiled(graph, check_speed=False)
    results = [timing.Result("tf-fp32", "m", 2, 5.0, 0.1, 400.0, 1.0),
               timing.Result("itexlab-int8", "m", 2, 10.0, 0.1, 200.0, 0.5)]
    [check] = timing.slower_than_fp32(model, results, [X], repeats=3)
    assert (check.int8_ms, check.fp32_ms, check.batch) == (10.0, 5.0, 2) and len(check.steps) == len(model.steps)
    report = timing.Report(results, [], {}, slower={"m": [check]})
    assert "itexlab-int8 is slower than tf-fp32 at batch 2:" in report.table("m")
    assert report.to_dict()["slower_than_fp32"]["m"][0]["int8_ms"] == 10.0
    results[1].speedup = 1.0
    assert timing.slower_than_fp32(model, results, [X], repeats=3) == []
