"""Keep ops in FP32 and see what it buys: each attempt re-plans the same calibrated QDQ graph with
the chosen ops reading FP32 (no new calibration), then measures accuracy and latency against the
FP32 model in the same sitting. The attempts form a history table that can be plotted."""

from __future__ import annotations

import dataclasses
from typing import Callable, Iterable, Sequence

import numpy as np

from ..config import PartitionConfig
from ..frontend import tfgraph
from ..ir.plan import Plan
from ..lower.partition import make_plan
from ..lower.qdq import without_quantization
from ..quant.quantization import QuantizedModel
from ..runtime.executor import CompiledModel
from . import timing

Runner = Callable[[np.ndarray], Sequence[np.ndarray]]
QUANTIZATION_OPS = {"QuantizeV2", "Dequantize"}


@dataclasses.dataclass
class Attempt:
    keep_fp32: tuple[str, ...]   # TF node names kept in FP32
    int8_ops: int                # TF compute ops inside INT8 partitions
    accuracy: float
    fp32_accuracy: float
    latency_ms: float
    fp32_latency_ms: float

    @property
    def speedup(self) -> float:
        return self.fp32_latency_ms / self.latency_ms


class FallbackSession:
    """One calibrated model, tried with different ops kept in FP32.

    evaluate(runner) -> accuracy of a model given as a function of a batch (any metric where higher
    is better); `batch`: the inputs latency is measured on."""

    def __init__(self, quantized: QuantizedModel, evaluate: Callable[[Runner], float], batch: np.ndarray,
                 repeats: int = 10, config: PartitionConfig | None = None):
        self.quantized, self.evaluate, self.batch = quantized, evaluate, batch
        self.repeats, self.config = repeats, config
        fp32 = quantized.fp32
        self._fp32 = tfgraph.GraphFunction(fp32, fp32.inputs, fp32.outputs)
        self._fp32_accuracy = float(evaluate(self._fp32))
        self.attempts: list[Attempt] = []
        self.plan: Plan | None = None
        self.attempt(())

    def attempt(self, keep_fp32: Iterable[str]) -> Attempt:
        """Re-plan with exactly these nodes in FP32 (each attempt starts from the calibrated graph) and
        measure it."""
        keep = tuple(dict.fromkeys(keep_fp32))
        unknown = [n for n in keep if n not in self.quantized.qdq]
        if unknown:
            raise ValueError(f"no node named {', '.join(unknown)} in the QDQ graph")
        graph = without_quantization(self.quantized.qdq, set(keep)) if keep else self.quantized.qdq
        plan = make_plan(graph, self.config)
        model = CompiledModel(plan)
        accuracy = float(self.evaluate(model))
        measured = timing.measure({"fp32": self._fp32, "int8": model}, "fallback", self.batch, self.repeats,
                                  progress=None)
        latency = {r.system: r.latency_ms for r in measured}
        int8_ops = sum(1 for p in plan.partitions if p.quantized for n in p.nodes if n.op not in QUANTIZATION_OPS)
        result = Attempt(keep, int8_ops, accuracy, self._fp32_accuracy, latency["int8"], latency["fp32"])
        self.attempts.append(result)
        self.plan = plan
        return result

    def partition_ops(self, partition_id: int) -> list[str]:
        """The compute ops (not Quantize/Dequantize) of a partition of the current plan."""
        return [n.name for n in self.plan.partitions[partition_id].nodes if n.op not in QUANTIZATION_OPS]

    def history(self):
        """One row per attempt: what was kept in FP32, INT8 ops, accuracy, latency and speedup vs FP32."""
        import pandas as pd

        return pd.DataFrame([{"keep_fp32": ", ".join(a.keep_fp32) or "(all INT8)", "int8_ops": a.int8_ops,
                              "accuracy": a.accuracy, "fp32_accuracy": a.fp32_accuracy,
                              "latency_ms": a.latency_ms, "fp32_latency_ms": a.fp32_latency_ms,
                              "speedup_vs_fp32": a.speedup} for a in self.attempts])
