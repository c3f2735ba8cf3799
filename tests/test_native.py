"""The native module at its edges: process exit, and errors instead of crashes."""

import subprocess
import sys
import tempfile
import textwrap
import threading

import numpy as np
import pytest
import tensorflow as tf
from conftest import graph_of
from test_partition_execute import X, conv_block, quantized_input

from itexlab.backend import onednn
from itexlab.lower.partition import make_plan
from itexlab.runtime.executor import CompiledModel


def test_process_exits_cleanly_after_running_a_plan_with_tf_fallback():
    # A static numpy-view capsule used to be destroyed after the interpreter: segfault at exit.
    script = textwrap.dedent("""
        import sys; sys.path.insert(0, "tests")
        import numpy as np, tensorflow as tf
        from conftest import graph_of, run_itexlab, qdq
        g = graph_of(lambda x: tf.math.cumsum(qdq(x, -1.0, 1.0, tf.qint8), axis=1), (None, 4))
        plan, out = run_itexlab(g, np.ones((2, 4), np.float32))
        assert any(f.op == "Cumsum" for f in plan.fallback)
        print("ran", out[0].shape)
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "ran (2, 4)" in done.stdout


def test_native_program_rejects_wrong_inputs_with_exceptions():
    native = onednn._native
    T = native.TensorSpec
    graph = native.OneDnnGraph()
    graph.add_op(1, "ReLU", [T(1, "f32", [-1, 4])], [T(2, "f32", [-1, 4])], {}, "relu")
    part = graph.partition("fusion")[0]
    program = native.Program(graph, [native.StepSpec("partition", part.index, None, part.input_ids, part.output_ids,
                                                     "relu")], [1], [2], {1: "float32", 2: "float32"}, {}, [], 8)
    np.testing.assert_array_equal(program.run([np.array([[-1, 2, -3, 4]], np.float32)])[0], [[0, 2, 0, 4]])
    with pytest.raises(ValueError, match="wrong dtype"):
        program.run([np.zeros((1, 4), np.int32)])
    with pytest.raises(ValueError, match="expected 1 inputs"):
        program.run([])
    with pytest.raises(ValueError, match="unknown step kind 'partitoin'"):
        native.Program(graph, [native.StepSpec("partitoin", 0, None, [1], [2], "relu")], [1], [2],
                       {1: "float32", 2: "float32"}, {}, [], 8)
    with pytest.raises(ValueError, match="has nothing to call"):
        native.Program(graph, [native.StepSpec("callback", 0, None, [1], [2], "tf")], [1], [2],
                       {1: "float32", 2: "float32"}, {}, [], 8)
    with pytest.raises(ValueError, match="shapes_per_step"):
        native.Program(graph, [], [1], [2], {1: "float32", 2: "float32"}, {}, [], 0)
    with pytest.raises(ValueError, match="unknown oneDNN op kind"):
        graph2 = native.OneDnnGraph()
        graph2.add_op(1, "Frobnicate", [T(1, "f32", [4])], [T(2, "f32", [4])], {}, "x")


def test_constant_weights_stay_cached_unless_the_user_sized_the_cache(monkeypatch):
    monkeypatch.delenv(onednn.CONSTANT_CACHE_ENV, raising=False)
    onednn._native.set_constant_tensor_cache(False)
    onednn.configure_constant_cache()
    assert onednn._native.constant_tensor_cache()
    onednn._native.set_constant_tensor_cache(False)
    monkeypatch.setenv(onednn.CONSTANT_CACHE_ENV, "cpu:0")
    onednn.configure_constant_cache()
    assert not onednn._native.constant_tensor_cache()
    onednn._native.set_constant_tensor_cache(True)  # as itexlab left it for the other tests


def relu_callback_relu(callback, shapes_per_step=8):
    """ReLU partition -> Python callback -> ReLU partition, on (batch, 4) float32 tensors 1..4."""
    native = onednn._native
    T = native.TensorSpec
    graph = native.OneDnnGraph()
    graph.add_op(1, "ReLU", [T(1, "f32", [-1, 4])], [T(2, "f32", [-1, 4])], {}, "first")
    graph.add_op(2, "Wildcard", [T(2, "f32", [-1, 4])], [T(3, "f32", [-1, 4])], {}, "tf")
    graph.add_op(3, "ReLU", [T(3, "f32", [-1, 4])], [T(4, "f32", [-1, 4])], {}, "second")
    parts = {p.op_ids[0]: p for p in graph.partition("fusion")}
    steps = [native.StepSpec("partition", parts[1].index, None, [1], [2], "first"),
             native.StepSpec("callback", 0, callback, [2], [3], "tf"),
             native.StepSpec("partition", parts[3].index, None, [3], [4], "second")]
    return native.Program(graph, steps, [1], [4], {i: "float32" for i in (1, 2, 3, 4)}, {}, [], shapes_per_step)


def test_a_view_the_framework_keeps_is_never_overwritten():
    """A callback's inputs are views of pooled buffers; one it keeps (a traceback, %debug) must keep
    its values while later runs reuse the pool."""
    kept = []

    def keep_and_negate(x):
        kept.append(x)
        return [np.ascontiguousarray(-x)]

    program = relu_callback_relu(keep_and_negate)
    first = np.array([[1, -2, 3, -4]], np.float32)
    program.run([first])
    for k in range(20):
        program.run([np.full((1, 4), 100 + k, np.float32)])
    np.testing.assert_array_equal(kept[0], [[1, 0, 3, 0]])
    assert not kept[0].flags.writeable  # the framework only reads its inputs


def test_inputs_are_only_read():
    """Frozen arrays, read-only memory maps and TF tensors are taken as they are."""
    graph = graph_of(lambda x: conv_block(quantized_input(x)), (None, 10, 10, 4))
    model = CompiledModel(make_plan(graph))
    expected = model(X)[0]
    frozen = X.copy()
    frozen.flags.writeable = False
    np.testing.assert_array_equal(model(frozen)[0], expected)
    path = tempfile.mktemp(suffix=".npy")
    np.save(path, X)
    np.testing.assert_array_equal(model(np.load(path, mmap_mode="r"))[0], expected)
    np.testing.assert_array_equal(model(tf.constant(X))[0], expected)
    assert not frozen.flags.writeable and np.array_equal(frozen, X)


def test_compiled_shapes_are_a_bounded_lru():
    graph = graph_of(lambda x: conv_block(quantized_input(x)), (None, 10, 10, 4))
    plan = make_plan(graph)
    model = CompiledModel(plan, shapes_per_step=2)
    steps = sum(s.kind in ("partition", "concat") for s in model.steps)  # the steps that compile
    for batch in (1, 2, 3, 4, 5, 1):
        x = np.resize(X, (batch, 10, 10, 4))
        np.testing.assert_array_equal(model(x)[0], CompiledModel(plan)(x)[0])
        assert model.compiled_partitions <= 2 * steps
    model(np.resize(X, (5, 10, 10, 4)))  # the most recent shape is still compiled: no recompilation
    assert sum(compilations for _, _, compilations in model._program.profile()) == 6 * steps


def test_accessors_wait_for_a_run_in_another_thread_without_deadlock():
    """A run in one thread holds the program and needs the GIL for its callback; another thread
    asking for counters must not hold the GIL while it waits."""
    program = relu_callback_relu(lambda x: [np.ascontiguousarray(x + 1)])
    done = threading.Event()

    def runs():
        for _ in range(300):
            program.run([np.ones((3, 4), np.float32)])
        done.set()

    worker = threading.Thread(target=runs, daemon=True)
    worker.start()
    while not done.is_set():
        assert program.compiled_count >= 0 and program.pool_bytes >= 0 and len(program.profile()) == 3
    worker.join(timeout=60)
    assert not worker.is_alive()


def test_a_view_to_a_scalar_is_a_view():
    """Step kinds are explicit: a reshape to a scalar (empty target shape) once looked like partition 0."""
    native = onednn._native
    T = native.TensorSpec
    graph = native.OneDnnGraph()
    graph.add_op(1, "ReLU", [T(1, "f32", [1])], [T(2, "f32", [1])], {}, "relu")
    part = graph.partition("fusion")[0]
    steps = [native.StepSpec("partition", part.index, None, [1], [2], "relu"),
             native.StepSpec("view", 0, None, [2], [3], "to scalar", view_shape=[])]
    program = native.Program(graph, steps, [1], [3], {1: "float32", 2: "float32", 3: "float32"}, {}, [], 8)
    out = program.run([np.array([-3.0], np.float32)])[0]
    assert out.shape == () and out == 0.0
    assert program.run([np.array([2.5], np.float32)])[0] == 2.5
