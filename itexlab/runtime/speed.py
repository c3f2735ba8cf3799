"""INT8 against FP32 on the inputs of a model's first run (the data and its wording: itexlab.ir.speed).

FP32 is the plan's own graph with every Quantize/Dequantize pair read as the float it stands for,
run by stock TF: the model as TF would run it unquantized, whatever the model came from (a saved
folder holds no other FP32 model). Both run round-robin in this process, on the same inputs, and
the INT8 runs are profiled step by step, so a verdict can name the steps that cost the time.
"""

from __future__ import annotations

import logging
import time
import warnings
from collections import Counter
from typing import TYPE_CHECKING

import numpy as np

from ..backend import cpu, onednn
from ..frontend import tfgraph
from ..ir.speed import SpeedCheck, StepTime
from ..lower.qdq import without_quantization

if TYPE_CHECKING:
    from .executor import CompiledModel

log = logging.getLogger(__name__)

MAX_BATCH = 16     # a larger first batch is checked on its first 16 samples: the ratio, not a benchmark
TURNS = 15  # as many as fit the budget: a ratio of two ~1 ms runs needs more than 5 to settle
BUDGET_SECONDS = 3.0  # after the first turn, no new turn starts once this much time has gone by


class SlowerThanFP32Warning(UserWarning):
    """This plan runs slower in INT8 than its model in FP32 on stock TF, on this CPU."""


def fp32_function(model: "CompiledModel") -> tfgraph.GraphFunction:
    """The plan's graph with its quantizers read as the floats they stand for, on stock TF."""
    graph = without_quantization(model.plan.source)
    return tfgraph.GraphFunction(graph, graph.inputs, graph.outputs)


def check(model: "CompiledModel", arrays: list[np.ndarray], turns: int = TURNS,
          budget_seconds: float = BUDGET_SECONDS) -> SpeedCheck:
    """Time `model` (INT8) and its FP32 graph on TF on `arrays` (one array per model input),
    taking turns as measure.timing does: each turn calls a system twice and times the second call
    (the first finds the machine as the other system left it, and builds on the first turn)."""
    arrays = [a[:MAX_BATCH] for a in arrays]
    fp32 = fp32_function(model)
    int8_walls, fp32_walls, profiles = [], [], []
    start = time.perf_counter()
    while len(int8_walls) < turns and (not int8_walls or time.perf_counter() - start < budget_seconds):
        model(*arrays)
        wall, steps = model.timed_run(*arrays)
        int8_walls.append(wall)
        profiles.append(steps)
        fp32(*arrays)
        begin = time.perf_counter()
        fp32(*arrays)
        fp32_walls.append(time.perf_counter() - begin)
    return verdict(model, len(arrays[0]), 1000 * float(np.median(int8_walls)), 1000 * float(np.median(fp32_walls)),
                   len(int8_walls), profiles)


def explain(model: "CompiledModel", arrays: list[np.ndarray], int8_ms: float, fp32_ms: float, runs: int,
            profiles: int = 3) -> SpeedCheck:
    """A verdict for latencies measured elsewhere (a benchmark's), with the steps profiled here."""
    model(*arrays)
    return verdict(model, len(arrays[0]), int8_ms, fp32_ms, runs,
                   [model.timed_run(*arrays)[1] for _ in range(profiles)])


def verdict(model: "CompiledModel", batch: int, int8_ms: float, fp32_ms: float, runs: int,
            profiles: list[list[tuple[str, float]]]) -> SpeedCheck:
    steps = _step_times(model, profiles) if model.steps else [_whole_graph(model, int8_ms)]
    return SpeedCheck(batch, int8_ms, fp32_ms, runs, f"{cpu.model_name()}, oneDNN ISA {onednn.effective_isa()}",
                      steps, outside_ms=max(int8_ms - sum(s.ms for s in steps), 0.0))


def _step_times(model: "CompiledModel", profiles: list[list[tuple[str, float]]]) -> list[StepTime]:
    """Each step's median time, slowest first, as the verdict names them."""
    plan = model.plan
    quantized = {p.name: p.quantized for p in plan.partitions}
    reasons = {f.name: f.reason for f in plan.fallback}
    op_of = {n.name: n.op for n in plan.source.nodes}
    times = []
    for i, step in enumerate(model.steps):
        ms = 1000 * float(np.median([profile[i][1] for profile in profiles]))
        if step.kind == "partition":
            times.append(StepTime("int8" if quantized.get(step.label) else "fp32", f"partition {step.label}", ms))
        elif step.kind == "callback":
            why = Counter(reasons[n] for n in step.nodes if n in reasons).most_common(1)
            times.append(StepTime("tf", step.label, ms, why[0][0] if why else "", [op_of[n] for n in step.nodes]))
        else:
            times.append(StepTime("executor", f"{step.kind} {step.label}", ms))
    return sorted(times, key=lambda s: -s.ms)


def _whole_graph(model: "CompiledModel", ms: float) -> StepTime:
    """A plan without partitions (partitioning off) runs its QDQ graph on TF, as one step."""
    reasons = Counter(f.reason for f in model.plan.fallback).most_common(1)
    return StepTime("tf", f"TF: the whole QDQ graph ({len(model.plan.fallback)} ops)", ms,
                    reasons[0][0] if reasons else "")


def first_run(model: "CompiledModel", arrays: list[np.ndarray]) -> SpeedCheck | None:
    """The check a model makes on its first run: recorded on its plan (the summary and the views
    show it), a SlowerThanFP32Warning naming the causes when INT8 loses. A check that cannot run
    (TF refusing the FP32 graph) is logged, never raised: the user's run succeeded."""
    try:
        with warnings.catch_warnings():  # the user's own call said what there was to say about its inputs
            warnings.simplefilter("ignore")
            result = check(model, arrays)
    except Exception as e:  # noqa: BLE001 - advisory: the model's own output is already computed
        log.warning("could not compare INT8 with FP32 on this model's first run: %s", e)
        return None
    log.info("first run: %s", result.headline())
    if result.slower:
        warnings.warn("\n  ".join(result.summary_lines()), SlowerThanFP32Warning, stacklevel=4)
    return result
