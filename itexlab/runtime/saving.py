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

from ..frontend import tfgraph
from ..ir import store
from ..ir.graph import Graph, Node
from ..ir.plan import Plan
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


def load(path: str | os.PathLike, **options) -> CompiledModel:
    """A saved model, compiled for this CPU (options: those of CompiledModel). ModelError says what
    is wrong with a folder that holds no model, a newer format, or a damaged file."""
    return CompiledModel(store.read_plan(path), **options)


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
