"""Attention masks as arithmetic oneDNN can fuse.

Keras' MultiHeadAttention masks its scores as `where(ones_like(scores) & mask, scores, -large)`:
Shape, Fill, LogicalAnd and SelectV2 on the scores, between the Q·Kᵀ matmul and the softmax, so
every encoder layer would go to TF and back. The mask itself depends on the model's inputs alone.
Here `where(m, x, c)` with a scalar c becomes `x * m + (1 - m) * c`, with m as 0.0/1.0: the same
numbers for finite scores (x·1 + 0 = x, x·0 + c = c), and two elementwise ops oneDNN fuses after
the matmul as post-ops. `ones_like(x) & m` is m itself where SelectV2 broadcasts it to x's shape.
"""

from __future__ import annotations

import numpy as np

from ..ir.graph import DType, Graph, Node, normalize, split_ref


def select_as_arithmetic(graph: Graph) -> Graph:
    """Every SelectV2(mask, x, scalar constant) on float32 x whose mask does not depend on x's
    values, as x * mask + (1 - mask) * constant."""
    replaced: dict[str, list[Node]] = {}
    for node in graph.nodes:
        if node.op not in ("SelectV2", "Select") or node.attrs.get("T") != "float32" or len(node.inputs) != 3:
            continue
        condition, x, other = (normalize(r) for r in node.inputs)
        value = graph.constant(other)
        if value is None or np.size(value) != 1 or graph.tensor(x).shape is None:
            continue
        condition = _without_all_true(graph, condition, x)
        if split_ref(x)[0] in _ancestors(graph, condition) or not _broadcasts_to(graph, condition, x):
            continue
        name = node.name
        constant = float(np.asarray(value).reshape(-1)[0])
        replaced[name] = [
            Node(f"{name}/mask", "Cast", [condition], {"SrcT": DType(graph.tensor(condition).dtype),
                                                       "DstT": DType("float32"), "Truncate": False}),
            Node(f"{name}/one", "Const", [], {"dtype": DType("float32"), "value": np.array(1.0, np.float32)}),
            Node(f"{name}/value", "Const", [], {"dtype": DType("float32"), "value": np.array(constant, np.float32)}),
            Node(f"{name}/unmasked", "Sub", [f"{name}/one", f"{name}/mask"], {"T": DType("float32")}),
            Node(f"{name}/fill", "Mul", [f"{name}/unmasked", f"{name}/value"], {"T": DType("float32")}),
            Node(f"{name}/kept", "Mul", [x, f"{name}/mask"], {"T": DType("float32")}),
            Node(name, "AddV2", [f"{name}/kept", f"{name}/fill"], {"T": DType("float32")}),
        ]
    if not replaced:
        return graph
    return graph.replace([m for n in graph.nodes for m in replaced.get(n.name, [n])])


def _without_all_true(graph: Graph, condition: str, x: str) -> str:
    """m for LogicalAnd(Fill(Shape(x), true), m) (Keras' ones_like(scores) & mask), else the condition."""
    node = graph.node(condition)
    if node.op != "LogicalAnd":
        return condition
    for filled, other in (node.inputs, node.inputs[::-1]):
        fill = graph.node(filled)
        if fill.op == "Fill" and np.all(graph.constant(fill.inputs[1]) == True):  # noqa: E712  (a numpy bool)
            shape_of = graph.node(fill.inputs[0])
            if shape_of.op == "Shape" and normalize(shape_of.inputs[0]) == x:
                return normalize(other)
    return condition


def _ancestors(graph: Graph, reference: str) -> set[str]:
    seen, stack = set(), [split_ref(reference)[0]]
    while stack:
        name = stack.pop()
        if name not in seen:
            seen.add(name)
            stack.extend(split_ref(r)[0] for r in graph.node(name).inputs)
    return seen


def _broadcasts_to(graph: Graph, condition: str, x: str) -> bool:
    """Whether the condition broadcasts to x's shape without changing it (SelectV2's broadcast of a
    mask over x, which the arithmetic form must give the same shape)."""
    mask, target = graph.tensor(condition).shape, graph.tensor(x).shape
    if mask is None or len(mask) > len(target):
        return False
    return all(m in (1, t) or t is None and m is None for m, t in zip(mask[::-1], target[::-1]))
