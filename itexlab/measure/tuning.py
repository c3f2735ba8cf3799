"""Keep ops in FP32 and see what it buys: each attempt re-plans the same calibrated QDQ graph with
the chosen ops reading FP32 (no new calibration), then measures accuracy and latency against the
FP32 model in the same sitting. The attempts form a history table that can be plotted.
`autotune` lets INC's tuning choose: each trial calibrates again with one more op in FP32."""

from __future__ import annotations

import dataclasses
import re
import warnings
from typing import TYPE_CHECKING, Callable, Iterable, Sequence

import numpy as np

from ..config import PartitionConfig, QuantConfig
from ..errors import TuningError
from ..frontend import tfgraph
from ..ir.graph import QDQ_OPS
from ..ir.plan import Plan
from ..lower.partition import make_plan
from ..lower.qdq import without_quantization
from ..quant.quantization import QuantizedModel
from ..runtime.executor import CompiledModel
from . import timing

if TYPE_CHECKING:
    import pandas as pd

Runner = Callable[[np.ndarray], Sequence[np.ndarray]]


def int8_ops(plan: Plan) -> int:
    """TF compute ops (not QuantizeV2/Dequantize) inside INT8 partitions."""
    return sum(len(p.compute_nodes) for p in plan.partitions if p.quantized)


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
        model = CompiledModel(plan, check_speed=False)  # measured against FP32 below
        accuracy = float(self.evaluate(model))
        measured = timing.measure({"fp32": self._fp32, "int8": model}, "fallback", self.batch, self.repeats,
                                  progress=None)
        latency = {r.system: r.latency_ms for r in measured}
        result = Attempt(keep, int8_ops(plan), accuracy, self._fp32_accuracy, latency["int8"], latency["fp32"])
        self.attempts.append(result)
        self.plan = plan
        return result

    def partition_ops(self, partition_id: int) -> list[str]:
        """The compute ops (not Quantize/Dequantize) of a partition of the current plan."""
        return [n.name for n in self.plan.partitions[partition_id].compute_nodes]

    def history(self):
        """One row per attempt: what was kept in FP32, INT8 ops, accuracy, latency and speedup vs FP32."""
        import pandas as pd

        return pd.DataFrame([{"keep_fp32": ", ".join(a.keep_fp32) or "(all INT8)", "int8_ops": a.int8_ops,
                              "accuracy": a.accuracy, "fp32_accuracy": a.fp32_accuracy,
                              "latency_ms": a.latency_ms, "fp32_latency_ms": a.fp32_latency_ms,
                              "speedup_vs_fp32": a.speedup} for a in self.attempts])


class TuningWarning(UserWarning):
    """No configuration tried met the accuracy criterion."""


@dataclasses.dataclass
class TuningResult:
    model: CompiledModel        # the first trial that met the criterion, else the most accurate one
    quantized: QuantizedModel   # its FP32 and QDQ graphs (for compare_layers, FallbackSession, save)
    met: bool
    baseline: float             # eval_fn on the FP32 model
    trials: "pd.DataFrame"      # one row per trial, in order


def autotune(model, calibration, eval_fn: Callable[[Runner], float], tolerable_loss: float = 0.01,
             max_trials: int = 5, config: QuantConfig | None = None, partition: PartitionConfig | None = None,
             samples: int = 8, candidates: int = 32, progress: bool = True) -> TuningResult:
    """Accuracy-driven quantization with INC's tuning: trial 1 quantizes everything; each further
    trial keeps one more op in FP32, the most sensitive first. Sensitivity is measured as INC's
    op-wise fallback does: eval_fn with that op alone in FP32 (on the first calibration, no new
    one), for up to `candidates` ops, those where INT8 error enters first (compare_layers' own SQNR)
    tried; INC stops at the first trial whose eval_fn is within
    `tolerable_loss` (relative) of the FP32 model's. Every trial is run as itexlab runs it (QDQ graph,
    oneDNN partitions) and eval_fn gets that model (a function of a batch, like CompiledModel).
    When no trial meets the criterion, the most accurate is returned with a TuningWarning."""
    import pandas as pd

    from ..quant import inc
    from ..quant.quantization import calibration_batches, freeze_dynamic_ranges, quantize

    config = config or QuantConfig()
    first = quantize(model, calibration, config, progress=progress)
    batches = calibration_batches(calibration, first.fp32, config.calibration_batches)
    first_samples = [array[:samples] for array in batches[0]]
    culprits = _ops_by_sensitivity(first, _ops_where_error_enters(first, first_samples, partition)[:candidates],
                                   eval_fn, partition)
    configs = [dataclasses.replace(config, keep_fp32=config.keep_fp32 + tuple(re.escape(n) + "$" for n in culprits[:k]))
               for k in range(min(max_trials, len(culprits) + 1))]
    trials: list[dict] = []
    models: list[tuple[CompiledModel, QuantizedModel]] = []
    baseline: list[float] = []

    def evaluate(graph_def: tfgraph.GraphDef) -> float:
        if not baseline:  # INC evaluates the FP32 model first
            fp32 = tfgraph.GraphFunction(first.fp32, first.fp32.inputs, first.fp32.outputs)
            baseline.append(_metric(eval_fn, fp32, "the FP32 model"))
            return baseline[0]
        trial = len(trials)
        fp32 = first.fp32
        qdq = freeze_dynamic_ranges(tfgraph.graph_from_graph_def(graph_def, fp32.inputs, fp32.outputs, fp32.input_structure,
                                                                 fp32.output_structure), batches)
        plan = make_plan(qdq, partition)
        compiled = CompiledModel(plan, check_speed=False)  # the chosen one is checked below
        metric = _metric(eval_fn, compiled, f"trial {trial + 1}")
        kept = culprits[:trial]
        trials.append({"trial": trial + 1, "keep_fp32": ", ".join(kept) or "(all INT8)",
                       "int8_ops": int8_ops(plan),
                       "metric": metric, "relative_loss": (baseline[0] - metric) / abs(baseline[0]) if baseline[0] else 0.0,
                       "meets": metric >= baseline[0] * (1 - tolerable_loss)})
        models.append((compiled, dataclasses.replace(first, qdq=qdq, config=configs[trial])))
        return metric

    inc.autotune(tfgraph.graph_def_from_graph(first.fp32), configs, batches, first.fp32.inputs, evaluate,
                 tolerable_loss, max_trials)
    frame = pd.DataFrame(trials)
    meeting = [i for i, t in enumerate(trials) if t["meets"]]
    best = meeting[0] if meeting else int(np.argmax([t["metric"] for t in trials]))
    if not meeting:
        warnings.warn(f"no configuration of the {len(trials)} tried met the criterion (within {tolerable_loss:.2%} of "
                      f"the FP32 model's {baseline[0]:.4g}); the most accurate, trial {best + 1} "
                      f"({trials[best]['metric']:.4g}), is returned", TuningWarning, stacklevel=2)
    models[best][0].check_speed(*batches[0])
    return TuningResult(models[best][0], models[best][1], bool(meeting), baseline[0], frame)


def _metric(eval_fn: Callable[[Runner], float], model: Runner, what: str) -> float:
    try:
        value = eval_fn(model)
    except Exception as e:  # noqa: BLE001  (the user's function: name it, keep its traceback)
        raise TuningError(f"eval_fn raised {type(e).__name__} on {what}: {e}") from e
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise TuningError(f"eval_fn returned {value!r} on {what}; it must return a number (higher is better)") from None
    if not np.isfinite(value):
        raise TuningError(f"eval_fn returned {value} on {what}; it must return a finite number")
    return value


def _ops_by_sensitivity(quantized: QuantizedModel, ops: list[str], eval_fn, partition: PartitionConfig | None
                        ) -> list[str]:
    """The ops, those whose FP32 version alone gains the most first (ties keep the given order)."""
    gains = []
    for op in ops:
        plan = make_plan(without_quantization(quantized.qdq, {op}), partition)
        gains.append(_metric(eval_fn, CompiledModel(plan), f"the model with {op} in FP32"))
    return [ops[i] for i in sorted(range(len(ops)), key=lambda i: -gains[i])]


def _ops_where_error_enters(quantized: QuantizedModel, images: np.ndarray, partition: PartitionConfig | None) -> list[str]:
    """The compute ops that read quantized tensors, worst own SQNR first (see compare_layers)."""
    from .layers import compare_layers

    qdq = quantized.qdq
    consumers = qdq.consumers()
    ops: list[str] = []
    for row in compare_layers(quantized, images, config=partition).itertuples():
        for dequantize in consumers.get(row.quantizer, []):
            if dequantize.op == "Dequantize":
                ops += [c.name for c in consumers.get(dequantize.name, []) if c.op not in QDQ_OPS]
    return list(dict.fromkeys(ops))
