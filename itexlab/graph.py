"""The neutral graph model that every stage shares: importer, preparation, partitioner, executor, views.

A graph is a list of nodes in topological order. A node names its inputs as tensor references
("node" or "node:1"); attributes are plain Python values (numbers, strings, lists, numpy arrays for
constants, `DType` and `Shape` for typed attributes). Every node knows its outputs' dtype and shape
(batch dimension None), so later stages never have to ask TensorFlow again.
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from typing import Any, Iterable

import numpy as np


class DType(str):
    """A TensorFlow dtype name used as an attribute value, e.g. DType("qint8")."""


# TF's quantized dtypes -> the plain integer type with the same bytes (what numpy and oneDNN see).
QUANTIZED_DTYPES = {"qint8": "int8", "quint8": "uint8"}


class ShapeAttr(tuple):
    """A shape used as an attribute value; None marks unknown dimensions, unknown_rank a missing one."""

    unknown_rank = False


@dataclasses.dataclass(frozen=True)
class TensorInfo:
    dtype: str
    shape: tuple[int | None, ...] | None  # None: rank unknown

    def describe(self) -> str:
        dims = "?" if self.shape is None else "x".join("?" if d is None else str(d) for d in self.shape)
        return f"{self.dtype}[{dims}]"


@dataclasses.dataclass
class Node:
    name: str
    op: str
    inputs: list[str]
    attrs: dict[str, Any] = dataclasses.field(default_factory=dict)
    outputs: list[TensorInfo] = dataclasses.field(default_factory=list)

    @property
    def value(self) -> np.ndarray:
        """The value of a Const node."""
        return self.attrs["value"]


def split_ref(ref: str) -> tuple[str, int]:
    """'conv:1' -> ('conv', 1); 'conv' -> ('conv', 0)."""
    name, _, index = ref.partition(":")
    return name, int(index) if index else 0


def ref(name: str, index: int = 0) -> str:
    return name if index == 0 else f"{name}:{index}"


CONSTANT_OPS = ("Const", "HostConst")


@dataclasses.dataclass
class Graph:
    nodes: list[Node]
    inputs: list[str]   # tensor references of the graph inputs (Placeholders)
    outputs: list[str]  # tensor references of the graph outputs

    def __post_init__(self):
        self._by_name = {n.name: n for n in self.nodes}
        if len(self._by_name) != len(self.nodes):
            raise ValueError("graph has duplicate node names")

    def __contains__(self, name: str) -> bool:
        return name in self._by_name

    def node(self, name_or_ref: str) -> Node:
        return self._by_name[split_ref(name_or_ref)[0]]

    def producer(self, reference: str) -> Node:
        """The node that computes a tensor, looking through Identity nodes."""
        node = self.node(reference)
        while node.op == "Identity":
            node = self.node(node.inputs[0])
        return node

    def is_range_output(self, reference: str) -> bool:
        """Outputs 1 and 2 of QuantizeV2 are its min/max scalars: quantization metadata, not data."""
        name, index = split_ref(reference)
        return index > 0 and self.node(name).op == "QuantizeV2"

    def tensor(self, reference: str) -> TensorInfo:
        name, index = split_ref(reference)
        return self._by_name[name].outputs[index]

    def is_constant(self, reference: str) -> bool:
        return self.producer(reference).op in CONSTANT_OPS

    def constant(self, reference: str) -> np.ndarray | None:
        """The value of a constant tensor (through Identities), None for a computed one."""
        node = self.producer(reference)
        return node.value if node.op in CONSTANT_OPS else None

    def consumers(self) -> dict[str, list[Node]]:
        """Tensor reference -> nodes reading it (graph outputs are not nodes and not listed)."""
        result: dict[str, list[Node]] = defaultdict(list)
        for node in self.nodes:
            for r in node.inputs:
                result[normalize(r)].append(node)
        return result

    def count(self, op: str) -> int:
        return sum(1 for n in self.nodes if n.op == op)

    def replace(self, nodes: Iterable[Node]) -> "Graph":
        """A new graph with these nodes and the same inputs and outputs, re-sorted and pruned of
        nodes that no output depends on."""
        return Graph(prune_and_sort(list(nodes), self.outputs), list(self.inputs), list(self.outputs))


def normalize(reference: str) -> str:
    name, index = split_ref(reference)
    return ref(name, index)


def prune_and_sort(nodes: list[Node], outputs: list[str]) -> list[Node]:
    """Keep the nodes the outputs depend on (Placeholders always), in a stable topological order."""
    by_name = {n.name: n for n in nodes}
    order: list[Node] = []
    seen: set[str] = set()
    roots = [split_ref(r)[0] for r in outputs] + [n.name for n in nodes if n.op == "Placeholder"]
    for root in roots:
        stack = [(root, False)]
        while stack:
            name, expanded = stack.pop()
            if expanded:
                order.append(by_name[name])
                continue
            if name in seen:
                continue
            if name not in by_name:
                raise ValueError(f"graph refers to a missing node '{name}'")
            seen.add(name)
            stack.append((name, True))
            stack.extend((split_ref(r)[0], False) for r in reversed(by_name[name].inputs))
    return order
