"""The native module at its edges: process exit, and errors instead of crashes."""

import subprocess
import sys
import textwrap

import numpy as np
import pytest

from itexlab import onednn


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
    program = native.Program(graph, [native.StepSpec(part.index, None, part.input_ids, part.output_ids, "relu")],
                             [1], [2], {1: "float32", 2: "float32"}, {}, [])
    np.testing.assert_array_equal(program.run([np.array([[-1, 2, -3, 4]], np.float32)])[0], [[0, 2, 0, 4]])
    with pytest.raises(ValueError, match="wrong dtype"):
        program.run([np.zeros((1, 4), np.int32)])
    with pytest.raises(ValueError, match="expected 1 inputs"):
        program.run([])
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
