"""The main job: quantize the built-in models, partition and run them, and compare FP32 on TF,
INC's legacy INT8 on TF and itexlab's INT8, side by side."""

from __future__ import annotations

import sys

from . import bench, models, tfgraph
from .config import PartitionConfig, QuantConfig
from .execute import CompiledModel
from .partition import Plan, make_plan
from .quantize import quantize


def plan_counts(plan: Plan) -> dict:
    return {"partitions": len(plan.partitions), "int8_partitions": sum(p.quantized for p in plan.partitions),
            "fused_ops": plan.fused_node_count(), "fallback_ops": len(plan.fallback)}


def run_workload(workload: models.Workload, repeats: int, calibration_batches: int = 10,
                 partition_config: PartitionConfig | None = None) -> bench.Report:
    log = lambda msg: print(f"[{workload.name}] {msg}", file=sys.stderr, flush=True)  # noqa: E731
    log("freezing and quantizing with INC (QDQ and legacy outputs)")
    stock = tfgraph.load(workload.model)
    quantized = quantize(stock, workload.calibration, QuantConfig(calibration_batches=calibration_batches),
                         legacy=True)
    plan = make_plan(quantized.qdq, partition_config)
    log("plan: " + plan.summary().replace("\n", "\n    "))
    systems = {
        "tf-fp32": tfgraph.GraphFunction(stock, stock.inputs, stock.outputs),
        "tf-int8-legacy": tfgraph.GraphFunction(quantized.legacy, quantized.legacy.inputs, quantized.legacy.outputs),
        "itexlab-int8": CompiledModel(plan),
    }
    results = []
    for size in workload.batch_sizes:
        results += bench.measure(systems, workload.name, bench.batch_of(workload.sample, size), repeats)
    if workload.evaluation is not None:
        quality = bench.quality(systems, workload.name, workload.evaluation.x, workload.evaluation.y)
    else:
        quality = bench.quality(systems, workload.name, workload.sample, None)
    return bench.Report(results, quality, {workload.name: plan_counts(plan)})


def main_job(names: list[str], repeats: int) -> bench.Report:
    report = bench.Report([], [], {})
    for name in names:
        part = run_workload(models.BUILTIN[name](), repeats)
        report.results += part.results
        report.quality += part.quality
        report.partitions.update(part.partitions)
        print(f"\n== {name} ==\n{report.table(name)}\n", flush=True)
    return report
