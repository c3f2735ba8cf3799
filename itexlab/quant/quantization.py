"""Quantize a model (a module named apart from its `quantize` function, which `itexlab.quantize` is):
intake, FP32 preparation, calibration data checks, INC static quantization."""

from __future__ import annotations

import dataclasses
import os
import re
import time
import warnings
from typing import Any, Iterable, Mapping

import numpy as np

from ..config import ConfigWarning, QuantConfig
from ..errors import CalibrationDataError, ModelError
from ..frontend import tfgraph
from ..ir import structure
from ..ir.graph import (FLOAT32_MAX, QDQ_OPS, QUANTIZED_DTYPES, DType, Graph, Node, TensorInfo, beyond_float32,
                        fits_integers, normalize, split_ref)
from . import inc
from .matmuls import quantize_matmuls
from .prepare import prepare


@dataclasses.dataclass
class QuantizedModel:
    """The FP32 graph as prepared for calibration and the INT8 graph(s) INC made from it."""

    fp32: Graph
    qdq: Graph                 # QuantizeV2 -> Dequantize around FP32 ops: what oneDNN Graph partitions
    legacy: Graph | None       # INC's default fused quantized TF ops, when asked for
    config: QuantConfig
    seconds: dict[str, float] = dataclasses.field(default_factory=dict)  # time per stage


Batch = list  # one array per model input, in the order of the graph's inputs


def calibration_batches(data: Any, graph: Graph, count: int) -> list[Batch]:
    """Turn calibration data into at most `count` validated batches, each one array per model input
    (in graph.inputs order), of the inputs' dtypes. The data may be an array (samples first) for a
    single-input model; the model's inputs as it takes them (a dict by input name, a list or tuple
    in its order, nested as the model nests them), each samples first, for any model; or a
    tf.data.Dataset or any iterable of batches in either form (or of (inputs, labels) pairs).
    CalibrationDataError names the problem in terms of what the caller gave."""
    if isinstance(data, (str, bytes, os.PathLike)):
        raise CalibrationDataError(f"calibration data is a path ({data!r}); load the array first, e.g. np.load(path)")
    whole = _inputs_of(data, graph) if not _is_batch_iterable(data, graph) else None
    if whole is None and isinstance(data, Mapping):
        missing, unknown = sorted(set(graph.inputs) - set(data)), sorted(set(data) - set(graph.inputs))
        raise CalibrationDataError(f"calibration data is {structure.describe_value(data)}; the model takes "
                                   f"{structure.describe(graph.inputs_nested)} (as {', '.join(map(repr, graph.inputs))})"
                                   + (f": no {', '.join(map(repr, missing))}" if missing else "")
                                   + (f", unknown {', '.join(map(repr, unknown))}" if unknown else ""))
    if whole is not None:
        for name, array in zip(graph.inputs, whole):
            _check_batch(array, graph.tensor(name), _where("calibration data", name, graph))
        sizes = {len(a) for a in whole}
        if len(sizes) > 1:
            raise CalibrationDataError(f"calibration data has {', '.join(f'{len(a)} samples of {n!r}' for n, a in zip(graph.inputs, whole))}: "
                                       "every input needs as many samples")
        size = sizes.pop()
        if size == 0:
            raise CalibrationDataError("calibration data is empty")
        parts = np.array_split(np.arange(size), min(count, size))
        batches: Iterable[Any] = ([a[index[0]:index[-1] + 1] for a in whole] for index in parts)
    else:
        try:
            batches = iter(data)
        except TypeError:
            raise CalibrationDataError(
                f"calibration data must be an array, the model's inputs ({structure.describe(graph.inputs_nested)}), "
                f"a tf.data.Dataset or an iterable of batches, not {type(data).__name__}") from None
    result = []
    for i, batch in enumerate(batches):
        if len(result) == count:
            break
        arrays = _inputs_of(batch, graph)
        if arrays is None and isinstance(batch, (tuple, list)) and len(batch) == 2:
            arrays = _inputs_of(batch[0], graph)  # (inputs, labels) pairs, as Keras and tf.data yield them
        if arrays is None:
            raise CalibrationDataError(f"calibration batch {i} is {structure.describe_value(batch)}; the model takes "
                                       f"{structure.describe(graph.inputs_nested)} (as {', '.join(map(repr, graph.inputs))})")
        checked = [_check_batch(a, graph.tensor(n), _where(f"calibration batch {i}", n, graph))
                   for n, a in zip(graph.inputs, arrays)]
        if len({len(a) for a in checked}) > 1:
            raise CalibrationDataError(f"calibration batch {i} has inputs of different batch sizes "
                                       f"({', '.join(f'{n!r}: {len(a)}' for n, a in zip(graph.inputs, checked))})")
        result.append(checked)
    if not result:
        raise CalibrationDataError("calibration data is empty")
    for k, name in enumerate(graph.inputs):
        if result[0][k].dtype.kind == "f":
            _warn_if_degenerate([batch[k] for batch in result], name)
    return result


def _where(what: str, name: str, graph: Graph) -> str:
    return what if len(graph.inputs) == 1 else f"{what} for input {name!r}"


def _is_batch_iterable(data: Any, graph: Graph) -> bool:
    """Whether data is a sequence of batches rather than the model's inputs: a list or tuple whose
    items are batches for a single-input model, or are themselves structures for a multi-input one."""
    if isinstance(data, np.ndarray) or hasattr(data, "shape") or isinstance(data, dict):
        return False
    if not isinstance(data, (list, tuple)):
        return True  # a tf.data.Dataset, a generator, ...
    return len(graph.inputs) == 1 or _inputs_of(data, graph) is None


def _inputs_of(value: Any, graph: Graph) -> list[np.ndarray] | None:
    """The model's inputs, one array each in graph.inputs order, from a value in any accepted form;
    None when it is not one (e.g. a batch of batches)."""
    try:
        flat = structure.flatten(graph.inputs_nested, value)
    except ValueError:
        return None
    if any(isinstance(a, (dict, list, tuple, str, bytes)) or not hasattr(np.asarray(a), "dtype") for a in flat):
        return None
    arrays = [np.asarray(a) for a in flat]
    return None if any(a.dtype.kind not in "biuf" for a in arrays) and len(graph.inputs) > 1 else arrays


def _check_batch(batch: np.ndarray, info: TensorInfo, where: str) -> np.ndarray:
    expected, dtype = info.shape, np.dtype(QUANTIZED_DTYPES.get(info.dtype, info.dtype))
    if dtype.kind == "f" and batch.dtype.kind != "f":
        raise CalibrationDataError(f"{where} has dtype {batch.dtype}; the model takes {dtype} input")
    if dtype.kind != "f" and batch.dtype != dtype and not fits_integers(batch, dtype):
        raise CalibrationDataError(f"{where} has dtype {batch.dtype}; the model takes {dtype} input"
                                   + (" (and its values do not fit)" if batch.dtype.kind in "iu" else ""))
    if expected is not None:
        if batch.ndim != len(expected):
            single = batch.ndim == len(expected) - 1 and all(w is None or g == w for g, w in zip(batch.shape, expected[1:]))
            hint = " (samples first: one sample x is x[None])" if single else ""
            raise CalibrationDataError(f"{where} has shape {batch.shape}; the model input is "
                                       f"{_shape(expected)}{hint}")
        for axis, (got, want) in enumerate(zip(batch.shape[1:], expected[1:]), 1):
            if want is not None and got != want:
                raise CalibrationDataError(f"{where} has shape {batch.shape}; the model input is "
                                           f"{_shape(expected)} (axis {axis} differs)")
    if batch.size == 0:
        raise CalibrationDataError(f"{where} is empty (shape {batch.shape})")
    if batch.dtype.kind == "f" and not np.isfinite(batch).all():
        raise CalibrationDataError(f"{where} contains NaN or Inf")
    if dtype == np.float32 and beyond_float32(batch):
        raise CalibrationDataError(f"{where} holds {beyond_float32(batch)} value(s) out of float32 range (beyond "
                                   f"±{FLOAT32_MAX:.4g}), which the model's float32 input cannot hold")
    return np.ascontiguousarray(batch, dtype=dtype)


class CalibrationWarning(UserWarning):
    """The calibration data looks unlike real inputs: the INT8 ranges calibrated on it will be too."""


def _warn_if_degenerate(batches: list[np.ndarray], name: str) -> None:
    """Calibration on constant data (all zeros, 1e-30 everywhere) gives ranges of zero width, and
    calibration where a few outliers (one 1e30) span the range leaves every other value a handful of
    INT8 levels: either way INT8 then differs from FP32 on real inputs, without any error."""
    lo = min(float(b.min()) for b in batches)
    hi = max(float(b.max()) for b in batches)
    if hi - lo <= 1e-6 * max(1.0, abs(lo), abs(hi)):
        warnings.warn(f"every calibration value is {lo:.4g}: the INT8 ranges calibrated on it will not fit real inputs "
                      "(calibrate on samples of the data the model will see)", CalibrationWarning, stacklevel=4)
        return
    values = np.concatenate([b.reshape(-1)[::max(1, b.size // 250_000)] for b in batches]).astype(np.float64)
    few = max(1, len(values) // 1000)  # on each side: the values a range set by "a few outliers" leaves out
    if len(values) <= 2 * few:
        return
    q_lo, q_hi = np.partition(values, (few, len(values) - 1 - few))[[few, len(values) - 1 - few]]
    if q_hi > q_lo and hi - lo > OUTLIER_SPAN * (q_hi - q_lo):  # (all but a few values equal: nothing to lose)
        warnings.warn(f"the calibration data of input '{name}' spans [{lo:.4g}, {hi:.4g}], but all except its {few} "
                      f"lowest and {few} highest values lie in [{q_lo:.4g}, {q_hi:.4g}]: a few outliers set its INT8 "
                      "range, and the other values will quantize to a handful of levels (remove the outliers from the "
                      "calibration data)", CalibrationWarning, stacklevel=4)


# A calibration range this many times wider than the span of all but its few most extreme values is set by them.
OUTLIER_SPAN = 100


def _shape(shape: tuple) -> str:
    return "(" + ", ".join("None" if d is None else str(d) for d in shape) + ")"


def freeze_dynamic_ranges(graph: Graph, batches: list[np.ndarray]) -> Graph:
    """Give every QuantizeV2 whose min/max INC left as run-time Min/Max ops constant ranges
    measured on the calibration batches.

    INC freezes ranges from TF Print output it scrapes off stderr; when a line is lost (another
    thread's log message in the middle), the range stays dynamic, and such a quantizer cannot
    become a static oneDNN Quantize. We finish the calibration INC meant to do.
    """
    dynamic = [r for n in graph.nodes if n.op == "QuantizeV2" for r in n.inputs[1:3] if not graph.is_constant(r)]
    if not dynamic:
        return graph
    dynamic = list(dict.fromkeys(normalize(r) for r in dynamic))
    measure = tfgraph.GraphFunction(graph, graph.inputs, dynamic)
    values = [measure(*batch) for batch in batches]
    nodes = {}
    for i, r in enumerate(dynamic):
        observed = np.stack([np.asarray(v[i], np.float32) for v in values])
        is_min = graph.node(r).op == "Min"
        value = (observed.min(axis=0) if is_min else observed.max(axis=0)).astype(np.float32)
        nodes[split_ref(r)[0]] = Node(split_ref(r)[0], "Const", [], {"dtype": DType("float32"), "value": value},
                                      [TensorInfo("float32", tuple(value.shape))])
    return graph.replace([nodes.get(n.name, n) for n in graph.nodes])


def quantize(model: Any, calibration_data: Any, config: QuantConfig | None = None, *,
             legacy: bool = False, progress: bool = True) -> QuantizedModel:
    """Freeze and prepare `model`, then let INC calibrate it into a QDQ graph (and, with
    legacy=True, also INC's default fused-op INT8 graph for comparison)."""
    config = config or QuantConfig()
    seconds: dict[str, float] = {}
    start = time.perf_counter()
    graph = tfgraph.load(model)
    quantized_ops = sorted({n.op for n in graph.nodes if n.op in QDQ_OPS or n.op.startswith("Quantized")})
    if quantized_ops:
        raise ModelError(f"the model is already quantized (it has {', '.join(quantized_ops)} ops): partition it with "
                         "make_plan (or `itexlab inspect`), or quantize its FP32 original")
    fp32 = prepare(graph)
    seconds["load_and_prepare"] = time.perf_counter() - start
    for pattern in config.keep_fp32:  # INC matches node names from their start (re.match)
        if not any(re.match(pattern, n.name) for n in fp32.nodes):
            warnings.warn(f"keep_fp32 pattern {pattern!r} matches no op of the model: nothing is kept in FP32 for it "
                          "(INC matches node names from their start)", ConfigWarning, stacklevel=2)
    batches = calibration_batches(calibration_data, fp32, config.calibration_batches)
    graph_def = tfgraph.graph_def_from_graph(fp32)

    def run_inc(qdq: bool) -> Graph:
        start = time.perf_counter()
        result = inc.quantize(graph_def, config, batches, fp32.inputs, qdq=qdq, progress=progress)
        seconds["inc_qdq" if qdq else "inc_legacy"] = time.perf_counter() - start
        start = time.perf_counter()
        graph = freeze_dynamic_ranges(tfgraph.graph_from_graph_def(result, fp32.inputs, fp32.outputs,
                                                                   fp32.input_structure, fp32.output_structure), batches)
        seconds["import_qdq" if qdq else "import_legacy"] = time.perf_counter() - start
        return graph

    qdq = quantize_matmuls(run_inc(qdq=True), batches, config.keep_fp32)  # those INC leaves in FP32
    _warn_about_empty_ranges(qdq)
    return QuantizedModel(fp32, qdq, run_inc(qdq=False) if legacy else None, config, seconds)


def _warn_about_empty_ranges(qdq: Graph) -> None:
    """Tensors that were all zero on the calibration data get a range of zero width: whatever they
    hold on real inputs, INT8 cannot represent it."""
    empty = [n.name for n in qdq.nodes if n.op == "QuantizeV2" and not qdq.is_constant(n.inputs[0])
             and all(qdq.is_constant(r) and not np.any(qdq.constant(r)) for r in n.inputs[1:3])]
    if empty:
        warnings.warn(f"{len(empty)} quantized tensor(s) were zero on all calibration data ({', '.join(empty[:3])}"
                      f"{', ...' if len(empty) > 3 else ''}): INT8 cannot represent what they hold on other inputs",
                      CalibrationWarning, stacklevel=3)
