"""The benchmark: every INT8 path and FP32, side by side in one process, for a model and a list of
batch sizes; the numbers the performance goals are checked against."""

from __future__ import annotations

import dataclasses
import time

import numpy as np

from ..backend import cpu
from ..config import QuantConfig
from ..frontend import tfgraph
from ..ir.plan import counts
from ..lower.partition import make_plan
from ..quant.quantization import quantize
from ..runtime import speed
from ..runtime.executor import CompiledModel, mean_step_times
from . import memory, timing
from .probe import PROBE_SYSTEM, giga_ops, int8_probe
from .systems import ITEXLAB_INT8, SUBJECT, SYSTEMS, TF_FP32, TF_INT8_LEGACY, TF_QDQ, Subject, chosen
from .workloads import Workload


@dataclasses.dataclass
class Floor:
    """The latency this CPU's INT8 convolutions set as a floor for one batch size: the model's
    convolution and matmul work at the rate the probe reached, measured in the same round-robin
    turns as the systems (a busy host slows the probe and the model alike)."""

    batch: int
    gop: float            # the model's convolution/matmul work per batch, 2 ops per multiply-accumulate
    probe_gops: float     # the probe's rate in the same run
    floor_ms: float       # gop / probe_gops
    itexlab_share: float  # floor_ms / itexlab-int8's latency: how close itexlab runs to the floor


@dataclasses.dataclass
class Benchmark:
    model: str
    cpu: dict                                # cpu.describe(): model name, features, oneDNN's ISA, threads
    report: timing.Report
    first_result_seconds: dict[str, float]   # stage -> seconds, INC calibration and itexlab's own part
    executor_overhead: dict[str, float]      # at batch 1: run time outside oneDNN partitions
    breakdown: list[tuple[str, float]] | None
    memory: list[memory.MemoryResult] | None = None  # peak RSS, a fresh process per system
    floor: list[Floor] = dataclasses.field(default_factory=list)

    def to_dict(self) -> dict:
        return {"model": self.model, **self.report.to_dict(), "cpu": self.cpu,
                "floor": [dataclasses.asdict(f) for f in self.floor],
                "time_to_first_result": self.first_result_seconds,
                "executor_overhead": self.executor_overhead,
                "breakdown": None if self.breakdown is None else [{"step": s, "ms": 1000 * t} for s, t in self.breakdown],
                "memory": None if self.memory is None else [dataclasses.asdict(m) for m in self.memory]}

    def markdown(self) -> str:
        lines = [f"**{self.model}** — {cpu.headline(self.cpu)}", "",
                 "| system | batch | latency ms (median) | IQR ms | img/s | vs TF FP32 | first call after another system, ms |",
                 "|---|---|---|---|---|---|---|"]
        lines += [f"| {r.system} | {r.batch} | {r.latency_ms:.2f} | {r.spread_ms:.2f} | {r.ips:.1f} | "
                  f"{'—' if r.speedup is None else f'{r.speedup:.2f}x'} | {r.switch_ms:.2f} |" for r in self.report.results]
        lines += [f"| {u.system} | — | unavailable on this CPU: {u.reason} | | | | |" for u in self.report.unavailable]
        slower = self.report.slower_lines(self.model)
        if slower:
            lines += ["", "```", *slower, "```"]
        if self.floor:
            lines += ["", ("INT8 floor (the model's convolution/matmul work at the rate this CPU's INT8 convolutions "
                           "reached in the same run):"), "",
                      "| batch | GOP | INT8 rate, GOPS | floor ms | itexlab-int8 at |", "|---|---|---|---|---|"]
            lines += [f"| {f.batch} | {f.gop:.3g} | {f.probe_gops:.0f} | {f.floor_ms:.2f} | {100 * f.itexlab_share:.0f}% |"
                      for f in self.floor]
        s = self.first_result_seconds
        lines += ["", f"Time to first INT8 result: {s['total']:.1f} s — INC calibration {s['inc_calibration']:.1f} s, "
                      f"itexlab's own part {s['itexlab']:.2f} s (prepare {s['load_and_prepare']:.2f}, import "
                      f"{s['import_qdq']:.2f}, partition {s['partition']:.2f}, compile+first run {s['first_run']:.2f})."]
        o = self.executor_overhead
        lines += [f"Executor overhead at batch 1: {o['overhead_ms']:.2f} ms of {o['latency_ms']:.2f} ms "
                  f"({100 * o['share']:.1f}%) outside oneDNN partitions."]
        if self.memory:
            peak = {(m.system, m.batch): m.peak_mb for m in self.memory}
            systems = list(dict.fromkeys(m.system for m in self.memory))
            both = set(systems) == set(memory.SYSTEMS)
            lines += ["", "Peak memory (resident set of a fresh process that loads the model and runs it):", "",
                      "| batch | " + " | ".join(f"{name} MB" for name in systems) + (" | INT8 / FP32 |" if both else " |"),
                      "|---|" + "---|" * (len(systems) + both)]
            for batch in sorted({m.batch for m in self.memory}):
                ratio = f" {peak[(ITEXLAB_INT8.name, batch)] / peak[(TF_FP32.name, batch)]:.2f} |" if both else ""
                lines.append(f"| {batch} | " + " | ".join(f"{peak[(name, batch)]:.0f}" for name in systems) + " |" + ratio)
            lines.append(f"(each includes {self.memory[0].baseline_mb:.0f} MB of imported TensorFlow and itexlab)")
        return "\n".join(lines)


def executor_overhead(model: CompiledModel, batch: np.ndarray, repeats: int) -> tuple[dict, list]:
    """Time outside oneDNN (Python, dispatch, TF fallback) per run: each run's wall time minus the
    time inside its own oneDNN steps, so a noisy machine hits both sides of the difference alike."""
    model(batch)
    runs = [model.timed_run(batch) for _ in range(repeats)]
    walls = np.array([wall for wall, _ in runs])
    native = [step.kind != "callback" for step in model.steps]
    inside = np.array([sum(t for (_, t), n in zip(steps, native) if n) for _, steps in runs])
    overhead = np.maximum(walls - inside, 0.0)
    steps = mean_step_times([steps for _, steps in runs])
    return {"latency_ms": 1000 * float(np.median(walls)), "overhead_ms": 1000 * float(np.median(overhead)),
            "share": float(np.median(overhead / walls))}, steps


def run(workload: Workload, batch_sizes: tuple[int, ...], repeats: int = 20, breakdown: bool = False,
        systems: tuple[str, ...] = tuple(SYSTEMS), calibration_batches: int = 10, with_memory: bool = True,
        progress: timing.ProgressCallback | None = timing.print_progress) -> Benchmark:
    """Quantize the workload's model, then time `systems` (itexlab-int8 always) side by side."""
    compared = chosen(systems)
    stock = tfgraph.load(workload.model)
    quantized = quantize(stock, workload.calibration, QuantConfig(calibration_batches=calibration_batches),
                         legacy=TF_INT8_LEGACY.name in systems, progress=progress is not None)
    start = time.perf_counter()
    plan = make_plan(quantized.qdq)
    partition_seconds = time.perf_counter() - start
    start = time.perf_counter()
    int8 = CompiledModel(plan, check_speed=False)  # measured side by side with TF FP32 below
    sample = int8.inputs_of(workload.sample)  # one array per input, of its dtype: what every system gets
    single = timing.batch_of(sample, 1)
    int8(single)
    first_run = time.perf_counter() - start
    s = quantized.seconds
    own = s["load_and_prepare"] + s["import_qdq"] + partition_seconds + first_run
    first = {**s, "partition": partition_seconds, "first_run": first_run, "inc_calibration": s["inc_qdq"],
             "itexlab": own, "total": own + s["inc_qdq"]}

    subject = Subject(workload.model, workload.calibration, stock, quantized, int8)
    measured_systems, unavailable = timing.usable_systems(compared, subject, workload.name, single)
    probe, probe_gop = int8_probe()
    measured_systems[PROBE_SYSTEM] = lambda _batch: probe()  # timed in the same turns, on its own input
    gop = giga_ops(plan.source)
    results, floor, slower = [], [], []
    for size in batch_sizes:
        batch = timing.batch_of(sample, size)
        measured = timing.measure(measured_systems, workload.name, batch, repeats, progress=progress)
        probe_result = next(r for r in measured if r.system == PROBE_SYSTEM)
        results += [r for r in measured if r.system != PROBE_SYSTEM]
        slower += timing.slower_than_fp32(int8, measured, batch, repeats)
        probe_gops = probe_gop / (probe_result.latency_ms / 1000)
        floor_ms = 1000 * gop * size / probe_gops
        itexlab_ms = next(r.latency_ms for r in measured if r.system == SUBJECT)
        floor.append(Floor(size, gop * size, probe_gops, floor_ms, floor_ms / itexlab_ms))
    overhead, steps = executor_overhead(int8, single, repeats)
    described = cpu.describe()
    report = timing.Report(results, [], {workload.name: dataclasses.asdict(counts(plan))},
                          unavailable=unavailable, cpu=described, slower={workload.name: slower})
    peaks = None
    if with_memory:
        graphs = {TF_FP32.name: stock, ITEXLAB_INT8.name: quantized.qdq}
        peaks = memory.measure({name: graph for name, graph in graphs.items() if name in measured_systems},
                               sample, batch_sizes)
    return Benchmark(workload.name, described, report, first, overhead, steps if breakdown else None, peaks, floor)


def run_saved(path: str, inputs: np.ndarray | None, batch_sizes: tuple[int, ...], repeats: int = 20,
              progress: timing.ProgressCallback | None = timing.print_progress, trust: bool = False) -> timing.Report:
    """Time a saved model (`itexlab bench DIR`), its graph in FP32 on stock TF (the folder holds no
    FP32 model: its plan's graph with the quantizers read as floats stands in) and, when INC's QDQ
    graph was saved with it, that graph on stock TF. `trust`: see runtime.saving.load (it applies
    to the QDQ graph too)."""
    import pathlib

    from ..runtime import saving

    model, graphs = saving.load_folder(path, ("qdq.pb",), trust, check_speed=False)
    name = pathlib.Path(path).resolve().name
    inputs = _inputs_in_calibrated_range(model, max(batch_sizes)) if inputs is None else model.inputs_of(inputs)
    runners: dict = {TF_FP32.name: speed.fp32_function(model), ITEXLAB_INT8.name: model}
    unavailable = []
    if "qdq.pb" in graphs:
        qdq = graphs["qdq.pb"]
        try:
            runners[TF_QDQ.name] = tfgraph.tried_graph_function(qdq, timing.batch_of(inputs, 1))
        except tfgraph.TensorFlowAborted as e:
            unavailable.append(timing.Unavailable(TF_QDQ.name, name, str(e)))
    results, slower = [], []
    for size in batch_sizes:
        batch = timing.batch_of(inputs, size)
        measured = timing.measure(runners, name, batch, repeats, progress=progress)
        results += measured
        slower += timing.slower_than_fp32(model, measured, batch, repeats)
    return timing.Report(results, [], {name: dataclasses.asdict(counts(model.plan))}, unavailable=unavailable,
                         cpu=cpu.describe(), slower={name: slower})


def _inputs_in_calibrated_range(model: CompiledModel, count: int) -> list[np.ndarray]:
    """Random inputs for a model saved without data, one array per input: uniform over the range
    each float input was calibrated on; zeros for integer inputs (ids and masks: a range is not
    what they were calibrated on)."""
    rng = np.random.default_rng(0)
    inputs = []
    for spec in model.inputs:
        shape = [count] + [1 if d is None else d for d in (spec.info.shape or (None,))[1:]]
        if spec.dtype.kind != "f":
            inputs.append(np.zeros(shape, spec.dtype))
            continue
        low, high = spec.calibrated or (0.0, 1.0)
        inputs.append(rng.uniform(low, high, shape).astype(spec.dtype))
    return inputs
