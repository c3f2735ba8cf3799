"""Save an INT8 model to a folder and load it back into something that runs (the format: ir/store.py).

A loaded model runs without INC, calibration data, TF graph rewriting or re-partitioning: the plan
holds the oneDNN ops of every partition and the int8 weights; compiling gives the same ops to oneDNN
again, which must draw the same borders (else ModelError). Its outputs are bit-identical to those of
the model that was saved.
"""

from __future__ import annotations

import dataclasses
import os
import pathlib
from importlib import metadata

from ..errors import ModelError
from ..frontend import tfgraph
from ..ir import store
from ..ir.graph import Graph, Node, impure_nodes
from ..ir.plan import Plan, check
from .executor import CompiledModel


def _writer() -> str:
    try:
        return f"itexlab {metadata.version('itexlab')}"
    except metadata.PackageNotFoundError:
        return "itexlab (source tree)"


def save(model_or_plan: CompiledModel | Plan, path: str | os.PathLike, qdq: Graph | None = None,
         force: bool = False) -> pathlib.Path:
    """Save a compiled model (or a plan holding its weights) into the folder `path`, new or empty;
    force=True replaces an itexlab model saved there before (never other files). `qdq`, INC's QDQ
    graph, is saved beside it when given (`itexlab quantize --out` does)."""
    model = model_or_plan if isinstance(model_or_plan, CompiledModel) else CompiledModel(model_or_plan)
    extra = {"fallback.pb": fallback_graph_def(model).SerializeToString()}
    if qdq is not None:
        extra["qdq.pb"] = tfgraph.graph_def_from_graph(qdq).SerializeToString()
    return store.write(path, model.plan, extra, _writer(), force)


def load(path: str | os.PathLike, trust: bool = False, **options) -> CompiledModel:
    """A saved model, compiled for this CPU (options: those of CompiledModel). ModelError says what
    is wrong with a folder that holds no model, a newer format, a damaged or forged file, or a TF op
    that is not a pure tensor op (file, I/O, Python, queue, resource or random ops: see
    ir.graph.PURE_TF_OPS); `trust=True` lets those run, for a model whose author you trust."""
    return load_folder(path, (), trust, **options)[0]


def load_folder(path: str | os.PathLike, extra: tuple[str, ...] = (), trust: bool = False,
                **options) -> tuple[CompiledModel, dict[str, Graph]]:
    """A saved model (see load) and the graphs of the `extra` files (e.g. "qdq.pb") its folder lists,
    checked with it: each file is read once."""
    saved = store.read(path, store.REQUIRED + tuple(extra))
    plan = store.plan_of(saved, path)
    graphs = {name: tfgraph.load(tfgraph.graph_def_from_bytes(saved.files[name], pathlib.Path(path) / name))
              for name in extra if name in saved.files}
    if not trust:
        for where, graph in ((store.PLAN, plan.source), *graphs.items()):
            refuse_impure_ops(graph, pathlib.Path(path) / where)
    try:
        check(plan)  # before TF sees its graph, as CompiledModel does before oneDNN sees its ops
        tfgraph.check_described(plan.source)
    except ModelError as e:
        raise ModelError(f"{pathlib.Path(path) / store.PLAN}: {e}") from None
    return CompiledModel(plan, **options), graphs


def refuse_impure_ops(graph: Graph, where: pathlib.Path) -> None:
    """ModelError naming the ops of a graph from disk that are not pure tensor ops."""
    impure = impure_nodes(graph)
    if impure:
        ops = ", ".join(dict.fromkeys(f"{n.op} ({n.name})" for n in impure[:5]))
        raise ModelError(f"{where} runs {ops} on TensorFlow: a saved model may run only pure tensor ops, never file, "
                         "I/O, Python, queue, resource or random ops; load it with trust=True (`--trust`) only if "
                         "you trust its author")


def fallback_graph_def(model: CompiledModel):
    """What runs on TensorFlow, for TF's own tools: each TF segment the executor calls, its nodes
    under `segment_<i>/`, its inputs from oneDNN partitions as Placeholders."""
    segments = [s.callback.graph for s in model.steps if s.kind == "callback"]
    if not model.plan.partitions:  # partitioning off: the whole graph runs on TF
        segments = [model.plan.source]
    nodes: list[Node] = []
    for i, graph in enumerate(segments):
        prefix = f"segment_{i}/"
        nodes += [dataclasses.replace(n, name=prefix + n.name, inputs=[_prefixed(prefix, r) for r in n.inputs])
                  for n in graph.nodes]
    return tfgraph.graph_def_from_graph(Graph(nodes, [n.name for n in nodes if n.op == "Placeholder"], []))


def _prefixed(prefix: str, reference: str) -> str:
    return "^" + prefix + reference[1:] if reference.startswith("^") else prefix + reference
