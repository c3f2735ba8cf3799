"""The executor: a plan compiled into one native program.

The plan's partitions become one oneDNN graph again (their ops as the plan recorded them), whose
partitions are compiled; with the TF fallback subgraphs they run as one ordered list of steps
(itexlab.runtime.schedule) inside the native module. Compiled partitions are cached by input
shapes inside the native program; intermediate tensors share pooled buffers by lifetime.
"""

from __future__ import annotations

import dataclasses
import math
import time
import warnings

import numpy as np

from ..backend import onednn
from ..config import check_speed_default
from ..errors import InputError, ModelError
from ..frontend import tfgraph
from ..ir import structure
from ..ir.graph import FLOAT32_MAX, Graph, TensorInfo, beyond_float32, fits_integers, normalize
from ..ir.plan import Fallback, OneDnnOp, Plan, check
from ..ir.speed import SpeedCheck
from . import speed
from .schedule import identity_aliases, resolve, schedule

# TF dtype -> numpy dtype for tensors the native side holds (quantized types as plain integers).
NUMPY_DTYPES = {"float32": "float32", "qint8": "int8", "quint8": "uint8", "int32": "int32", "int64": "int64",
                "bool": "bool", "int8": "int8", "uint8": "uint8", "float64": "float64"}


class ShapeFallbackWarning(UserWarning):
    """oneDNN cannot compile a partition for an input shape: for that shape its ops run on TF."""


class InputRangeWarning(UserWarning):
    """An input lies far outside the range its INT8 quantizer was calibrated on: quantization
    clamps it, so the result says little about the input."""


@dataclasses.dataclass(frozen=True)
class InputSpec:
    """What one model input takes, and the range its INT8 quantizer was calibrated on."""

    index: int
    info: TensorInfo
    dtype: np.dtype
    calibrated: tuple[float, float] | None   # (min, max) of the QuantizeV2s that read it directly
    label: str = ""                          # "input 0", or "input 1 ('attention_mask')" among several

    @classmethod
    def of(cls, graph: Graph, index: int) -> "InputSpec":
        reference = graph.inputs[index]
        ranges = [(float(np.min(graph.constant(q.inputs[1]))), float(np.max(graph.constant(q.inputs[2]))))
                  for q in graph.consumers().get(normalize(reference), [])
                  if q.op == "QuantizeV2" and all(graph.is_constant(r) for r in q.inputs[1:3])]
        calibrated = (min(lo for lo, _ in ranges), max(hi for _, hi in ranges)) if ranges else None
        info = graph.tensor(reference)
        label = f"input {index}" if len(graph.inputs) == 1 else f"input {index} ({reference!r})"
        return cls(index, info, np.dtype(NUMPY_DTYPES[info.dtype]), calibrated, label)

    def check(self, x, check_values: bool) -> np.ndarray:
        """The input as the executor takes it, or InputError. Attribute tests and a plain loop, no
        numpy type predicates: at AlexNet's 0.15 ms per image, the check was 1% of the run."""
        x = np.asarray(x)
        if self.dtype.kind == "f" and x.dtype.kind != "f":
            raise InputError(f"{self.label} has dtype {x.dtype}; the model takes {self.dtype}")
        if self.dtype.kind != "f" and x.dtype != self.dtype and not fits_integers(x, self.dtype):
            lost = " (fractions and values outside its range would be lost: convert it yourself)" \
                if x.dtype.kind == "f" else ""
            raise InputError(f"{self.label} has dtype {x.dtype}; the model takes {self.dtype}{lost}")
        shape = self.info.shape
        if shape is not None:
            fits = x.ndim == len(shape)
            for got, want in zip(x.shape, shape):
                fits = fits and (want is None or got == want)
            if not fits:
                raise InputError(f"{self.label} has shape {x.shape}; the model takes {self.info.describe()}")
        if x.size == 0:
            raise InputError(f"{self.label} is empty (shape {x.shape})")
        if check_values and self.dtype == np.float32 and beyond_float32(x):
            raise InputError(f"{self.label} holds {beyond_float32(x)} value(s) out of float32 range "
                             f"(beyond ±{FLOAT32_MAX:.4g}), which the model's float32 input cannot hold")
        x = np.ascontiguousarray(x, dtype=self.dtype)
        if check_values and self.dtype.kind == "f":
            self._check_values(x)
        return x

    def _check_values(self, x: np.ndarray) -> None:
        lo, hi = float(x.min()), float(x.max())  # NaN propagates through both
        if not (-math.inf < lo and hi < math.inf):
            bad = int(np.count_nonzero(~np.isfinite(x)))
            raise InputError(f"{self.label} holds {bad} NaN or infinite value(s) of {x.size}: INT8 would "
                             "turn them into ordinary-looking numbers (check_values=False skips this check)")
        if self.calibrated is not None:
            low, high = self.calibrated
            width = high - low
            if lo < low - width or hi > high + width:
                warnings.warn(f"{self.label} spans [{lo:.4g}, {hi:.4g}], but the model was calibrated on "
                              f"[{low:.4g}, {high:.4g}]: INT8 clamps everything outside that range (check the "
                              "input's scaling)", InputRangeWarning, stacklevel=4)


# Input shapes each step keeps compiled; the least recently used goes beyond this (a server that
# sees many batch sizes in rotation recompiles rather than growing without bound).
SHAPES_PER_STEP = 8


class CompiledModel:
    """A plan ready to run: call it with a batch (numpy) to get the model's outputs.

    shapes_per_step: how many input shapes (batch sizes) each partition keeps compiled at once.
    check_values: refuse float inputs holding NaN or infinities (InputError) and warn about inputs
        far outside the range the model was calibrated on (InputRangeWarning): INT8 would turn
        both into ordinary-looking numbers. False skips the check (see README for its cost).
    check_speed: on the first run, time INT8 against the plan's graph in FP32 on stock TF (a few
        runs of each, at most 16 samples of the first batch; itexlab.runtime.speed), record it on
        the plan (its summary and views show it; `speed` reads it there) and warn when INT8 is slower
        (SlowerThanFP32Warning, naming the steps that cost the time). False skips it; None (the
        default) follows ITEXLAB_CHECK_SPEED (on unless it is 0).
    """

    def __init__(self, plan: Plan, keep_onednn_layouts: bool = True, shapes_per_step: int = SHAPES_PER_STEP,
                 check_values: bool = True, check_speed: bool | None = None):
        check(plan)  # a plan from a file may have been edited: its parts must fit before anything runs
        if not plan.runnable():
            raise ModelError("this plan holds no weights (read from JSON alone?): give Plan.from_json its arrays")
        _check_weights_fit_this_cpu(plan)
        self.plan = plan
        self.check_values = check_values
        self._speed_pending = check_speed_default() if check_speed is None else check_speed
        self._options = {"keep_onednn_layouts": keep_onednn_layouts, "shapes_per_step": shapes_per_step}
        self._substitutes: dict[tuple, CompiledModel] = {}  # input shapes -> a model for those shapes
        graph = plan.source
        self.inputs = [InputSpec.of(graph, i) for i in range(len(graph.inputs))]
        self._fitting_shapes: set[tuple] = set()
        if not plan.partitions:  # partitioning is off: the whole QDQ graph runs on stock TF
            self._tf = tfgraph.GraphFunction(graph, graph.inputs, graph.outputs)
            self._program, self.steps = None, []
            return
        self._tf = None
        partitioned, compiled = _onednn_graph(plan)
        alias = identity_aliases(plan)
        self.steps = schedule(plan, compiled, alias)
        ids = dict(partitioned.tensor_ids)
        for step in self.steps:
            for r in step.inputs + step.outputs:
                ids.setdefault(r, len(ids) + 1)
        outputs = [resolve(alias, r) for r in graph.outputs]
        for r in graph.inputs + outputs:
            ids.setdefault(r, len(ids) + 1)
        dtypes = {ids[r]: NUMPY_DTYPES[(partitioned.tensors.get(r) or graph.tensor(r)).dtype] for r in ids}
        used = {r for s in self.steps if s.kind != "callback" for r in s.inputs}
        constants = {ids[r]: v for r, v in plan.constants.items() if r in used}
        opaque = [ids[r] for r in plan.layout_free if r in ids] if keep_onednn_layouts else []
        self._program = onednn.program(
            partitioned,
            [dataclasses.replace(s, inputs=[ids[r] for r in s.inputs], outputs=[ids[r] for r in s.outputs])
             for s in self.steps],
            [ids[r] for r in graph.inputs], [ids[r] for r in outputs], dtypes, constants, opaque, shapes_per_step)

    # ---------------------------------------------------------------------------------- running

    def __call__(self, *inputs) -> list[np.ndarray]:
        """The model's outputs, as a flat list, for its inputs: one array, the inputs as the model
        nests them (a dict by input name, say), or one array per input in order."""
        arrays = self.inputs_of(*inputs)
        self._check_shapes(arrays)
        outputs = self._run(arrays)
        if self._speed_pending:
            self.check_speed(*arrays)
        return outputs

    def check_speed(self, *inputs) -> SpeedCheck | None:
        """Time INT8 against the plan's graph in FP32 on stock TF on these inputs (as the first run
        does, see check_speed above), record it on the plan, and warn when INT8 is
        slower. None when TF cannot run the FP32 graph (logged)."""
        self._speed_pending = False
        self.plan.speed = speed.first_run(self, self.inputs_of(*inputs))
        return self.plan.speed

    @property
    def speed(self) -> SpeedCheck | None:
        """INT8 against FP32 as the last check of this plan measured it (see check_speed)."""
        return self.plan.speed

    def inputs_of(self, *inputs) -> list[np.ndarray]:
        """The model's inputs as it runs them: one checked array per input, in the graph's order,
        of the input's dtype (InputError names what does not fit). Comparisons feed every system
        these same arrays."""
        nested, names = self.plan.source.inputs_nested, self.plan.source.inputs
        try:
            inputs = structure.arguments(nested, inputs)
        except ValueError:
            given = structure.describe_value(inputs[0] if len(inputs) == 1 else list(inputs))
            raise InputError(f"the model takes {len(names)} input(s) ({', '.join(map(repr, names))}) as "
                             f"{structure.describe(nested)}, got {given}") from None
        arrays = [spec.check(x, self.check_values) for spec, x in zip(self.inputs, inputs)]
        if len({len(a) for a in arrays if a.ndim}) > 1:
            raise InputError("the inputs have different batch sizes (" + ", ".join(
                f"{name!r}: {len(a)}" for name, a in zip(self.plan.source.inputs, arrays)) + ")")
        return arrays

    def _run(self, arrays: list[np.ndarray]) -> list[np.ndarray]:
        """Run checked inputs. Input shapes for which oneDNN cannot compile a partition (oneDNN 3.2:
        a global mean over a 1x1 image) run on a model that leaves that partition to TF: said once
        per shape (ShapeFallbackWarning), never an error, for shapes the model takes."""
        if self._program is None:
            return self._tf(*arrays)
        shapes = tuple(a.shape for a in arrays)
        if shapes in self._substitutes:
            return self._substitutes[shapes]._run(arrays)
        try:
            return list(self._program.run(arrays))
        except ValueError as e:  # the native side refuses shapes it cannot compute (an image too small)
            raise InputError(str(e)) from e
        except onednn.CompileError as e:
            failed = next(p for p in self.plan.partitions if p.name == onednn.failed_step(e))
            warnings.warn(f"oneDNN cannot compile partition {failed.id} ({' + '.join(n.op for n in failed.compute_nodes)})"
                          f" for inputs of shape {', '.join(map(str, shapes))}: for that shape its {len(failed.nodes)} "
                          f"ops run on TensorFlow ({str(e).split(': ', 1)[-1]})", ShapeFallbackWarning, stacklevel=3)
            reason = f"oneDNN cannot compile it for inputs of shape {', '.join(map(str, shapes))}"
            self._substitutes[shapes] = CompiledModel(on_tensorflow(self.plan, failed.id, reason), check_values=False,
                                                      check_speed=False, **self._options)
            return self._substitutes[shapes]._run(arrays)

    def _check_shapes(self, arrays: list[np.ndarray]) -> None:
        """Inputs whose non-batch dimensions the model leaves open are checked against TF's shape
        inference, once per shape: an image too small for the model must not come back as numbers."""
        shapes = tuple(a.shape for a in arrays)
        key = tuple(s[1:] for s in shapes)
        if key in self._fitting_shapes or not any(None in (spec.info.shape or (None,))[1:] for spec in self.inputs):
            return
        problem = tfgraph.shape_problem(self.plan.source, shapes)
        if problem:
            raise InputError(f"inputs of shape {', '.join(map(str, shapes))} do not fit the model: {problem}")
        self._fitting_shapes.add(key)

    @property
    def compiled_partitions(self) -> int:
        """How many (partition, input shape) pairs have been compiled so far."""
        return 0 if self._program is None else self._program.compiled_count

    @property
    def pool_bytes(self) -> int:
        """Bytes the executor holds for intermediate tensors (reused between steps and calls)."""
        return 0 if self._program is None else self._program.pool_bytes

    def timed_run(self, *inputs) -> tuple[float, list[tuple[str, float]]]:
        """One run: its seconds end to end as the caller sees them, and the seconds of each step."""
        if self._program is None:
            start = time.perf_counter()
            self(*inputs)
            return time.perf_counter() - start, []
        self._program.reset_profile()
        self._program.set_profiling(True)
        try:
            start = time.perf_counter()
            self(*inputs)
            wall = time.perf_counter() - start
        finally:
            self._program.set_profiling(False)
        return wall, [(s.label, seconds) for s, (_, seconds, _) in zip(self.steps, self._program.profile())]

    def profile(self, batch: np.ndarray, repeats: int = 10) -> list[tuple[str, float]]:
        """Mean seconds per step over `repeats` runs: where the time goes."""
        if self._program is None:
            return []
        self(batch)
        return mean_step_times([self.timed_run(batch)[1] for _ in range(repeats)])


def on_tensorflow(plan: Plan, partition_id: int, reason: str) -> Plan:
    """The plan with one partition's ops left to TF (with `reason`): the tensors it read from other
    partitions are read by TF now, so they keep a plain layout."""
    gone = plan.partitions[partition_id]
    partitions = [dataclasses.replace(p, id=i) for i, p in enumerate(p for p in plan.partitions if p is not gone)]
    kept = {t.name for p in partitions for t in p.inputs if t.constant}
    return dataclasses.replace(
        plan, partitions=partitions, fallback=plan.fallback + [Fallback(n.name, n.op, reason) for n in gone.nodes],
        constants={name: value for name, value in plan.constants.items() if name in kept},
        layout_free=[r for r in plan.layout_free if r not in {t.name for t in gone.inputs + gone.outputs}])


def _check_weights_fit_this_cpu(plan: Plan) -> None:
    """A plan made where int8 kernels have VNNI holds 8-bit weights; on a CPU whose kernels sum
    pairs in int16 (a plan saved on one machine, loaded on another) they would overflow silently."""
    isa = onednn.effective_isa()
    if plan.weight_bits != 8 or plan.isa == isa or not onednn.int8_pairs_saturate(isa):
        return
    if any(p.quantized and {"Convolution", "MatMul"} & set(p.onednn_ops) for p in plan.partitions):
        raise ModelError(f"this plan was made for oneDNN ISA {plan.isa} with 8-bit weights; on this CPU ({isa}) "
                         "oneDNN's int8 kernels add weight pairs in int16, which 8-bit weights can overflow: make "
                         "the plan here (itexlab.make_plan on the saved qdq.pb), which picks 7-bit weights")


def mean_step_times(runs: list[list[tuple[str, float]]]) -> list[tuple[str, float]]:
    """Per step, its mean seconds over runs given as `CompiledModel.timed_run` reports them."""
    if not runs:
        return []
    return [(label, float(np.mean([run[i][1] for run in runs]))) for i, (label, _) in enumerate(runs[0])]


def _onednn_graph(plan: Plan) -> tuple[onednn.PartitionedGraph, dict[int, onednn.OneDnnPartition]]:
    """The plan's partitions as one oneDNN graph, and the oneDNN partition each one is (by plan
    partition id). Every partition output gets a Wildcard reader, as the graph outside did when
    the plan was made, so oneDNN draws the same borders; a oneDNN that draws others is refused."""
    ops = [op for p in plan.partitions for op in p.ops]
    tensors = {r: t for p in plan.partitions for r, t in p.tensors.items()}
    first_id = max(op.id for op in ops) + 1
    outputs = dict.fromkeys(t.name for p in plan.partitions for t in p.outputs)
    readers = [OneDnnOp(first_id + i, "Wildcard", "itexlab-outside", [r], []) for i, r in enumerate(outputs)]
    partitioned = onednn.partition(ops + readers, tensors, plan.constants.keys())
    by_ops = {frozenset(p.op_ids): p for p in partitioned.partitions if p.supported}
    compiled = {}
    for p in plan.partitions:
        found = by_ops.get(frozenset(op.id for op in p.ops))
        if found is None or set(found.inputs) != {t.name for t in p.inputs} \
                or set(found.outputs) != {t.name for t in p.outputs}:
            raise ModelError(f"oneDNN {'.'.join(map(str, onednn.VERSION))} does not partition the ops of partition "
                             f"{p.id} ({p.name}) as the plan does: make the plan again with this itexlab")
        compiled[p.id] = found
    return partitioned, compiled
