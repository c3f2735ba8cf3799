"""Comparisons of FP32 on TF, INC's legacy INT8 on TF and itexlab's INT8 — for one workload in
a notebook (`compare`), or for the built-in models as the main job (`main_job`)."""

from __future__ import annotations

import dataclasses
import sys

import numpy as np

from ..backend import cpu
from ..config import PartitionConfig, QuantConfig
from ..frontend import tfgraph
from ..ir.graph import Graph
from ..ir.plan import Plan, counts
from ..lower.partition import make_plan
from ..quant.quantization import QuantizedModel, quantize
from ..runtime.executor import CompiledModel
from . import timing, workloads
from .systems import ITEXLAB_INT8, TF_FP32, TF_INT8_LEGACY, Subject, chosen


@dataclasses.dataclass
class Comparison:
    """One workload quantized and partitioned, with the three systems ready to run."""

    workload: workloads.Workload
    quantized: QuantizedModel
    plan: Plan
    systems: dict[str, object]
    unavailable: list[timing.Unavailable] = dataclasses.field(default_factory=list)  # could not run here

    @property
    def int8(self) -> CompiledModel:
        return self.systems[ITEXLAB_INT8.name]

    def sizes(self) -> dict[str, int]:
        """Bytes of weights and graph each system holds."""
        def graph_bytes(graph: Graph) -> int:
            return tfgraph.graph_def_from_graph(graph).ByteSize()
        fallback = {f.name for f in self.plan.fallback}
        tf_part = Graph([n for n in self.plan.source.nodes if n.name in fallback], [], [])
        sizes = {TF_FP32.name: lambda: graph_bytes(self.quantized.fp32),
                 TF_INT8_LEGACY.name: lambda: graph_bytes(self.quantized.legacy),
                 ITEXLAB_INT8.name: lambda: (sum(int(np.asarray(c).nbytes) for c in self.plan.constants.values())
                                             + graph_bytes(tf_part))}
        return {name: size() for name, size in sizes.items() if name in self.systems}

    def measure(self, repeats: int = 20, batch_sizes: tuple[int, ...] | None = None,
                progress: timing.ProgressCallback | None = timing.print_progress) -> timing.Report:
        w = self.workload
        sample = self.int8.inputs_of(w.sample)  # one array per input, of its dtype: what every system gets
        results, slower = [], []
        for size in batch_sizes or w.batch_sizes:
            batch = timing.batch_of(sample, size)
            measured = timing.measure(self.systems, w.name, batch, repeats, progress=progress)
            results += measured
            slower += timing.slower_than_fp32(self.int8, measured, batch, repeats)
        if w.evaluation is not None:
            quality = timing.quality(self.systems, w.name, self.int8.inputs_of(w.evaluation.x), w.evaluation.y)
        else:
            quality = timing.quality(self.systems, w.name, sample, None)
        return timing.Report(results, quality, {w.name: dataclasses.asdict(counts(self.plan))},
                             {w.name: self.sizes()}, list(self.unavailable), cpu.describe(), {w.name: slower})


def compare(workload: workloads.Workload, calibration_batches: int = 10,
            partition_config: PartitionConfig | None = None, legacy: bool = True) -> Comparison:
    """Quantize a workload with INC (QDQ and, with `legacy`, INC's default output: twice INC's time)
    and partition it."""
    log = lambda msg: print(f"[{workload.name}] {msg}", file=sys.stderr, flush=True)  # noqa: E731
    log("freezing and quantizing with INC (QDQ" + (" and legacy outputs)" if legacy else " output)"))
    stock = tfgraph.load(workload.model)
    quantized = quantize(stock, workload.calibration, QuantConfig(calibration_batches=calibration_batches),
                         legacy=legacy)
    plan = make_plan(quantized.qdq, partition_config)
    log("plan: " + plan.summary().replace("\n", "\n    "))
    int8 = CompiledModel(plan, check_speed=False)  # measured side by side with TF FP32 instead
    subject = Subject(workload.model, workload.calibration, stock, quantized, int8)
    names = [TF_FP32.name, ITEXLAB_INT8.name] + ([TF_INT8_LEGACY.name] if legacy else [])
    systems, unavailable = timing.usable_systems(chosen(names), subject, workload.name,
                                                 timing.batch_of(int8.inputs_of(workload.sample), 1))
    for u in unavailable:
        log(f"{u.system} is unavailable on this CPU: {u.reason}")
    return Comparison(workload, quantized, plan, systems, unavailable)


def main_job(names: list[str], repeats: int) -> timing.Report:
    print(f"CPU: {cpu.headline(cpu.describe())}", flush=True)
    report = timing.Report([], [], {})
    for name in names:
        report.extend(compare(workloads.BUILTIN[name]()).measure(repeats))
        print(f"\n== {name} ==\n{report.table(name)}\n", flush=True)
    return report
