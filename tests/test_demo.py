"""The comparison behind the main job and the notebooks, on a tiny workload."""

import dataclasses
import json

import keras
import matplotlib
import numpy as np
import pytest
from test_benchmark import legacy_reported

from itexlab.measure import datasets, workloads
from itexlab.measure.compare import compare
from itexlab.report import plots, widgets

matplotlib.use("Agg")


@pytest.fixture(scope="module")
def comparison():
    keras.utils.set_random_seed(0)
    train, test = datasets.digits(size=16)
    model = keras.Sequential([keras.Input((16, 16, 1)), keras.layers.Conv2D(16, 3, activation="relu"),
                              keras.layers.MaxPooling2D(), keras.layers.Flatten(),
                              keras.layers.Dense(10, activation="softmax")])
    workloads.train(model, train, epochs=3)
    workload = workloads.Workload("tiny", model, train.x[:64], test, test.x[:32], (1, 8))
    return compare(workload, calibration_batches=2)


def test_report_as_data_table_json_and_plot(comparison):
    report = comparison.measure(repeats=3, progress=None)
    frame = report.frame()
    assert set(frame.system) == {"tf-fp32", "tf-int8-legacy", "itexlab-int8"}  # legacy: a row either way
    assert legacy_reported(report)
    frame = frame[frame.unavailable.isna()]
    assert set(frame.batch) == {1, 8} and (frame.latency_ms > 0).all() and (frame.ips > 0).all()
    fp32 = frame[frame.system == "tf-fp32"]
    assert np.allclose(fp32.speedup, 1.0)
    assert (frame.quality_metric == "accuracy").all() and (frame.quality > 0.5).all()
    sizes = report.sizes["tiny"]
    assert sizes["itexlab-int8"] < sizes["tf-fp32"]  # int8 weights
    payload = json.loads(json.dumps(report.to_dict()))
    assert {"system", "model", "batch", "latency_ms", "ips"} <= set(payload["results"][0])
    assert "itexlab-int8" in report.table("tiny")
    figure = plots.comparison_figure(report, "tiny")
    assert len(figure.axes) == 2 and len(figure.axes[0].patches) == 2 * len(set(frame.system))
    profile = plots.profile_figure(dict(comparison.int8.profile(comparison.workload.sample[:1], 2)), comparison.plan)
    assert profile.axes[0].patches


def test_comparison_widget_measures_on_demand(comparison):
    widget = widgets.comparison_widget(comparison, repeats=2)
    button, bar = widget.children[0].children
    report = widget.run()
    assert bar.value == bar.max == 2 and not button.disabled
    assert {"tf-fp32", "itexlab-int8"} <= {r.system for r in report.results} and legacy_reported(report)


def test_a_comparison_system_that_cannot_run_is_reported_not_fatal():
    """With TF's oneDNN kernels off (TF 2.21's default on CPUs without VNNI, BF16 or AMX, when TF is
    imported before itexlab), INC's legacy INT8 ops have no kernels: the run goes on without them
    and the table, JSON, frame and plot say why."""
    import os
    import subprocess
    import sys
    import textwrap

    script = textwrap.dedent("""
        import json, keras, matplotlib, numpy as np
        matplotlib.use("Agg")
        from itexlab.measure import datasets, workloads
        from itexlab.report import plots
        from itexlab.measure.compare import compare
        keras.utils.set_random_seed(0)
        train, test = datasets.digits(size=16)
        model = keras.Sequential([keras.Input((16, 16, 1)), keras.layers.Conv2D(8, 3, activation="relu"),
                                  keras.layers.Flatten(), keras.layers.Dense(10)])
        workload = workloads.Workload("tiny", model, train.x[:16], test, test.x[:8], (1, 2))
        report = compare(workload, calibration_batches=1).measure(repeats=2, progress=None)
        figure = plots.comparison_figure(report, "tiny")
        print(json.dumps({"report": report.to_dict(), "table": report.table("tiny"),
                          "frame": report.frame().fillna("").to_dict("records"),
                          "figure_text": [t.get_text() for t in figure.texts]}))
    """)
    env = {**os.environ, "TF_ENABLE_ONEDNN_OPTS": "0"}
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    [missing] = out["report"]["unavailable"]
    assert missing["system"] == "tf-int8-legacy" and "oneDNN kernels" in missing["reason"]
    assert {r["system"] for r in out["report"]["results"]} == {"tf-fp32", "itexlab-int8"}
    assert "tf-int8-legacy: unavailable on this CPU — KernelsMissing: INC's legacy INT8 ops" in out["table"]
    assert any(row["unavailable"] and row["system"] == "tf-int8-legacy" for row in out["frame"])
    assert any("tf-int8-legacy: unavailable" in text for text in out["figure_text"])
    assert out["report"]["cpu"]["onednn_isa"]


def test_only_the_subject_may_not_fail():
    from itexlab.measure import timing
    from itexlab.measure.systems import ITEXLAB_INT8, TF_FP32, TFLITE_INT8

    def broken(subject):
        raise RuntimeError("no kernel for this\nsecond line")

    identity = dataclasses.replace(TF_FP32, build=lambda subject: (lambda x: x))
    systems, unavailable = timing.usable_systems([identity, dataclasses.replace(TFLITE_INT8, build=broken)], None,
                                                "m", np.zeros(1))
    assert list(systems) == ["tf-fp32"]
    assert unavailable == [timing.Unavailable("tflite-int8", "m", "RuntimeError: no kernel for this")]
    with pytest.raises(RuntimeError, match="no kernel"):
        timing.usable_systems([dataclasses.replace(ITEXLAB_INT8, build=broken)], None, "m", np.zeros(1))
