"""The order a plan runs in: its partitions, views and TF fallback nodes as one list of steps.

A step is a oneDNN partition, a byte concat, a view, transpose or slice (lower.views), or one TF subgraph made of every
fallback node that can run at that point (Python is entered once per subgraph, never op by op).
The layout and concat policy comes from the plan (itexlab.lower.layouts); this module only orders.
"""

from __future__ import annotations

import dataclasses
import graphlib
from typing import Callable, Literal

import numpy as np

from ..backend.onednn import OneDnnPartition
from ..errors import ModelError
from ..frontend import tfgraph
from ..ir.graph import (PURE_TF_OPS, QUANTIZED_DTYPES, DType, Graph, Node, ShapeAttr, TensorInfo, normalize, ref,
                        split_ref)
from ..ir.plan import Plan
from ..lower import views

StepKind = Literal["partition", "callback", "view", "transpose", "slice", "concat"]
EAGER_OPS = 6  # TF segments of at most this many ops run op by op (see _SegmentFunction._runner)


@dataclasses.dataclass
class Step:
    kind: StepKind                      # a oneDNN partition, a TF subgraph, lower.views' steps, a byte concat
    partition: int                      # compiled oneDNN partition's index, for partition steps
    callback: Callable | None           # TF subgraph, for callback steps
    inputs: list[str]
    outputs: list[str]
    label: str                          # partition name or a description of the TF segment
    view_shape: list[int] = dataclasses.field(default_factory=list)  # views, transposes, slices: lower.views
    concat_axis: int = -1               # for concat steps: partitions that only move bytes (lower.layouts)
    nodes: list[str] = dataclasses.field(default_factory=list)  # callback steps: the TF nodes they run


def identity_aliases(plan: Plan) -> dict[str, str]:
    """Identity nodes left to TF are aliases: no kernel needs to run for them."""
    fallback = {f.name for f in plan.fallback}
    return {n.name: normalize(n.inputs[0]) for n in plan.source.nodes if n.op == "Identity" and n.name in fallback}


def resolve(alias: dict[str, str], reference: str) -> str:
    reference = normalize(reference)
    while reference in alias:
        reference = alias[reference]
    return reference


def schedule(plan: Plan, compiled: dict[int, OneDnnPartition], alias: dict[str, str]) -> list[Step]:
    """Order partitions and fallback nodes; consecutive fallback nodes become one TF subgraph.
    `compiled`: the oneDNN partition each plan partition runs as (by plan partition id); `alias`:
    identity_aliases(plan)."""
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
        return [resolve(alias, r) for r in refs]

    def native_step(u: int) -> Step:
        kind, item = units[u]
        if kind == "view":
            executor_step = views.executor_step(item, graph)
            if executor_step is None:
                raise ModelError(f"the plan runs {item.op} {item.name!r} in the executor, which cannot run it")
            return Step(executor_step[0], 0, None, unit_inputs(u), [item.name], item.name, executor_step[1])
        if item.byte_concat is not None:
            sources = [resolve(alias, r) for r in item.byte_concat.sources]
            return Step("concat", 0, None, sources, [t.name for t in item.outputs], item.name,
                        concat_axis=item.byte_concat.axis)
        part = compiled[item.id]  # inputs and outputs in the compiled partition's port order
        return Step("partition", part.index, None, [resolve(alias, r) for r in part.inputs], list(part.outputs),
                    item.name)

    sorter = graphlib.TopologicalSorter({u: {producer[r] for r in unit_inputs(u) if r in producer}
                                         for u in range(len(units))})
    try:
        sorter.prepare()
    except graphlib.CycleError as e:
        raise ModelError("the plan has a dependency cycle between partitions and TF nodes") from e
    is_tf = [kind == "node" for kind, _ in units]
    ready: list[int] = []
    steps: list[Step] = []
    while sorter.is_active():
        ready = sorted(ready + list(sorter.get_ready()))
        native = [u for u in ready if not is_tf[u]]
        if native:  # oneDNN steps first: they never wait for Python
            steps += [native_step(u) for u in native]
            sorter.done(*native)
            ready = [u for u in ready if is_tf[u]]
            continue
        # No partition can run: take every fallback node runnable from here as one TF subgraph.
        segment: list[int] = []
        while any(is_tf[u] for u in ready):
            taken = [u for u in ready if is_tf[u]]
            segment += taken
            sorter.done(*taken)
            ready = sorted([u for u in ready if not is_tf[u]] + list(sorter.get_ready()))
        steps.append(_tf_step(plan, [units[u][1] for u in segment], alias, unit_inputs, segment))
    return _drop_unread_outputs(steps, graph, alias)


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
    label = f"TF: {', '.join(sorted({n.op for n in nodes}))} ({len(nodes)} op{'' if len(nodes) == 1 else 's'})"
    return Step("callback", 0, function, external, outputs, label, nodes=[n.name for n in nodes])


def _drop_unread_outputs(steps: list[Step], graph: Graph, alias) -> list[Step]:
    """A TF segment hands back only what a later step or the caller reads. Views, and TF segments of
    pure ops (ir.graph.PURE_TF_OPS), whose results nothing reads do not run: a transposed
    convolution's output size, say, computed from the batch on TF, which oneDNN derives itself."""
    wanted = {resolve(alias, r) for r in graph.outputs}
    kept = []
    for step in reversed(steps):
        if step.kind in ("callback", "view", "transpose", "slice"):
            keep = [i for i, r in enumerate(step.outputs) if r in wanted]
            if not keep and (step.kind != "callback" or all(graph.node(n).op in PURE_TF_OPS for n in step.nodes)):
                continue
            if step.kind == "callback":
                step = dataclasses.replace(step, outputs=[step.outputs[i] for i in keep],
                                           callback=step.callback.select(keep))
        wanted |= set(step.inputs)
        kept.append(step)
    return kept[::-1]


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
            self._fn = self._runner()
        return [np.ascontiguousarray(a) for a in self._fn(*arrays)]

    def _runner(self):
        """Op by op on eager kernels for a few ops (a TF function call costs as much as ~6 eager
        ops, whatever it holds), else one function of the whole segment."""
        if sum(n.op not in ("Const", "Placeholder") for n in self.graph.nodes) <= EAGER_OPS:
            try:
                return tfgraph.OpByOp(self.graph, self.inputs, self.outputs)
            except tfgraph.NotEagerRunnable:
                pass
        return tfgraph.GraphFunction(self.graph, self.inputs, self.outputs)


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
        sub.append(dataclasses.replace(n, inputs=[mapping.get(resolve(alias, r), resolve(alias, r))
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
