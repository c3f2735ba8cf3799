"""Comparisons of FP32 on TF, INC's legacy INT8 on TF and itexlab's INT8 — for one workload in
a notebook, or for the built-in models as the main job."""

from __future__ import annotations

import dataclasses
import sys

import numpy as np

from . import bench, cpu, inspect, models, tfgraph
from .config import PartitionConfig, QuantConfig
from .execute import CompiledModel
from .graph import Graph
from .partition import Plan, make_plan
from .quantization import QuantizedModel, quantize


@dataclasses.dataclass
class Comparison:
    """One workload quantized and partitioned, with the three systems ready to run."""

    workload: models.Workload
    quantized: QuantizedModel
    plan: Plan
    systems: dict[str, object]
    unavailable: list[bench.Unavailable] = dataclasses.field(default_factory=list)  # could not run here

    @property
    def int8(self) -> CompiledModel:
        return self.systems["itexlab-int8"]

    def sizes(self) -> dict[str, int]:
        """Bytes of weights and graph each system holds."""
        def graph_bytes(graph: Graph) -> int:
            return tfgraph.graph_def_from_graph(graph).ByteSize()
        constants = self.plan.translation.constants.values() if self.plan.translation else []
        fallback = {f.name for f in self.plan.fallback}
        tf_part = Graph([n for n in self.plan.source.nodes if n.name in fallback], [], [])
        sizes = {"tf-fp32": lambda: graph_bytes(self.quantized.fp32),
                 "tf-int8-legacy": lambda: graph_bytes(self.quantized.legacy),
                 "itexlab-int8": lambda: sum(int(np.asarray(c).nbytes) for c in constants) + graph_bytes(tf_part)}
        return {name: size() for name, size in sizes.items() if name in self.systems}

    def measure(self, repeats: int = 20, batch_sizes: tuple[int, ...] | None = None,
                progress: bench.ProgressCallback | None = bench.print_progress) -> bench.Report:
        w = self.workload
        results = []
        for size in batch_sizes or w.batch_sizes:
            results += bench.measure(self.systems, w.name, bench.batch_of(w.sample, size), repeats, progress=progress)
        if w.evaluation is not None:
            quality = bench.quality(self.systems, w.name, w.evaluation.x, w.evaluation.y)
        else:
            quality = bench.quality(self.systems, w.name, w.sample, None)
        counts = dataclasses.asdict(inspect.counts(self.plan))
        return bench.Report(results, quality, {w.name: counts}, {w.name: self.sizes()}, list(self.unavailable),
                            cpu.describe())


def compare(workload: models.Workload, calibration_batches: int = 10,
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
    factories = {"tf-fp32": lambda: tfgraph.GraphFunction(stock, stock.inputs, stock.outputs),
                 "tf-int8-legacy": lambda: tfgraph.legacy_int8_function(quantized.legacy),
                 "itexlab-int8": lambda: CompiledModel(plan)}
    if not legacy:
        del factories["tf-int8-legacy"]
    systems, unavailable = bench.usable_systems(factories, workload.name, bench.batch_of(workload.sample, 1))
    for u in unavailable:
        log(f"{u.system} is unavailable on this CPU: {u.reason}")
    return Comparison(workload, quantized, plan, systems, unavailable)


def main_job(names: list[str], repeats: int) -> bench.Report:
    print(f"CPU: {cpu.headline(cpu.describe())}", flush=True)
    report = bench.Report([], [], {})
    for name in names:
        report.extend(compare(models.BUILTIN[name]()).measure(repeats))
        print(f"\n== {name} ==\n{report.table(name)}\n", flush=True)
    return report
