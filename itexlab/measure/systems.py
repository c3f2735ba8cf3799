"""The systems itexlab compares: one typed registry, so that adding a system is one entry.

Nothing heavy is imported here (each system's `build` imports what it needs when called), so the
command line can list the systems before TensorFlow, oneDNN or numpy start their thread pools.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any, Callable, Sequence

if TYPE_CHECKING:
    import numpy as np

    from ..ir.graph import Graph
    from ..quant.quantization import QuantizedModel
    from ..runtime.executor import CompiledModel

Runner = Callable[["np.ndarray"], Sequence["np.ndarray"]]


@dataclasses.dataclass
class Subject:
    """What every system is built from: one model, its calibration data, the FP32 graph, INC's
    output and itexlab's compiled INT8 model."""

    keras_model: Any
    calibration: "np.ndarray"
    stock: "Graph"
    quantized: "QuantizedModel"
    int8: "CompiledModel"


@dataclasses.dataclass(frozen=True)
class System:
    name: str
    description: str
    colour: str                           # in plots
    build: Callable[[Subject], Runner]    # may raise: the system is then unavailable here, with the reason


def _one_sample(s: Subject) -> list:
    """The first calibration sample, one array per model input (INC's graphs are tried on it)."""
    return [array[:1] for array in s.int8.inputs_of(s.calibration)]


def _tf_fp32(s: Subject) -> Runner:
    from ..frontend import tfgraph

    return tfgraph.GraphFunction(s.stock, s.stock.inputs, s.stock.outputs)


def _tf_int8_legacy(s: Subject) -> Runner:
    from ..frontend import tfgraph

    if s.quantized.legacy is None:
        raise ValueError("the model was quantized without legacy=True: INC made no legacy graph")
    return tfgraph.legacy_int8_function(s.quantized.legacy, _one_sample(s))


def _tf_qdq(s: Subject) -> Runner:
    from ..frontend import tfgraph

    return tfgraph.tried_graph_function(s.quantized.qdq, _one_sample(s))


def _tflite_int8(s: Subject) -> Runner:
    from ..backend import cpu
    from . import tflite

    return tflite.int8_system(s.keras_model, s.calibration, cpu.thread_count())


TF_FP32 = System("tf-fp32", "the FP32 model on stock TensorFlow", "#9e9e9e", _tf_fp32)
TF_INT8_LEGACY = System("tf-int8-legacy", "INC's default INT8 output (fused quantized TF ops) on stock TensorFlow",
                        "#92c5de", _tf_int8_legacy)
TF_QDQ = System("tf-qdq", "the QDQ graph on stock TensorFlow (quantization emulated in FP32)", "#d1e5f0", _tf_qdq)
ITEXLAB_INT8 = System("itexlab-int8", "the QDQ graph partitioned and run by itexlab's oneDNN Graph executor",
                      "#4d9221", lambda s: s.int8)
TFLITE_INT8 = System("tflite-int8", "TFLite full-integer INT8 (XNNPACK), from the same Keras model", "#f4a582",
                     _tflite_int8)

SYSTEMS: dict[str, System] = {s.name: s for s in (TF_FP32, TF_INT8_LEGACY, TF_QDQ, ITEXLAB_INT8, TFLITE_INT8)}
# The subject of every comparison: always measured, never reported as unavailable.
SUBJECT = ITEXLAB_INT8.name
# The baseline speedups are reported against.
BASELINE = TF_FP32.name


def chosen(names: Sequence[str]) -> list[System]:
    """The systems named, in the registry's order, itexlab-int8 always among them."""
    unknown = set(names) - set(SYSTEMS)
    if unknown:
        raise ValueError(f"unknown systems {sorted(unknown)}; choose from {', '.join(SYSTEMS)}")
    return [s for s in SYSTEMS.values() if s.name in names or s.name == SUBJECT]
