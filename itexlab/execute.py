"""The executor: a plan compiled into one native program.

oneDNN partitions and TF fallback subgraphs run in one ordered list of steps inside the native
module; Python is entered only for the fallback subgraphs (whole TF functions, never op by op).
Compiled partitions are cached by input shapes inside the native program. Partitions that only
concatenate bytes run as a oneDNN concat primitive, reshapes as views; intermediate tensors share
pooled buffers by lifetime.
"""

from __future__ import annotations

import dataclasses
import math
import time
import warnings
from typing import Callable, Literal

import numpy as np

from . import onednn, tfgraph
from .errors import InputError
from .graph import QUANTIZED_DTYPES, DType, Graph, Node, ShapeAttr, TensorInfo, normalize, ref, split_ref
from .partition import Plan

# TF dtype -> numpy dtype for tensors the native side holds (quantized types as plain integers).
NUMPY_DTYPES = {"float32": "float32", "qint8": "int8", "quint8": "uint8", "int32": "int32", "int64": "int64",
                "bool": "bool", "int8": "int8", "uint8": "uint8", "float64": "float64"}


StepKind = Literal["partition", "callback", "view", "concat"]


@dataclasses.dataclass
class Step:
    kind: StepKind                      # a oneDNN partition, a TF subgraph, a zero-copy reshape, a byte concat
    partition: int                      # oneDNN partition index, for partition steps
    callback: Callable | None           # TF subgraph, for callback steps
    inputs: list[str]
    outputs: list[str]
    label: str                          # partition name or a description of the TF segment
    view_shape: list[int] = dataclasses.field(default_factory=list)  # for view steps
    concat_axis: int = -1               # for concat steps: partitions that only move bytes (see _byte_concat)


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

    @classmethod
    def of(cls, graph: Graph, index: int) -> "InputSpec":
        reference = graph.inputs[index]
        ranges = [(float(np.min(graph.constant(q.inputs[1]))), float(np.max(graph.constant(q.inputs[2]))))
                  for q in graph.consumers().get(normalize(reference), [])
                  if q.op == "QuantizeV2" and all(graph.is_constant(r) for r in q.inputs[1:3])]
        calibrated = (min(lo for lo, _ in ranges), max(hi for _, hi in ranges)) if ranges else None
        info = graph.tensor(reference)
        return cls(index, info, np.dtype(NUMPY_DTYPES[info.dtype]), calibrated)

    def check(self, x, check_values: bool) -> np.ndarray:
        """The input as the executor takes it, or InputError. Attribute tests and a plain loop, no
        numpy type predicates: at AlexNet's 0.15 ms per image, the check was 1% of the run."""
        x = np.asarray(x)
        if self.dtype.kind == "f" and x.dtype.kind != "f":
            raise InputError(f"input {self.index} has dtype {x.dtype}; the model takes {self.dtype}")
        if self.dtype.kind != "f" and x.dtype != self.dtype and not np.can_cast(x.dtype, self.dtype, "safe"):
            lost = " (fractions and values outside its range would be lost: convert it yourself)" \
                if x.dtype.kind == "f" else ""
            raise InputError(f"input {self.index} has dtype {x.dtype}; the model takes {self.dtype}{lost}")
        shape = self.info.shape
        if shape is not None:
            fits = x.ndim == len(shape)
            for got, want in zip(x.shape, shape):
                fits = fits and (want is None or got == want)
            if not fits:
                raise InputError(f"input {self.index} has shape {x.shape}; the model takes {self.info.describe()}")
        if x.size == 0:
            raise InputError(f"input {self.index} is empty (shape {x.shape})")
        x = np.ascontiguousarray(x, dtype=self.dtype)
        if check_values and self.dtype.kind == "f":
            self._check_values(x)
        return x

    def _check_values(self, x: np.ndarray) -> None:
        lo, hi = float(x.min()), float(x.max())  # NaN propagates through both
        if not (-math.inf < lo and hi < math.inf):
            bad = int(np.count_nonzero(~np.isfinite(x)))
            raise InputError(f"input {self.index} holds {bad} NaN or infinite value(s) of {x.size}: INT8 would "
                             "turn them into ordinary-looking numbers (check_values=False skips this check)")
        if self.calibrated is not None:
            low, high = self.calibrated
            width = high - low
            if lo < low - width or hi > high + width:
                warnings.warn(f"input {self.index} spans [{lo:.4g}, {hi:.4g}], but the model was calibrated on "
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
    """

    def __init__(self, plan: Plan, keep_onednn_layouts: bool = True, shapes_per_step: int = SHAPES_PER_STEP,
                 check_values: bool = True):
        self.plan = plan
        self.check_values = check_values
        graph = plan.source
        self.inputs = [InputSpec.of(graph, i) for i in range(len(graph.inputs))]
        self._fitting_shapes: set[tuple] = set()
        if not plan.partitions:  # partitioning is off: the whole QDQ graph runs on stock TF
            self._tf = tfgraph.GraphFunction(graph, graph.inputs, graph.outputs)
            self._program, self.steps = None, []
            return
        self._tf = None
        alias = _identity_aliases(graph, plan)
        self.steps = _schedule(plan, alias)
        ids = dict(plan.onednn_graph.tensor_ids)
        for step in self.steps:
            for r in step.inputs + step.outputs:
                ids.setdefault(r, len(ids) + 1)
        outputs = [_resolve(alias, r) for r in graph.outputs]
        for r in graph.inputs + outputs:
            ids.setdefault(r, len(ids) + 1)
        infos = {r: plan.translation.tensors.get(r) or graph.tensor(r) for r in ids}
        dtypes = {ids[r]: NUMPY_DTYPES[info.dtype] for r, info in infos.items()}
        used = {r for s in self.steps if s.kind != "callback" for r in s.inputs}
        constants = {ids[r]: v for r, v in plan.translation.constants.items() if r in used}
        opaque = [ids[r] for r in _layout_free_tensors(plan, self.steps, outputs)] if keep_onednn_layouts else []
        self._program = onednn.program(
            plan.onednn_graph,
            [dataclasses.replace(s, inputs=[ids[r] for r in s.inputs], outputs=[ids[r] for r in s.outputs])
             for s in self.steps],
            [ids[r] for r in graph.inputs], [ids[r] for r in outputs], dtypes, constants, opaque, shapes_per_step)

    # ---------------------------------------------------------------------------------- running

    def __call__(self, *inputs: np.ndarray) -> list[np.ndarray]:
        if len(inputs) != len(self.inputs):
            raise InputError(f"the model takes {len(self.inputs)} input(s), got {len(inputs)}")
        arrays = [spec.check(x, self.check_values) for spec, x in zip(self.inputs, inputs)]
        self._check_shapes(arrays)
        if self._program is None:
            return self._tf(*arrays)
        try:
            return list(self._program.run(arrays))
        except ValueError as e:  # the native side refuses shapes it cannot compute (an image too small)
            raise InputError(str(e)) from e

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

    def timed_run(self, batch: np.ndarray) -> tuple[float, list[tuple[str, float]]]:
        """One run: its seconds end to end as the caller sees them, and the seconds of each step."""
        if self._program is None:
            start = time.perf_counter()
            self(batch)
            return time.perf_counter() - start, []
        self._program.reset_profile()
        self._program.set_profiling(True)
        try:
            start = time.perf_counter()
            self(batch)
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


def mean_step_times(runs: list[list[tuple[str, float]]]) -> list[tuple[str, float]]:
    """Per step, its mean seconds over runs given as `CompiledModel.timed_run` reports them."""
    if not runs:
        return []
    return [(label, float(np.mean([run[i][1] for run in runs]))) for i, (label, _) in enumerate(runs[0])]


# ------------------------------------------------------------------------------ scheduling

_LAYOUT_AWARE = {"Convolution", "MatMul"}


def _layout_free_tensors(plan: Plan, steps: list[Step], outputs: list[str]) -> set[str]:
    """Tensors that may stay in oneDNN's own (blocked) layout: produced by a convolution/matmul
    partition and read only by such partitions. Pooling and concat in oneDNN 3.2 fall back to
    reference kernels on some blocked layouts (measured: 30x slower), so they get plain NHWC."""
    kinds = {p.name: set(p.onednn_ops) for p in plan.partitions}
    aware = {s.label for s in steps if s.label in kinds and kinds[s.label] & _LAYOUT_AWARE}
    candidates = {r for s in steps if s.label in aware for r in s.outputs} - set(outputs)
    for s in steps:
        if s.label not in aware:
            candidates -= set(s.inputs)
    return candidates


def _identity_aliases(graph: Graph, plan: Plan) -> dict[str, str]:
    """Identity nodes left to TF are aliases: no kernel needs to run for them."""
    fallback = {f.name for f in plan.fallback}
    return {n.name: normalize(n.inputs[0]) for n in graph.nodes if n.op == "Identity" and n.name in fallback}


def _resolve(alias: dict[str, str], reference: str) -> str:
    reference = normalize(reference)
    while reference in alias:
        reference = alias[reference]
    return reference


def _schedule(plan: Plan, alias: dict[str, str]) -> list[Step]:
    """Order partitions and fallback nodes; consecutive fallback nodes become one TF subgraph."""
    graph = plan.source
    fallback_nodes = [graph.node(f.name) for f in plan.fallback if f.name not in alias]
    units: list[tuple[str, object]] = [("partition", p) for p in plan.partitions]
    units += [("view", graph.node(v.name)) for v in plan.views]
    units += [("node", n) for n in fallback_nodes]
    producer: dict[str, int] = {}
    for u, (kind, item) in enumerate(units):
        refs = [t.name for t in item.outputs] if kind == "partition" else \
            [ref(item.name, i) for i in range(len(item.outputs))]
        for r in refs:
            producer[r] = u

    def unit_inputs(u: int) -> list[str]:
        kind, item = units[u]
        if kind == "partition":
            refs = [t.name for t in item.inputs if not t.constant]
        else:
            refs = item.inputs[:1] if kind == "view" else item.inputs
        return [_resolve(alias, r) for r in refs]

    deps = {u: {producer[r] for r in unit_inputs(u) if r in producer} for u in range(len(units))}
    ops_by_id = {op.id: op for op in plan.translation.ops}
    done: set[int] = set()
    steps: list[Step] = []
    while len(done) < len(units):
        ready = [u for u in range(len(units)) if u not in done and deps[u] <= done]
        native = [u for u in ready if units[u][0] != "node"]
        if native:
            for u in native:
                kind, item = units[u]
                if kind == "partition":
                    inputs = [_resolve(alias, t.name) for t in item.inputs]  # all, in oneDNN's port order
                    step = Step("partition", item.onednn_index, None, inputs, [t.name for t in item.outputs],
                                item.name)
                    concat = _byte_concat(plan, item, ops_by_id)
                    if concat is not None:
                        axis, sources = concat
                        step = dataclasses.replace(step, kind="concat", inputs=[_resolve(alias, r) for r in sources],
                                                   concat_axis=axis)
                    steps.append(step)
                else:
                    shape = [int(d) for d in graph.constant(item.inputs[1])]
                    steps.append(Step("view", 0, None, unit_inputs(u), [item.name], item.name, shape))
                done.add(u)
            continue
        # No partition can run: take every fallback node runnable from here as one TF subgraph.
        segment: list[int] = []
        while ready:
            segment += ready
            done |= set(ready)
            ready = [u for u in range(len(units)) if u not in done and units[u][0] == "node"
                     and deps[u] <= done]
        if not segment:
            raise RuntimeError("the plan has a dependency cycle between partitions and TF nodes")
        steps.append(_tf_step(plan, [units[u][1] for u in segment], alias, unit_inputs, segment))
    return _drop_unread_outputs(steps, graph, alias)


def _byte_concat(plan: Plan, partition, ops_by_id: dict) -> tuple[int, list[str]] | None:
    """(axis, inputs in concat order) for a partition that only concatenates, with the same
    quantization on every input and the output (or none at all): its result is the inputs' bytes
    side by side. The executor runs it as a plain oneDNN concat; oneDNN Graph 3.2 compiles int8
    NHWC concats with a transposing copy of every input and of the output (3x the memory traffic,
    1.3 ms of Inception V3's batch-1 time)."""
    ops = [ops_by_id[i] for i in plan.onednn_graph.partitions[partition.onednn_index].op_ids]
    concats = [op for op in ops if op.kind == "Concat"]
    if len(concats) != 1 or any(op.kind not in ("Concat", "Dequantize", "Quantize") for op in ops):
        return None
    concat = concats[0]
    quantizers = [op for op in ops if op.kind != "Concat"]
    params = {(tuple(op.attrs["scales"]), tuple(op.attrs["zps"]), op.attrs.get("qtype")) for op in quantizers}
    tensors = plan.translation.tensors
    dtypes = {tensors[op.inputs[0]].dtype if op.kind == "Dequantize" else tensors[op.outputs[0]].dtype
              for op in quantizers}
    if len(params) > 1 or len(dtypes) > 1:
        return None
    dequantized = {op.outputs[0]: op.inputs[0] for op in ops if op.kind == "Dequantize"}
    quantized = [op for op in ops if op.kind == "Quantize"]
    if quantizers and not (all(r in dequantized for r in concat.inputs) and len(quantized) == 1
                           and quantized[0].inputs[0] == concat.outputs[0]):
        return None
    return concat.attrs["axis"], [dequantized.get(r, r) for r in concat.inputs]


def _tf_step(plan: Plan, nodes: list[Node], alias, unit_inputs, segment) -> Step:
    names = {n.name for n in nodes}
    external = []
    for u in segment:
        for r in unit_inputs(u):
            name = split_ref(r)[0]
            if name not in names and not plan.source.is_constant(r) and r not in external:
                external.append(r)
    # A Dequantize left to TF reads the range outputs of a QuantizeV2 that runs in oneDNN, which
    # produces only the int8 tensor: they depend on its constant min/max alone, so they become
    # constants of the segment.
    ranges = [r for r in external if plan.source.is_range_output(r)
              and all(plan.source.is_constant(m) for m in plan.source.node(r).inputs[1:3])]
    external = [r for r in external if r not in ranges]
    outputs = [ref(n.name, i) for n in nodes for i in range(len(n.outputs))]
    function = _segment_function(plan.source, nodes, external, outputs, alias, ranges)
    label = f"TF: {', '.join(sorted({n.op for n in nodes}))} ({len(nodes)} ops)"
    return Step("callback", 0, function, external, outputs, label)


def _drop_unread_outputs(steps: list[Step], graph: Graph, alias) -> list[Step]:
    """A TF segment hands back only what a later step or the caller reads."""
    wanted = {_resolve(alias, r) for r in graph.outputs}
    for step in steps:
        wanted |= set(step.inputs)
    result = []
    for step in steps:
        if step.kind == "callback":
            keep = [i for i, r in enumerate(step.outputs) if r in wanted]
            step = dataclasses.replace(step, outputs=[step.outputs[i] for i in keep],
                                       callback=step.callback.select(keep))
        result.append(step)
    return result


class _SegmentFunction:
    """A TF subgraph of fallback nodes as one function of numpy arrays (int8/uint8 for quantized
    tensors, which the subgraph bitcasts to and from TF's qint8/quint8)."""

    def __init__(self, graph: Graph, inputs: list[str], outputs: list[str]):
        self.graph, self.inputs, self.outputs = graph, inputs, outputs
        self._fn = None

    def select(self, keep: list[int]) -> "_SegmentFunction":
        return _SegmentFunction(self.graph, self.inputs, [self.outputs[i] for i in keep])

    def __call__(self, *arrays: np.ndarray) -> list[np.ndarray]:
        if self._fn is None:
            self._fn = tfgraph.GraphFunction(self.graph, self.inputs, self.outputs)
        return [np.ascontiguousarray(a) for a in self._fn(*arrays)]


def _quantizer_ranges(graph: Graph, references: list[str]) -> dict[str, np.ndarray]:
    """The min/max outputs of QuantizeV2 nodes with constant ranges, computed by TF on a zero input."""
    nodes: list[Node] = []
    for name in dict.fromkeys(split_ref(r)[0] for r in references):
        quantizer = graph.node(name)
        info = graph.tensor(quantizer.inputs[0])
        zeros = np.zeros([1 if d is None else d for d in info.shape or ()], np.float32)
        nodes += [Node(f"{name}/zeros", "Const", [], {"dtype": DType("float32"), "value": zeros}),
                  dataclasses.replace(quantizer, inputs=[f"{name}/zeros", *quantizer.inputs[1:3]])]
        nodes += [graph.node(r) for r in quantizer.inputs[1:3]]
    sub = Graph(list({n.name: n for n in nodes}.values()), [], list(references))
    return {r: np.asarray(v) for r, v in zip(references, tfgraph.evaluate(sub, references))}


def _segment_function(graph: Graph, nodes: list[Node], external: list[str], outputs: list[str],
                      alias: dict[str, str], ranges: list[str]) -> _SegmentFunction:
    mapping: dict[str, str] = {}
    sub: list[Node] = []
    feeds = []
    for r, value in (_quantizer_ranges(graph, ranges) if ranges else {}).items():
        const = Node(f"{r.replace(':', '_')}/itexlab_range", "Const", [], {"dtype": DType("float32"), "value": value},
                     [TensorInfo("float32", value.shape)])
        sub.append(const)
        mapping[r] = const.name
    for i, r in enumerate(external):
        info = graph.tensor(r)
        plain = QUANTIZED_DTYPES.get(info.dtype, info.dtype)
        shape = ShapeAttr(info.shape or ())
        feed = Node(f"itexlab_input_{i}", "Placeholder", [], {"dtype": DType(plain), "shape": shape},
                    [TensorInfo(plain, info.shape)])
        sub.append(feed)
        feeds.append(feed.name)
        mapping[r] = feed.name
        if info.dtype in QUANTIZED_DTYPES:
            cast = Node(f"itexlab_input_{i}/bitcast", "Bitcast", [feed.name],
                        {"T": DType(plain), "type": DType(info.dtype)}, [info])
            sub.append(cast)
            mapping[r] = cast.name
    constants: dict[str, Node] = {}
    for r in (r for n in nodes for r in n.inputs if graph.is_constant(r)):
        node = graph.node(r)  # the constant, and any Identities it reaches the segment through
        while node.name not in constants:
            constants[node.name] = node
            if node.op != "Identity":
                break
            node = graph.node(node.inputs[0])
    sub += constants.values()
    for n in nodes:
        sub.append(dataclasses.replace(n, inputs=[mapping.get(_resolve(alias, r), _resolve(alias, r))
                                                  for r in n.inputs]))
    fetches = []
    for r in outputs:
        info = graph.tensor(r)
        if info.dtype in QUANTIZED_DTYPES:
            name = f"{r.replace(':', '_')}/itexlab_bitcast"
            sub.append(Node(name, "Bitcast", [r], {"T": DType(info.dtype), "type": DType(QUANTIZED_DTYPES[info.dtype])},
                            [TensorInfo(QUANTIZED_DTYPES[info.dtype], info.shape)]))
            fetches.append(name)
        else:
            fetches.append(r)
    return _SegmentFunction(Graph(sub, feeds, fetches), feeds, fetches)
