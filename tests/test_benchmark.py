import json
import os
import subprocess
import sys
import time

import keras
import numpy as np

from itexlab.backend import cpu
from itexlab.frontend import tfgraph
from itexlab.measure import benchmark, datasets, timing, workloads


def test_isa_features_are_read_from_cpuinfo():
    assert cpu.isa_features("flags\t: fpu avx512f avx512_vnni amx_int8 sse") == ["avx512f", "avx512_vnni", "amx_int8"]
    assert cpu.isa_features("flags\t: fpu sse avx avx2 fma") == ["avx2"]  # an AVX2 laptop: not "none"
    assert cpu.isa_features("flags\t: fpu sse") == []
    assert cpu.model_name("vendor_id\t: AuthenticAMD\nmodel name\t: AMD EPYC 9R14\nflags\t: fpu") == "AMD EPYC 9R14"
    assert cpu.model_name("cpu family\t: 26\nmodel\t\t: 2\nmodel name\t: AMD EPYC\n") == "AMD EPYC (family 26, model 2)"
    assert cpu.model_name("processor\t: 0") == "unknown CPU"


def test_the_cpu_is_described_with_the_isa_onednn_runs():
    from itexlab.backend import onednn

    described = cpu.describe()
    assert described["onednn_isa"] == onednn.effective_isa() and described["model"] == cpu.model_name()
    assert f"oneDNN ISA {described['onednn_isa']}" in cpu.headline(described)
    laptop = {"model": "Intel Core i5", "features": [], "onednn_isa": "AVX2", "threads": 4}
    assert "CPU features: none of avx2" in cpu.headline(laptop)  # says what it looked for


def test_openmp_spin_count_is_set_before_libgomp_loads_unless_the_user_chose():
    def spin_count(env):
        code = ("import os, itexlab.backend.onednn; "
                "print(os.environ.get('GOMP_SPINCOUNT'), any('libgomp.so' in l for l in open('/proc/self/maps')))")
        clean = {k: v for k, v in os.environ.items() if k not in ("GOMP_SPINCOUNT", "OMP_WAIT_POLICY")}
        out = subprocess.run([sys.executable, "-c", code], env={**clean, **env}, capture_output=True, text=True)
        return out.stdout.split()

    assert spin_count({}) == [cpu.OPENMP_SPIN_COUNT, "True"]
    assert spin_count({"GOMP_SPINCOUNT": "7"}) == ["7", "True"]
    assert spin_count({"OMP_WAIT_POLICY": "active"}) == ["None", "True"]


def legacy_reported(report) -> bool:
    """INC's legacy INT8 graph was measured where TF runs its oneDNN kernels, and reported unavailable
    (with the reason) where it does not: TF_ENABLE_ONEDNN_OPTS=0, or TF imported before itexlab on
    a CPU without VNNI, BF16 or AMX."""
    measured = any(r.system == "tf-int8-legacy" for r in report.results)
    missing = [u for u in report.unavailable if u.system == "tf-int8-legacy"]
    if tfgraph.onednn_kernels_on():
        return measured and not missing
    return not measured and len(missing) == 1 and "KernelsMissing" in missing[0].reason


def test_benchmark_on_a_tiny_model(tmp_path, monkeypatch):
    # A probe of known work and speed (0.5 GOP in 20 ms: 25 GOPS) in place of the real one, so the
    # floor can be checked against numbers the benchmark does not compute itself.
    monkeypatch.setattr(benchmark, "int8_probe", lambda: ((lambda: time.sleep(0.02)), 0.5))
    keras.utils.set_random_seed(0)
    train, test = datasets.digits(size=16)
    model = keras.Sequential([keras.Input((16, 16, 1)), keras.layers.Conv2D(8, 3, activation="relu"),
                              keras.layers.Flatten(), keras.layers.Dense(10, activation="softmax")])
    workloads.train(model, train, epochs=1)
    workload = workloads.Workload("tiny", model, train.x[:32], test, test.x[:16], (1, 4))
    result = benchmark.run(workload, (1, 4), repeats=3, breakdown=True, calibration_batches=2, progress=None)
    systems = {r.system for r in result.report.results}
    assert {"tf-fp32", "tf-qdq", "itexlab-int8", "tflite-int8"} <= systems
    assert legacy_reported(result.report)
    payload = json.loads(json.dumps(result.to_dict()))
    assert {"system", "model", "batch", "latency_ms", "ips"} <= set(payload["results"][0])
    assert payload["cpu"]["threads"] >= 1 and payload["cpu"]["model"] == cpu.model_name()
    first = result.first_result_seconds
    assert first["total"] >= first["inc_calibration"] > 0 and first["itexlab"] > 0
    overhead = result.executor_overhead
    assert overhead["overhead_ms"] <= overhead["latency_ms"]
    np.testing.assert_allclose(overhead["share"], overhead["overhead_ms"] / overhead["latency_ms"], rtol=0.5, atol=0.02)
    # every executor step, timed (that a run's steps fit in the run is checked per run, where it holds
    # exactly: test_partition_execute.py::test_timed_run_splits_one_run_into_its_steps; these are means
    # over runs, which one slow run can lift above a median wall time)
    assert result.breakdown and all(seconds >= 0 for _, seconds in result.breakdown)
    assert sum(seconds for _, seconds in result.breakdown) > 0
    table = result.markdown()
    assert "| itexlab-int8 | 4 |" in table and "Time to first INT8 result" in table
    np.testing.assert_allclose([r.speedup for r in result.report.results if r.system == "tf-fp32"], 1.0)
    assert {(m.system, m.batch) for m in result.memory} == {(s, b) for s in ("tf-fp32", "itexlab-int8") for b in (1, 4)}
    assert all(m.peak_mb >= m.loaded_mb >= m.baseline_mb > 100 for m in result.memory)  # TF alone is more
    assert "| 4 |" in table.split("Peak memory")[1] and payload["memory"][0]["peak_mb"] > 0
    assert benchmark.PROBE_SYSTEM not in systems  # the probe runs in the same turns, not as a system
    itexlab_ms = {r.batch: r.latency_ms for r in result.report.results if r.system == "itexlab-int8"}
    conv_gop = 2 * (14 * 14 * 3 * 3 * 1 * 8 + 14 * 14 * 8 * 10) / 1e9  # Conv2D + Dense, per image
    for floor, batch in zip(result.floor, (1, 4)):
        assert floor.batch == batch
        np.testing.assert_allclose(floor.gop, conv_gop * batch)
        np.testing.assert_allclose(floor.probe_gops, 25, rtol=0.2)        # 0.5 GOP per 20 ms sleep
        np.testing.assert_allclose(floor.floor_ms, 1000 * conv_gop * batch / 25, rtol=0.2)
        np.testing.assert_allclose(floor.itexlab_share, floor.floor_ms / itexlab_ms[batch])
    assert payload["floor"][1]["batch"] == 4 and "INT8 floor" in table


def test_each_turn_times_a_switch_call_and_a_steady_call():
    calls = []

    def system(name, switch_cost):
        def run(batch):
            if calls and calls[-1] != name:
                time.sleep(switch_cost)   # what evicted caches or sleeping threads cost the first call
            calls.append(name)
        return run

    results = timing.measure({"tf-fp32": system("tf-fp32", 0.0), "int8": system("int8", 0.05)}, "m",
                            np.zeros((2, 3)), repeats=4, warmup=1, progress=None)
    assert calls == ["tf-fp32", "int8"] + ["tf-fp32", "tf-fp32", "int8", "int8"] * 4
    int8 = next(r for r in results if r.system == "int8")
    assert int8.switch_ms >= 50 > int8.latency_ms   # the steady call does not pay the switch
    assert int8.batch == 2 and int8.speedup > 0
