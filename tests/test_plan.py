"""The plan is plain data: JSON and back, drawn and tabulated without TensorFlow or the native module."""

import ast
import json
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
from conftest import graph_of, qdq
from test_partition_execute import X, conv_block, quantized_input

from itexlab.errors import ModelError
from itexlab.ir.plan import Plan
from itexlab.lower.partition import make_plan
from itexlab.report import tables, views
from itexlab.runtime.executor import CompiledModel


def branchy_plan():
    """Partitions, a byte concat, a TF op in the middle, and a zero-copy reshape."""
    def fn(x):
        a = conv_block(quantized_input(x))
        b = qdq(tf.concat([a, a * 1.0], axis=3), 0.0, 4.0)
        c = qdq(tf.math.cumsum(b, axis=3), 0.0, 30.0)
        return tf.reshape(c, [-1, 10 * 10 * 16])
    return make_plan(graph_of(fn, (None, 10, 10, 4)))


def test_a_plan_survives_json_and_runs_bit_identically():
    plan = branchy_plan()
    assert plan.fallback and plan.partitions
    loaded = Plan.from_json(plan.to_json(), plan.arrays())
    assert loaded.to_json() == plan.to_json()
    assert loaded.summary() == plan.summary()
    for before, after in zip(CompiledModel(plan)(X), CompiledModel(loaded)(X)):
        np.testing.assert_array_equal(before, after)


def test_a_plan_without_its_arrays_draws_but_does_not_run():
    plan = branchy_plan()
    loaded = Plan.from_json(plan.to_json())
    assert views.to_dot(loaded) == views.to_dot(plan)
    assert tables.partitions_frame(loaded).equals(tables.partitions_frame(plan))
    assert tables.quantization_frame(loaded).equals(tables.quantization_frame(plan))
    with pytest.raises(ModelError, match="no weights"):
        CompiledModel(loaded)


def test_a_plan_of_another_format_is_refused():
    data = json.loads(branchy_plan().to_json())
    data["format"] = 99
    with pytest.raises(ValueError, match="format 99"):
        Plan.from_dict(data)


def heavy_modules_loaded_by(code: str) -> list[str]:
    """Run `code` in a fresh interpreter; the TensorFlow, Keras and native modules it loaded."""
    probe = (code + "\nimport sys\nprint('loaded:', sorted(m for m in sys.modules if m.split('.')[0] in "
             "('tensorflow', 'keras') or m == 'itexlab.backend._native'))")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    return ast.literal_eval(done.stdout.strip().splitlines()[-1].removeprefix("loaded: "))


def test_drawing_and_tabulating_a_plan_loads_neither_tensorflow_nor_the_native_module(tmp_path):
    path = tmp_path / "plan.json"
    path.write_text(branchy_plan().to_json())
    assert heavy_modules_loaded_by(
        "import pathlib\n"
        "from itexlab.ir.plan import Plan\n"
        "from itexlab.report import tables, views, widgets\n"
        f"plan = Plan.from_json(pathlib.Path({str(path)!r}).read_text())\n"
        "views.plan_html(plan); views.standalone_html(plan, expand=True)\n"
        "tables.nodes_frame(plan); tables.quantization_frame(plan); tables.partition_details(plan, 0)\n"
        "widgets.plan_widget(plan)") == []
