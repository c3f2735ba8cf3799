"""Accuracy-driven tuning through INC: the QDQ form on every trial, the most sensitive op kept in
FP32 first, and clear answers for eval functions that fail and goals no configuration meets."""

import keras
import numpy as np
import pytest

import itexlab
from itexlab.errors import TuningError
from itexlab.measure.tuning import TuningWarning


@pytest.fixture(scope="module")
def outlier_model():
    """One hidden unit always near 500 (its bias) that the classifier ignores: per-tensor INT8 of
    the hidden layer's output leaves the other units a step of ~2, so plain INT8 loses accuracy,
    and keeping the classifier in FP32 wins it back."""
    keras.utils.set_random_seed(0)
    inputs = keras.Input((16,))
    hidden = keras.layers.Dense(32, activation="relu", name="hidden")(inputs)
    model = keras.Model(inputs, keras.layers.Dense(10, name="logits")(hidden))
    kernel, bias = model.get_layer("hidden").get_weights()
    bias[0] = 500.0
    model.get_layer("hidden").set_weights([kernel, bias])
    kernel, bias = model.get_layer("logits").get_weights()
    kernel[0, :] = 0.0
    model.get_layer("logits").set_weights([kernel, bias])
    x = np.random.default_rng(0).normal(size=(400, 16)).astype(np.float32)
    labels = model.predict(x, verbose=0).argmax(1)
    return model, x, lambda run: float(np.mean(np.asarray(run(x)[0]).argmax(1) == labels))


def test_autotune_keeps_the_sensitive_op_in_fp32_until_the_goal_is_met(outlier_model):
    model, x, agreement = outlier_model
    plain = itexlab.quantize(model, x[:64], progress=False)
    assert agreement(itexlab.CompiledModel(itexlab.make_plan(plain.qdq))) < 0.9  # loses more than the tolerance
    result = itexlab.autotune(model, x[:64], agreement, tolerable_loss=0.02, max_trials=4, progress=False)
    trials = result.trials
    assert result.met and result.baseline == 1.0
    assert list(trials.meets) == [False, True]
    assert trials.keep_fp32[1].endswith("logits_1/MatMul")
    assert trials.int8_ops[1] > 0  # INC kept the QDQ form after its first trial: the hidden layer is INT8
    assert result.quantized.qdq.count("QuantizeV2") > 0
    assert agreement(result.model) == trials.metric[1] >= 0.98


def test_a_goal_no_configuration_meets_is_said_and_the_trials_returned(outlier_model):
    model, x, agreement = outlier_model
    with pytest.warns(TuningWarning, match="no configuration of the 3 tried met"):
        result = itexlab.autotune(model, x[:64], agreement, tolerable_loss=-0.5, max_trials=5, progress=False)
    assert not result.met and len(result.trials) == 3 and not result.trials.meets.any()
    assert agreement(result.model) == result.trials.metric.max()


@pytest.mark.parametrize("eval_fn, message", [
    (lambda run: 1 / 0, "eval_fn raised ZeroDivisionError on the model with .* in FP32: division by zero"),
    (lambda run, calls=[]: calls.append(1) or (1 / 0 if len(calls) > 3 else 0.5),  # inside INC's loop
     "eval_fn raised ZeroDivisionError on trial 1"),
    (lambda run: "good", "eval_fn returned 'good'"),
    (lambda run: float("nan"), "finite number"),
])
def test_an_eval_function_that_fails_is_named(outlier_model, eval_fn, message):
    model, x, _ = outlier_model
    with pytest.raises(TuningError, match=message):
        itexlab.autotune(model, x[:64], eval_fn, progress=False)
